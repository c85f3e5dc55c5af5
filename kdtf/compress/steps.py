"""The built-in compression steps and their results (filter pruning is
:mod:`kdtf.compress.filter_rounds`); each registers itself with
:func:`kdtf.compress.base.register_step`.

Every step follows the :class:`kdtf.compress.base.Step` protocol: ``parse(text)``,
``name`` / ``short``, ``epochs``, and ``run(model, context) -> (model, details)``: it
applies the step, fine-tunes through ``context.fine_tune(model, epochs)`` (distillation
from the teacher, or cross-entropy in the comparison mode), strips its training wrappers
and returns the layers it touched (``details["layers"]``) with anything worth reporting.
The recipe wraps ``details`` in the step's ``result_type``, whose ``verify`` checks the
promise in the exported ``.tflite``.

This module is pure Python (``--help`` reads the registry): the TF-MOT operations are
imported when a step runs, the flatbuffer checks when a result verifies.

A step knows nothing of the Distiller: how the model is fine-tuned is the caller's
callable.
"""

import dataclasses

from kdtf import validation
from kdtf.compress.base import Step, StepContext, StepResult, register_step

__all__ = ["Prune", "Cluster", "QAT", "LowRank", "StepContext", "PruneResult", "ClusterResult", "QATResult",
           "LowRankResult"]


class PruneResult(StepResult):
    """Magnitude or 2:4 pruning: each touched layer's sparsity (``target_sparsity``) or
    its 2:4 pattern is checked in the flatbuffer."""

    @property
    def pruned(self):
        return {name: self.details["target_sparsity"] for name in self.layers}

    @property
    def m_by_n(self):
        return self.step == "2:4"

    def verify(self, flatbuffer_or_path):
        from kdtf.compress.verify import verify_m_by_n, verify_sparsity

        if not self.layers:
            return {}
        if self.m_by_n:
            return {"2:4": verify_m_by_n(flatbuffer_or_path, sorted(self.layers))}
        return {"sparsity": verify_sparsity(flatbuffer_or_path, self.pruned, tolerance=0.01)}

    def summary(self):
        return f"{len(self.layers)} layer(s) at {self.details['target_sparsity']:.0%} sparsity" + (
            " in 2:4 blocks" if self.m_by_n else "")


class ClusterResult(StepResult):
    """Weight clustering: at most ``clusters`` distinct weights per channel of each
    touched layer in the flatbuffer."""

    @property
    def clustered(self):
        return {name: self.details["clusters"] for name in self.layers}

    def verify(self, flatbuffer_or_path):
        from kdtf.compress.verify import verify_clusters

        if not self.layers:
            return {}
        return {"clusters": verify_clusters(flatbuffer_or_path, sorted(self.layers), self.details["clusters"])}

    def summary(self):
        return f"{len(self.layers)} layer(s) at {self.details['clusters']} weights each"


class QATResult(StepResult):
    """Quantization-aware training: the converter reads its ranges (nothing further
    to check in the file; the earlier steps' results check what it preserved)."""

    def summary(self):
        preserve = self.details.get("preserve")
        return "int8 ranges learned" + (f", preserving {preserve}" if preserve else "")


class LowRankResult(StepResult):
    """Low-rank factorization: the rank of each factorized layer."""

    def summary(self):
        ranks = self.details.get("ranks", {})
        return f"{len(ranks)} layer(s) factorized" + (f" (ranks {min(ranks.values())}-{max(ranks.values())})" if ranks else "")


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


@register_step("sparse24", form="2:4")
@register_step("prune", form="prune:S")
@dataclasses.dataclass
class Prune(Step):
    """``prune:S``: magnitude pruning to sparsity ``S`` (polynomial schedule); ``2:4``:
    structured 2:4 sparsity. Layers with fewer than ``min_weights`` kernel weights stay
    dense."""

    sparsity: float = 0.75
    m_by_n: tuple = None
    min_weights: int = 1000
    epochs: int = None

    result_type = PruneResult

    def __post_init__(self):
        if not self.m_by_n:
            self.sparsity = validation.number("sparsity", self.sparsity, 0, 1, high_open=True,
                                              what="in [0, 1) (the fraction of weights set to zero)")

    @classmethod
    def parse(cls, text):
        if text in ("2:4", "sparse24"):
            return cls(m_by_n=(2, 4))
        kind, _, value = text.partition(":")
        return cls(_value(value, kind, float) if value else 0.75) if kind == "prune" else None

    name = property(lambda self: "2:4" if self.m_by_n else f"prune {self.sparsity:.0%}")
    short = property(lambda self: "2:4" if self.m_by_n else "pruned")

    def run(self, model, context):
        from kdtf.compress.prune import prune, strip_pruning

        epochs = self.epochs or context.epochs
        end_step, frequency = _pruning_schedule_steps(context.steps_per_epoch * epochs, context.steps_per_epoch)
        model = prune(model, self.sparsity, m_by_n=self.m_by_n, min_weights=self.min_weights,
                      end_step=end_step, frequency=frequency)
        touched = [layer.layer.name for layer in model.layers if hasattr(layer, "pruning_obj")]
        model = strip_pruning(context.fine_tune(model, epochs))
        target = 0.5 if self.m_by_n else self.sparsity
        return model, {"layers": touched, "target_sparsity": target}


@register_step("cluster", form="cluster:K")
@dataclasses.dataclass
class Cluster(Step):
    """``cluster:K``: weight clustering to ``K`` values per kernel (zeros kept when a
    pruning step came before)."""

    clusters: int = 16
    init: str = "kmeans++"
    min_weights: int = 1000
    epochs: int = None

    result_type = ClusterResult

    def __post_init__(self):
        self.clusters = validation.integer("clusters", self.clusters, 2)

    @classmethod
    def parse(cls, text):
        kind, _, value = text.partition(":")
        return cls(_value(value, kind, int) if value else 16) if kind == "cluster" else None

    name = property(lambda self: f"cluster {self.clusters}")
    short = property(lambda self: "clustered")

    def run(self, model, context):
        from kdtf.compress.cluster import cluster, cluster_wrapper, strip_clustering

        model = cluster(model, self.clusters, init=self.init, preserve_sparsity=bool(context.pruned),
                        min_weights=self.min_weights)
        touched = [layer.layer.name for layer in model.layers if isinstance(layer, cluster_wrapper.ClusterWeights)]
        model = strip_clustering(context.fine_tune(model, self.epochs or context.epochs))
        return model, {"layers": touched, "clusters": self.clusters}


@register_step("qat")
@dataclasses.dataclass
class QAT(Step):
    """``qat``: quantization-aware training, preserving the sparsity and/or clusters of
    the steps before it (PQAT, CQAT, PCQAT). Must be last. The in-model input
    preprocessing of backbone classifiers (``preprocess_*`` layers) stays float."""

    epochs: int = None

    last = True
    order_rule = "'qat' must be the last compression step (later steps would undo its ranges)."
    epochs_from = "qat_epochs"
    result_type = QATResult
    learns_int8_ranges = True

    @classmethod
    def parse(cls, text):
        return cls() if text == "qat" else None

    name = property(lambda self: "qat")
    short = property(lambda self: "qat")

    def run(self, model, context):
        from kdtf.compress.quantize import quantize

        preserve = {(True, True): "clusters+sparsity", (False, True): "clusters", (True, False): "sparsity"}.get(
            (bool(context.pruned), bool(context.clustered))
        )
        float_layers = [layer.name for layer in model.layers if layer.name.startswith("preprocess_")]
        model = context.fine_tune(quantize(model, preserve=preserve, skip=float_layers), self.epochs or context.epochs)
        return model, {"layers": [], "preserve": preserve, "float_layers": float_layers}


@register_step("lowrank", form="lowrank:E|R")
@dataclasses.dataclass
class LowRank(Step):
    """``lowrank:E`` (retained energy in (0, 1)) or ``lowrank:R`` (integer rank): SVD
    factorization of Dense and Conv2D kernels. Must come first (it rebuilds the model)."""

    energy: float = None
    rank: int = None
    epochs: int = None

    first = True
    order_rule = "'lowrank' must be the first compression step (it rebuilds the model)."
    result_type = LowRankResult

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
        from kdtf.compress.lowrank import factorize

        model, ranks = factorize(model, rank=self.rank, energy=self.energy)
        model = context.fine_tune(model, self.epochs or context.epochs)
        return model, {"layers": sorted(ranks), "ranks": ranks}

