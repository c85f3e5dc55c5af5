"""What every compression step shares: the step registry, the :class:`Step` and
:class:`StepResult` bases, the context a step runs in and the :class:`FineTune` protocol.

Pure Python, like every module that defines a step: ``--help`` lists the registered
steps and the command line parses ``--compress`` (:mod:`kdtf.compress.forms`) before
TensorFlow loads. A step imports its TensorFlow operations when it runs, and a result
its flatbuffer readers when it verifies.

A new step is one class (see ``docs/compression.md``)::

    @register_step("double", form="double")
    @dataclasses.dataclass
    class Double(Step):
        epochs: int = None
        result_type = DoubleResult          # a StepResult whose verify() reads the .tflite

        @classmethod
        def parse(cls, text):
            return cls() if text == "double" else None

        def run(self, model, context):      # -> (model, details for the result)
            ...
            return context.fine_tune(model, self.epochs or context.epochs), {"layers": [...]}
"""

import dataclasses
import typing

from kdtf.registry import Registry

__all__ = [
    "STEPS", "FORMS", "register_step", "check_order",
    "Step", "StepResult", "StepContext", "StepDefaults", "FineTune", "WithCallbacks",
]

STEPS = Registry("compression step")
FORMS = {}  # registered name -> the string form --help shows ("prune" -> "prune:S")


def register_step(name, form=None):
    """Class decorator: registers a :class:`Step` subclass under ``name``, the text
    before ``:`` of its string form; ``form`` is how ``--help`` shows it (default
    ``name``), and a form without a value (``"2:4"``, ``"qat"``) is also matched whole.
    A class may carry several names."""
    register = STEPS.register(name)

    def decorate(cls):
        FORMS[name] = form or name
        return register(cls)

    return decorate


def check_order(steps):
    """Raises ValueError when a step is not a :class:`Step` or stands where its
    ``first`` / ``last`` / ``before`` rules forbid (its ``order_rule`` says why)."""
    if not steps:
        raise ValueError("A compression recipe needs at least one step.")
    for i, step in enumerate(steps):
        if not isinstance(step, Step):
            raise ValueError(f"Expected compression steps (kdtf.compress.base.Step objects). Received: {step!r}")
        earlier = [s for s in steps[:i] if any(isinstance(s, STEPS.get(name)) for name in step.must_precede)]
        if (step.last and i != len(steps) - 1) or (step.first and i != 0) or earlier:
            raise ValueError(step.order_rule)


@dataclasses.dataclass
class StepDefaults:
    """What a step's string form leaves open, filled by :meth:`Step.with_defaults`.

    Attributes:
        epochs: fine-tuning epochs of a step (``--prune-epochs``).
        qat_epochs: epochs of quantization-aware training (``--qat-epochs``).
        min_weights: layers with fewer kernel weights are left alone
            (``--prune-min-weights``; ``None``: each step's own default).
    """

    epochs: int
    qat_epochs: int
    min_weights: int = None


@dataclasses.dataclass
class StepResult:
    """What one step did, measured on the Keras model right after it: the record of a
    report, and the promise its :meth:`verify` checks in the exported ``.tflite``.

    Subclasses override :meth:`verify` (and :attr:`pruned` / :attr:`clustered`, what
    later steps must preserve); :meth:`to_record` / :meth:`from_record` save and restore
    it as a JSON-able dict (``details`` holds what the step returned).

    Attributes:
        step: the step's name (``"prune 75%"``).
        params: parameters of the deployed layers.
        sparsity: zeros among all kernels; ``layer_sparsity``: per layer.
        unique_weights: distinct values per kernel.
        details: what the step reported (``layers`` it touched, targets, ...).
        epochs: epochs it was fine-tuned for.
    """

    COMMON = ("step", "params", "sparsity", "layer_sparsity", "unique_weights")

    step: str
    params: int
    sparsity: float
    layer_sparsity: dict
    unique_weights: dict
    details: dict = dataclasses.field(default_factory=dict)
    epochs: int = None

    @property
    def layers(self):
        """The layers the step touched."""
        return list(self.details.get("layers", []))

    @property
    def pruned(self):
        """``{layer: sparsity}`` later steps must keep (sparsity-preserving clustering, PQAT)."""
        return {}

    @property
    def clustered(self):
        """``{layer: clusters}`` later steps must keep (CQAT)."""
        return {}

    def verify(self, flatbuffer_or_path):
        """Checks the exported file keeps what this step promised; returns
        ``{check: what was measured}`` or raises ValueError. The base promises nothing."""
        return {}

    def summary(self):
        """What the step did, in a few words (after its name in :meth:`describe`)."""
        layers = self.layers
        return f"{len(layers)} layer(s)" if layers else ""

    def describe(self):
        """One line for logs and reports: name, epochs and :meth:`summary`."""
        epochs = f" ({self.epochs} epochs)" if self.epochs is not None else ""
        summary = self.summary()
        return f"{self.step}{epochs}" + (f": {summary}" if summary else "")

    def to_record(self):
        """A JSON-able dict: the common measurements, the step's details, the epochs."""
        record = {name: getattr(self, name) for name in self.COMMON}
        record.update(self.details)
        if self.epochs is not None:
            record["epochs"] = self.epochs
        return record

    @classmethod
    def from_record(cls, record):
        """The result :meth:`to_record` saved."""
        record = dict(record)
        common = {name: record[name] for name in cls.COMMON}
        epochs = record.pop("epochs", None)
        details = {k: v for k, v in record.items() if k not in cls.COMMON}
        return cls(**common, details=details, epochs=epochs)


class Step:
    """Base of the compression steps. A step is a dataclass of its settings, registered
    with :func:`register_step`; it overrides :meth:`parse`, :meth:`run`, ``name`` and
    ``short``, and names its :class:`StepResult` subclass as ``result_type``.

    Class attributes:
        first, last: the step must be the first / last of a recipe.
        must_precede: registered names of steps it must come before.
        order_rule: the message when one of those rules is broken.
        epochs_from: the :class:`StepDefaults` field of its default epochs.
        result_type: the :class:`StepResult` subclass of what it returns.
        learns_int8_ranges: the step leaves quantization-aware wrappers (the converter
            reads their ranges; post-training quantization would be redundant).
    """

    first = False
    last = False
    must_precede = ()
    order_rule = ""
    epochs_from = "epochs"
    result_type = StepResult
    learns_int8_ranges = False
    epochs = None

    @classmethod
    def parse(cls, text):
        """The step for its string form, or ``None`` when ``text`` names another step."""
        raise NotImplementedError

    @property
    def name(self):
        return type(self).__name__.lower()

    @property
    def short(self):
        return self.name

    def run(self, model, context):
        """Applies the step to ``model`` and fine-tunes it through ``context.fine_tune``;
        returns ``(model, details)``, ``details`` a JSON-able dict with ``layers``."""
        raise NotImplementedError

    def with_defaults(self, defaults):
        """Fills what its string form left open (epochs, ``min_weights``) from a
        :class:`StepDefaults`; returns ``self``."""
        if self.epochs is None:
            self.epochs = getattr(defaults, self.epochs_from)
        if hasattr(self, "min_weights") and defaults.min_weights is not None:
            self.min_weights = defaults.min_weights
        return self


@typing.runtime_checkable
class FineTune(typing.Protocol):
    """The fine-tune callable a :class:`kdtf.compress.Recipe` calls after each step
    (:class:`kdtf.FineTuner` is kdtf's: distillation from a teacher, or cross-entropy).

    Attributes:
        steps_per_epoch: optimizer steps per epoch (pruning schedules count in them);
            may be left out when :meth:`Recipe.run` gets ``steps_per_epoch``.
        description: ``"distilling"`` or ``"cross-entropy"``, for log lines (optional).
        train_data: the training pipeline, for data-driven importance (optional).
    """

    steps_per_epoch: int

    def __call__(self, model, epochs, *, teacher=None, spec=None, callbacks=None):
        """Fine-tunes ``model`` for ``epochs`` and returns it; ``teacher`` and ``spec``
        (a :class:`kdtf.DistillSpec`) override the callable's own for this call."""


class WithCallbacks:
    """A :class:`FineTune` that adds ``callbacks`` to every call and keeps the wrapped
    callable's description, data and steps per epoch."""

    def __init__(self, fine_tune, callbacks=None):
        self.fine_tune, self.callbacks = fine_tune, list(callbacks or [])

    description = property(lambda self: getattr(self.fine_tune, "description", "fine-tuning"))
    train_data = property(lambda self: getattr(self.fine_tune, "train_data", None))
    steps_per_epoch = property(lambda self: getattr(self.fine_tune, "steps_per_epoch", None))

    def __call__(self, model, epochs, **kwargs):
        if self.callbacks:
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + self.callbacks
        return self.fine_tune(model, epochs, **kwargs)


@dataclasses.dataclass
class StepContext:
    """What a step may use while it runs (built by :meth:`Recipe.run`).

    Attributes:
        fine_tune: a :class:`FineTune`; ``teacher=`` overrides the run's teacher (e.g.
            the unpruned model, for self-distillation), ``spec=`` its loss.
        epochs: default fine-tuning epochs of steps without their own.
        steps_per_epoch: optimizer steps per epoch.
        log: ``log(text)`` for progress lines.
        train_data: the training data of ``fine_tune``, when it has some.
        pruned: ``{layer: sparsity}`` earlier steps promised (clustering and QAT keep it).
        clustered: ``{layer: clusters}`` earlier steps promised.
    """

    fine_tune: object
    epochs: int
    steps_per_epoch: int
    log: object = print
    train_data: object = None
    pruned: dict = dataclasses.field(default_factory=dict)
    clustered: dict = dataclasses.field(default_factory=dict)
