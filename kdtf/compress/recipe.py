"""A compression recipe: steps applied in order, each fine-tuned by a callable the
caller gives (distillation from the teacher in kdtf's pipelines, or plain cross-entropy
to measure what distillation adds), training wrappers stripped between steps.

    recipe = Recipe.parse("lowrank:0.9,prune:0.75,qat")
    model, results = recipe.run(student, kdtf.FineTuner(teacher, (x, y), spec=spec))
    results.verify(export.to_tflite(model, "int8", representative_data=x[:256]))

Steps (string form / object): ``prune:S`` / ``Prune(S)``, ``2:4`` /
``Prune(m_by_n=(2, 4))``, ``cluster:K`` / ``Cluster(K)``, ``qat`` / ``QAT()`` (last),
``lowrank:E`` or ``lowrank:R`` / ``LowRank(...)`` (first), ``filters:F`` /
``FilterPrune(F)`` (before any magnitude pruning or clustering); any registered
:class:`kdtf.compress.base.Step` or a user's own ``Step`` object. Each returns a
:class:`kdtf.compress.base.StepResult`; :class:`Results` is their list.
"""

import numpy as np

from kdtf._keras import keras
from kdtf.compress.base import StepContext, WithCallbacks, check_order
from kdtf.compress.forms import parse_steps
from kdtf.compress.layers import kernel_sparsity, unique_weights
from kdtf.compress.quantize import is_quantized

__all__ = ["Recipe", "Results"]


class Results(list):
    """The :class:`kdtf.compress.base.StepResult` of each step, in order."""

    def verify(self, flatbuffer_or_path):
        """Every result checks its promise in the exported file (sparsity within 1 point
        of its target, the 2:4 pattern, at most K weights per channel, output channels
        of filter-pruned layers). Raises ValueError, or returns ``{check: measured}``."""
        verified = {}
        for result in self:
            for check, measured in result.verify(flatbuffer_or_path).items():
                verified[check] = {**verified.get(check, {}), **measured} if isinstance(measured, dict) else measured
        return verified

    def records(self):
        """JSON-able records, one per step (:meth:`StepResult.to_record`)."""
        return [result.to_record() for result in self]

    def describe(self):
        """``"prune 75% (4 epochs): 3 layer(s) at 75% sparsity; qat (2 epochs): ..."``."""
        return "; ".join(result.describe() for result in self)

    @property
    def params(self):
        """Parameters of the deployed layers after the last step."""
        return self[-1].to_record()["params"]


class Recipe:
    """Ordered compression steps; see the module docstring.

    Args:
        steps: :class:`kdtf.compress.base.Step` objects (order rules checked).
        defaults: a :class:`kdtf.compress.base.StepDefaults` filling what the steps
            leave open (epochs, ``min_weights``), or ``None``.
    """

    def __init__(self, steps, defaults=None):
        steps = list(steps)
        check_order(steps)
        self.steps = [step.with_defaults(defaults) for step in steps] if defaults is not None else steps

    @classmethod
    def parse(cls, text, defaults=None):
        """``"prune:0.75,qat"`` -> Recipe (see :func:`kdtf.compress.forms.parse_steps`)."""
        return cls(parse_steps(text), defaults)

    def __repr__(self):
        return f"Recipe({self.steps!r})"

    @property
    def short_name(self):
        """e.g. ``"pruned+qat"``: names the stage in reports."""
        return "+".join(step.short for step in self.steps)

    def describe(self):
        """``"prune 75%, qat"``: the steps by name."""
        return ", ".join(step.name for step in self.steps)

    def restore(self, records):
        """The :class:`Results` that :meth:`Results.records` saved, each record read by
        its step's ``result_type``."""
        if len(records) != len(self.steps):
            raise ValueError(f"Expected {len(self.steps)} compression step records for {self.describe()}. "
                             f"Received: {len(records)}")
        return Results(step.result_type.from_record(record) for step, record in zip(self.steps, records))

    def run(self, student, fine_tune, *, epochs=2, steps_per_epoch=None, log=None, checkpoint=None):
        """Applies every step to ``student`` and fine-tunes after each.

        Args:
            student: the trained tf_keras student.
            fine_tune: a :class:`kdtf.compress.base.FineTune`, e.g. a
                :class:`kdtf.FineTuner` (distillation with a teacher, cross-entropy
                without).
            epochs: fine-tuning epochs of steps without their own ``epochs``.
            steps_per_epoch: optimizer steps per epoch (default: the fine-tuner's).
            log: ``log(text)`` for progress lines (default: none).
            checkpoint: for resuming, an object with ``load_step(index)`` (``(model,
                record)`` of a completed step, or ``None``), ``save_step(index, model,
                record)`` (called after every step but the last) and
                ``callbacks(index)`` (extra callbacks, e.g. ``BackupAndRestore``).

        Returns:
            ``(model, results)``: the compressed model (pruning and clustering wrappers
            stripped; QAT wrappers kept, the converter reads them) and the
            :class:`Results`.
        """
        if not callable(fine_tune) or isinstance(fine_tune, keras.Model):
            raise ValueError(
                "Recipe.run takes the student and a fine-tune callable, e.g. Recipe.run(student, "
                "kdtf.FineTuner(teacher, (x, y), spec=distiller.spec)). Received: fine_tune of type "
                f"{type(fine_tune).__name__}"
            )
        steps_per_epoch = steps_per_epoch or getattr(fine_tune, "steps_per_epoch", None)
        if not steps_per_epoch:
            raise ValueError("Pass steps_per_epoch: the fine-tuning data's length is unknown.")
        context = StepContext(None, epochs, int(steps_per_epoch), log or (lambda text: None),
                              getattr(fine_tune, "train_data", None))
        model, results = student, Results()
        for index, step in enumerate(self.steps):
            restored = checkpoint.load_step(index) if checkpoint is not None else None
            if restored is not None:
                model, record = restored
                result = step.result_type.from_record(record)
                context.log(f"compress step {step.name}: completed before, resumed from its saved model")
            else:
                context.fine_tune = WithCallbacks(fine_tune, checkpoint.callbacks(index) if checkpoint is not None else None)
                context.log(f"compress step {step.name}: fine-tuned for {step.epochs or epochs} epochs")
                model, details = step.run(model, context)
                result = step.result_type(step.name, **_measured(model), details=details, epochs=step.epochs or epochs)
                if checkpoint is not None and index < len(self.steps) - 1:
                    checkpoint.save_step(index, model, result.to_record())
            context.pruned.update(result.pruned)
            context.clustered.update(result.clustered)
            results.append(result)
        return model, results


def _measured(model):
    per_layer, overall = kernel_sparsity(model)
    return dict(params=_float_params(model), sparsity=overall, layer_sparsity=per_layer,
                unique_weights=unique_weights(model))


def _float_params(model):
    # parameters of the deployed layers, leaving out TF-MOT's quantizer ranges and steps
    if not is_quantized(model):
        return model.count_params()
    names = ("kernel", "bias", "depthwise_kernel", "gamma", "beta", "moving_mean", "moving_variance")
    return int(sum(np.prod(w.shape) for w in model.weights if w.name.split("/")[-1].split(":")[0] in names))
