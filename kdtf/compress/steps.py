"""The compression steps a :class:`kdtf.compress.Recipe` chains.

Every step follows one protocol:

* ``parse(text)`` (classmethod): the step for its string form, or ``None`` when the text
  names another step;
* ``name`` (for logs and reports) and ``short`` (for file and stage names);
* ``epochs``: fine-tuning epochs of the step (``None``: the recipe's default);
* ``run(model, context) -> (model, record)``: applies the step, fine-tunes through
  ``context.fine_tune(model, epochs)`` (distillation from the teacher, or cross-entropy
  in the comparison mode), strips its training wrappers, notes what the exported file
  must keep in ``context.pruned`` / ``context.clustered``, and returns the layers it
  touched (``record["layers"]``) with anything worth reporting.

A step knows nothing of the Distiller: how the model is fine-tuned is the caller's
callable.
"""

import dataclasses

from kdtf import validation
from kdtf.compress.cluster import cluster, cluster_wrapper, strip_clustering
from kdtf.compress.lowrank import factorize
from kdtf.compress.prune import check_sparsity, prune, strip_pruning
from kdtf.compress.quantize import quantize

__all__ = ["Prune", "Cluster", "QAT", "LowRank", "StepContext"]


@dataclasses.dataclass
class StepContext:
    """What a step may use while it runs (built by :meth:`Recipe.run`).

    Attributes:
        fine_tune: ``fine_tune(model, epochs, *, teacher=None) -> model``; ``teacher``
            overrides the run's teacher (e.g. the unpruned model, for self-distillation);
            a step may also pass ``spec=`` (a :class:`kdtf.spec.DistillSpec` for that
            fine-tuning only, as :class:`kdtf.FineTuner` accepts).
        epochs: the recipe's default fine-tuning epochs.
        steps_per_epoch: optimizer steps per epoch (pruning schedules count in steps).
        log: ``log(text)`` for progress lines.
        train_data: the training data of ``fine_tune``, when it has some (data-driven
            importance, e.g. Taylor scores for filter pruning).
        pruned: ``{layer: sparsity}`` the exported file must keep.
        clustered: ``{layer: clusters}`` the exported file must keep.
    """

    fine_tune: object
    epochs: int
    steps_per_epoch: int
    log: object = print
    train_data: object = None
    pruned: dict = dataclasses.field(default_factory=dict)
    clustered: dict = dataclasses.field(default_factory=dict)


def _pruning_schedule_steps(total_steps, steps_per_epoch):
    """End step and update frequency of the polynomial schedule: reach the target one
    epoch before the end (half-way for a single epoch), updating 4 times an epoch, with
    the end step on an update so the target is really reached."""
    end = total_steps - steps_per_epoch if total_steps > steps_per_epoch else total_steps // 2
    frequency = max(1, min(steps_per_epoch // 4, end))
    return max(frequency, end - end % frequency), frequency


def _value(text, kind, convert):
    try:
        return convert(text)
    except ValueError:
        raise ValueError(f"Bad value in compression step '{kind}:{text}'.") from None


@dataclasses.dataclass
class Prune:
    """``prune:S``: magnitude pruning to sparsity ``S`` (polynomial schedule); ``2:4``:
    structured 2:4 sparsity. Layers with fewer than ``min_weights`` kernel weights stay
    dense."""

    sparsity: float = 0.75
    m_by_n: tuple = None
    min_weights: int = 1000
    epochs: int = None

    def __post_init__(self):
        if not self.m_by_n:
            self.sparsity = check_sparsity(self.sparsity)

    @classmethod
    def parse(cls, text):
        if text in ("2:4", "sparse24"):
            return cls(m_by_n=(2, 4))
        kind, _, value = text.partition(":")
        return cls(_value(value, kind, float) if value else 0.75) if kind == "prune" else None

    name = property(lambda self: "2:4" if self.m_by_n else f"prune {self.sparsity:.0%}")
    short = property(lambda self: "2:4" if self.m_by_n else "pruned")

    def run(self, model, context):
        epochs = self.epochs or context.epochs
        end_step, frequency = _pruning_schedule_steps(context.steps_per_epoch * epochs, context.steps_per_epoch)
        model = prune(model, self.sparsity, m_by_n=self.m_by_n, min_weights=self.min_weights,
                      end_step=end_step, frequency=frequency)
        touched = [layer.layer.name for layer in model.layers if hasattr(layer, "pruning_obj")]
        model = strip_pruning(context.fine_tune(model, epochs))
        target = 0.5 if self.m_by_n else self.sparsity
        context.pruned.update({name: target for name in touched})
        return model, {"layers": touched, "target_sparsity": target}


@dataclasses.dataclass
class Cluster:
    """``cluster:K``: weight clustering to ``K`` values per kernel (zeros kept when a
    pruning step came before)."""

    clusters: int = 16
    init: str = "kmeans++"
    min_weights: int = 1000
    epochs: int = None

    def __post_init__(self):
        self.clusters = validation.integer("clusters", self.clusters, 2)

    @classmethod
    def parse(cls, text):
        kind, _, value = text.partition(":")
        return cls(_value(value, kind, int) if value else 16) if kind == "cluster" else None

    name = property(lambda self: f"cluster {self.clusters}")
    short = property(lambda self: "clustered")

    def run(self, model, context):
        model = cluster(model, self.clusters, init=self.init, preserve_sparsity=bool(context.pruned),
                        min_weights=self.min_weights)
        touched = [layer.layer.name for layer in model.layers if isinstance(layer, cluster_wrapper.ClusterWeights)]
        model = strip_clustering(context.fine_tune(model, self.epochs or context.epochs))
        context.clustered.update({name: self.clusters for name in touched})
        return model, {"layers": touched, "clusters": self.clusters}


@dataclasses.dataclass
class QAT:
    """``qat``: quantization-aware training, preserving the sparsity and/or clusters of
    the steps before it (PQAT, CQAT, PCQAT). Must be last. The in-model input
    preprocessing of backbone classifiers (``preprocess_*`` layers) stays float."""

    epochs: int = None

    @classmethod
    def parse(cls, text):
        return cls() if text == "qat" else None

    name = property(lambda self: "qat")
    short = property(lambda self: "qat")

    def run(self, model, context):
        preserve = {(True, True): "clusters+sparsity", (False, True): "clusters", (True, False): "sparsity"}.get(
            (bool(context.pruned), bool(context.clustered))
        )
        float_layers = [layer.name for layer in model.layers if layer.name.startswith("preprocess_")]
        model = context.fine_tune(quantize(model, preserve=preserve, skip=float_layers), self.epochs or context.epochs)
        return model, {"layers": [], "preserve": preserve, "float_layers": float_layers}


@dataclasses.dataclass
class LowRank:
    """``lowrank:E`` (retained energy in (0, 1)) or ``lowrank:R`` (integer rank): SVD
    factorization of Dense and Conv2D kernels. Must come first (it rebuilds the model)."""

    energy: float = None
    rank: int = None
    epochs: int = None

    def __post_init__(self):
        if self.rank is None:
            validation.number("lowrank energy", self.energy, 0, 1, low_open=True, high_open=True,
                              what="in (0, 1) or an integer rank >= 1")

    @classmethod
    def parse(cls, text):
        kind, _, value = text.partition(":")
        if kind != "lowrank" or not value:
            return None
        number = _value(value, kind, float)
        return cls(rank=int(number)) if number >= 1 and number.is_integer() else cls(energy=number)

    name = property(lambda self: f"lowrank r={self.rank}" if self.rank else f"lowrank {self.energy:.0%} energy")
    short = property(lambda self: "lowrank")

    def run(self, model, context):
        model, ranks = factorize(model, rank=self.rank, energy=self.energy)
        model = context.fine_tune(model, self.epochs or context.epochs)
        return model, {"layers": sorted(ranks), "ranks": ranks}

