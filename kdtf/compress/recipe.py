"""A compression recipe: steps applied in order, each fine-tuned by a callable the
caller gives (distillation from the teacher in kdtf's pipelines, or plain cross-entropy
to measure what distillation adds), training wrappers stripped between steps.

    recipe = Recipe.parse("lowrank:0.9,prune:0.75,qat")
    model, records = recipe.run(student, kdtf.training.FineTuner(teacher, (x, y), spec=spec))

Steps (string form / object, see :mod:`kdtf.compress.steps`): ``prune:S`` / ``Prune(S)``,
``2:4`` / ``Prune(m_by_n=(2, 4))``, ``cluster:K`` / ``Cluster(K)``, ``qat`` / ``QAT()``
(last), ``lowrank:E`` or ``lowrank:R`` / ``LowRank(...)`` (first), ``filters:F`` /
``FilterPrune(F)`` (whole filters removed, before any magnitude pruning or clustering).
"""

import numpy as np

from kdtf import catalog
from kdtf._keras import keras
from kdtf.compress.filter_rounds import FilterPrune
from kdtf.compress.layers import kernel_sparsity, unique_weights
from kdtf.compress.quantize import is_quantized
from kdtf.compress.steps import QAT, Cluster, LowRank, Prune, StepContext
from kdtf.compress.verify import verify_clusters, verify_filters, verify_m_by_n, verify_sparsity

__all__ = ["Recipe", "STEP_TYPES", "STEP_NAMES", "parse_step"]

STEP_TYPES = [LowRank, FilterPrune, Prune, Cluster, QAT]  # a new step: its class here (and its name in kdtf.catalog)
STEP_NAMES = tuple(catalog.STEPS.values())


def parse_step(text):
    """The step object for one step string (``"prune:0.5"``), or a ValueError."""
    text = text.strip()
    for kind in STEP_TYPES:
        step = kind.parse(text)
        if step is not None:
            return step
    raise ValueError(f"Unknown compression step {text!r}. Steps: {', '.join(STEP_NAMES)}")


class Recipe:
    """Ordered compression steps; see the module docstring.

    Attributes:
        steps: the step objects.
        pruned_layers, clustered_layers: after :meth:`run`, what :meth:`verify` checks in
            the exported file (``{layer: sparsity}``, ``{layer: clusters}``).
    """

    def __init__(self, steps):
        steps = list(steps)
        if not steps:
            raise ValueError("A compression recipe needs at least one step.")
        for i, step in enumerate(steps):
            if not isinstance(step, tuple(STEP_TYPES)):
                raise ValueError(f"Unknown compression step {step!r}. Steps: {', '.join(STEP_NAMES)}")
            if isinstance(step, QAT) and i != len(steps) - 1:
                raise ValueError("'qat' must be the last compression step (later steps would undo its ranges).")
            if isinstance(step, LowRank) and i != 0:
                raise ValueError("'lowrank' must be the first compression step (it rebuilds the model).")
            if isinstance(step, FilterPrune) and any(isinstance(s, (Prune, Cluster)) for s in steps[:i]):
                raise ValueError("'filters' must come before prune, 2:4 and cluster steps (it rebuilds the model; "
                                 "their zeros and clusters would not survive its fine-tuning).")
        self.steps = steps
        self.pruned_layers, self.clustered_layers, self.filtered_layers = {}, {}, {}

    @classmethod
    def parse(cls, text):
        """``"prune:0.75,qat"`` -> Recipe."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Expected compression steps like 'prune:0.75,qat'. Received: {text!r}")
        return cls([parse_step(part) for part in text.split(",")])

    def __repr__(self):
        return f"Recipe({self.steps!r})"

    @property
    def short_name(self):
        """e.g. ``"pruned+qat"``: names the stage in reports."""
        return "+".join(step.short for step in self.steps)

    def run(self, student, fine_tune, *, epochs=2, steps_per_epoch=None, log=None, checkpoint=None):
        """Applies every step to ``student`` and fine-tunes after each.

        Args:
            student: the trained tf_keras student.
            fine_tune: ``fine_tune(model, epochs, *, teacher=None, callbacks=None) ->
                model``, e.g. a :class:`kdtf.training.FineTuner` (distillation with a
                teacher, cross-entropy without); ``filters:F:logits`` also passes
                ``spec=`` (FineTuner takes it); its ``steps_per_epoch`` and
                ``train_data`` attributes are used when present.
            epochs: fine-tuning epochs of steps without their own ``epochs``.
            steps_per_epoch: optimizer steps per epoch (default: the fine-tuner's).
            log: ``log(text)`` for progress lines (default: none).
            checkpoint: for resuming, an object with ``load_step(index)`` (``(model,
                record, pruned, clustered)`` of a completed step, or ``None``),
                ``save_step(index, model, record, pruned, clustered)`` (called after every
                step but the last) and ``callbacks(index)`` (extra callbacks, e.g.
                ``BackupAndRestore``, for the fine-tuning of step ``index``).

        Returns:
            ``(model, records)``: the compressed model (pruning and clustering wrappers
            stripped; QAT wrappers kept, the converter reads them) and one record per step
            (name, layers touched, parameters, kernel sparsity, unique values, ...).
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
        model, records = student, []
        for index, step in enumerate(self.steps):
            restored = checkpoint.load_step(index) if checkpoint is not None else None
            if restored is not None:
                model, record, pruned, clustered = restored
                context.pruned, context.clustered = dict(pruned), dict(clustered)
                self.filtered_layers.update(_kept_filters(record))
                records.append(record)
                context.log(f"compress step {step.name}: completed before, resumed from its saved model")
                continue
            context.fine_tune = _with_callbacks(fine_tune, checkpoint.callbacks(index) if checkpoint is not None else None)
            context.log(f"compress step {step.name}: fine-tuned for {step.epochs or epochs} epochs")
            model, extra = step.run(model, context)
            records.append(_record(step, model, extra))
            self.filtered_layers.update(_kept_filters(records[-1]))
            if checkpoint is not None and index < len(self.steps) - 1:
                checkpoint.save_step(index, model, records[-1], dict(context.pruned), dict(context.clustered))
        self.pruned_layers, self.clustered_layers = context.pruned, context.clustered
        return model, records

    def verify(self, flatbuffer_or_path):
        """Checks the exported file keeps what the last :meth:`run` promised: sparsity of
        each pruned kernel within 1 point of its target, the 2:4 pattern, at most K
        distinct weights per channel of each clustered kernel. Raises ValueError, or
        returns what was measured."""
        result = {}
        m_by_n = any(isinstance(s, Prune) and s.m_by_n for s in self.steps)
        if self.pruned_layers:
            if m_by_n:
                result["2:4"] = verify_m_by_n(flatbuffer_or_path, sorted(self.pruned_layers))
            else:
                result["sparsity"] = verify_sparsity(flatbuffer_or_path, self.pruned_layers, tolerance=0.01)
        if self.clustered_layers:
            clusters = max(self.clustered_layers.values())
            result["clusters"] = verify_clusters(flatbuffer_or_path, sorted(self.clustered_layers), clusters)
        if self.filtered_layers:
            result["filters"] = verify_filters(flatbuffer_or_path, self.filtered_layers)
        return result


def _with_callbacks(fine_tune, callbacks):
    if not callbacks:
        return fine_tune
    return lambda model, epochs, **kwargs: fine_tune(model, epochs, callbacks=callbacks, **kwargs)


def _record(step, model, extra):
    per_layer, overall = kernel_sparsity(model)
    record = dict(step=step.name, params=_float_params(model), sparsity=overall, layer_sparsity=per_layer,
                  unique_weights=unique_weights(model))
    return {**record, **extra}


def _kept_filters(record):
    return {name: counts["kept"] for name, counts in record.get("filters", {}).items()}


def _float_params(model):
    # parameters of the deployed layers, leaving out TF-MOT's quantizer ranges and steps
    if not is_quantized(model):
        return model.count_params()
    names = ("kernel", "bias", "depthwise_kernel", "gamma", "beta", "moving_mean", "moving_variance")
    return int(sum(np.prod(w.shape) for w in model.weights if w.name.split("/")[-1].split(":")[0] in names))
