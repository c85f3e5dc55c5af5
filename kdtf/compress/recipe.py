"""A compression recipe: steps applied in order, each fine-tuned (by default by the
Distiller, so the teacher keeps guiding), wrappers stripped between steps.

    recipe = Recipe.parse("lowrank:0.9,prune:0.75,qat")
    model, stages = recipe.run(student, teacher, train_ds, val_ds, epochs=2)

Steps (string form / object):

* ``prune:S`` / ``Prune(S)``: magnitude pruning to sparsity ``S`` (polynomial schedule).
* ``2:4`` / ``Prune(m_by_n=(2, 4))``: structured 2:4 sparsity.
* ``cluster:K`` / ``Cluster(K)``: weight clustering to ``K`` values per kernel (sparsity
  preserved when a pruning step came before).
* ``qat`` / ``QAT()``: quantization-aware training; preserves sparsity and/or clusters
  from the steps before it (PQAT, CQAT, PCQAT). Must be last.
* ``lowrank:E`` (energy in (0, 1)) or ``lowrank:R`` (integer rank) / ``LowRank(...)``:
  SVD factorization. Must come before the other steps.
"""

import dataclasses

import numpy as np

from kdtf._keras import keras
from kdtf.compress.cluster import _check_clusters, cluster, cluster_wrapper, strip_clustering
from kdtf.compress.layers import kernel_sparsity, unique_weights
from kdtf.compress.lowrank import factorize
from kdtf.compress.prune import _check_sparsity, is_pruned, prune, pruning_callbacks, strip_pruning
from kdtf.compress.quantize import is_quantized, quantize

__all__ = ["Recipe", "Prune", "Cluster", "QAT", "LowRank", "STEP_NAMES"]

STEP_NAMES = ("prune:S", "2:4", "cluster:K", "qat", "lowrank:E|R")


@dataclasses.dataclass
class Prune:
    sparsity: float = 0.75
    m_by_n: tuple = None
    min_weights: int = 1000
    epochs: int = None

    @property
    def name(self):
        return "2:4" if self.m_by_n else f"prune {self.sparsity:.0%}"

    short = property(lambda self: "2:4" if self.m_by_n else "pruned")


@dataclasses.dataclass
class Cluster:
    clusters: int = 16
    init: str = "kmeans++"
    min_weights: int = 1000
    epochs: int = None

    @property
    def name(self):
        return f"cluster {self.clusters}"

    short = property(lambda self: "clustered")


@dataclasses.dataclass
class QAT:
    epochs: int = None

    @property
    def name(self):
        return "qat"

    short = property(lambda self: "qat")


@dataclasses.dataclass
class LowRank:
    energy: float = None
    rank: int = None
    epochs: int = None

    @property
    def name(self):
        return f"lowrank r={self.rank}" if self.rank else f"lowrank {self.energy:.0%} energy"

    short = property(lambda self: "lowrank")


def _parse_step(text):
    text = text.strip()
    kind, _, value = text.partition(":")
    try:
        if text in ("2:4", "sparse24"):
            return Prune(m_by_n=(2, 4))
        if kind == "prune":
            return Prune(float(value) if value else 0.75)
        if kind == "cluster":
            return Cluster(int(value) if value else 16)
        if kind == "qat" and not value:
            return QAT()
        if kind == "lowrank" and value:
            number = float(value)
            return LowRank(rank=int(number)) if number >= 1 and number.is_integer() else LowRank(energy=number)
    except ValueError:
        raise ValueError(f"Bad value in compression step {text!r}. Steps: {', '.join(STEP_NAMES)}") from None
    raise ValueError(f"Unknown compression step {text!r}. Steps: {', '.join(STEP_NAMES)}")


class Recipe:
    """Ordered compression steps; see the module docstring."""

    def __init__(self, steps):
        steps = list(steps)
        if not steps:
            raise ValueError("A compression recipe needs at least one step.")
        for i, step in enumerate(steps):
            if not isinstance(step, (Prune, Cluster, QAT, LowRank)):
                raise ValueError(f"Unknown compression step {step!r}. Steps: {', '.join(STEP_NAMES)}")
            if isinstance(step, QAT) and i != len(steps) - 1:
                raise ValueError("'qat' must be the last compression step (later steps would undo its ranges).")
            if isinstance(step, LowRank) and i != 0:
                raise ValueError("'lowrank' must be the first compression step (it rebuilds the model).")
            if isinstance(step, Prune) and not step.m_by_n:
                _check_sparsity(step.sparsity)
            if isinstance(step, Cluster):
                _check_clusters(step.clusters)
            if isinstance(step, LowRank) and step.rank is None and not 0 < step.energy < 1:
                raise ValueError(f"Expected lowrank energy in (0, 1) or an integer rank >= 1. Received: {step.energy}")
        self.steps = steps

    @classmethod
    def parse(cls, text):
        """``"prune:0.75,qat"`` -> Recipe."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Expected compression steps like 'prune:0.75,qat'. Received: {text!r}")
        return cls([_parse_step(part) for part in text.split(",")])

    def __repr__(self):
        return f"Recipe({self.steps!r})"

    @property
    def short_name(self):
        """e.g. ``"pruned+qat"``: names the stage in reports."""
        return "+".join(step.short for step in self.steps)

    def run(
        self,
        student,
        teacher=None,
        train_ds=None,
        val_ds=None,
        *,
        epochs=2,
        learning_rate=3e-4,
        temperature=4.0,
        alpha=0.5,
        distill=None,
        steps_per_epoch=None,
        verbose=0,
        log=None,
        callbacks=None,
        checkpoint=None,
    ):
        """Applies every step to (a copy of) ``student`` and fine-tunes after each.

        With a ``teacher`` each step is fine-tuned by :class:`kdtf.Distiller` (terms
        ``distill``, default Hinton KD; ``"embedding"`` with ``alpha=0`` for an encoder
        and an unlabeled ``train_ds``); without
        one, by cross-entropy, so the benefit of distillation can be measured. For that
        comparison pass a ``train_ds`` of labelled examples only (e.g.
        :func:`kdtf.data.labelled_dataset`) with the same ``steps_per_epoch``; any ``-1``
        label left in it gets weight 0.

        ``callbacks(index)`` gives extra callbacks for the fit of step ``index`` (e.g.
        ``BackupAndRestore``). ``checkpoint`` (for resuming) has ``load_step(index)``,
        returning ``(model, record, pruned, clustered)`` of a completed step or ``None``,
        and ``save_step(index, model, record, pruned, clustered)``, called after every
        step but the last.

        Returns:
            ``(model, stages)``: the compressed model (wrappers stripped; QAT wrappers
            kept, as the converter needs them) and one record per step with its name,
            the layers it touched, parameter count, kernel sparsity and unique values.
        """
        from kdtf.distiller import Distiller

        if steps_per_epoch is None:
            steps_per_epoch = _count_batches(train_ds)
        model, stages = student, []
        pruned, clustered = {}, {}
        for index, step in enumerate(self.steps):
            restored = checkpoint.load_step(index) if checkpoint is not None else None
            if restored is not None:
                model, record, pruned, clustered = restored
                stages.append(record)
                if log:
                    log(f"compress step {step.name}: completed before, resumed from its saved model")
                continue
            step_epochs = step.epochs or epochs
            total_steps = steps_per_epoch * step_epochs
            touched = []
            if isinstance(step, LowRank):
                model, ranks = factorize(model, rank=step.rank, energy=step.energy)
                touched = sorted(ranks)
                extra = {"ranks": ranks}
            elif isinstance(step, Prune):
                end_step, frequency = _pruning_schedule_steps(total_steps, steps_per_epoch)
                model = prune(
                    model, step.sparsity, m_by_n=step.m_by_n, min_weights=step.min_weights,
                    end_step=end_step, frequency=frequency,
                )
                touched = [layer.layer.name for layer in model.layers if hasattr(layer, "pruning_obj")]
                extra = {"target_sparsity": 0.5 if step.m_by_n else step.sparsity}
            elif isinstance(step, Cluster):
                model = cluster(
                    model, step.clusters, init=step.init, preserve_sparsity=bool(pruned), min_weights=step.min_weights,
                )
                touched = [layer.layer.name for layer in model.layers if isinstance(layer, cluster_wrapper.ClusterWeights)]
                extra = {"clusters": step.clusters}
            else:
                preserve = {(True, True): "clusters+sparsity", (False, True): "clusters", (True, False): "sparsity"}.get(
                    (bool(pruned), bool(clustered))
                )
                # the in-model input preprocessing of backbone classifiers stays float
                float_layers = [layer.name for layer in model.layers if layer.name.startswith("preprocess_")]
                model = quantize(model, preserve=preserve, skip=float_layers)
                extra = {"preserve": preserve, "float_layers": float_layers}
            if log:
                log(f"compress step {step.name}: {'distilling' if teacher is not None else 'cross-entropy'} for {step_epochs} epochs" + (f" on {touched}" if touched else ""))
            if teacher is not None:
                trainer = Distiller(model, teacher, temperature=temperature, alpha=alpha, distill=distill, name="compress")
                trainer.compile(keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
                trainer.fit(train_ds, validation_data=val_ds, epochs=step_epochs, steps_per_epoch=steps_per_epoch, verbose=verbose,
                            callbacks=callbacks(index) if callbacks else None)
            else:
                _fit_cross_entropy(model, train_ds, val_ds, step_epochs, learning_rate, steps_per_epoch, verbose,
                                   callbacks(index) if callbacks else None)
            if isinstance(step, Prune):
                model = strip_pruning(model)
                for name in touched:
                    pruned[name] = extra["target_sparsity"]
            if isinstance(step, Cluster):
                model = strip_clustering(model)
                for name in touched:
                    clustered[name] = step.clusters
            per_layer, overall = kernel_sparsity(model)
            stages.append(dict(
                step=step.name, layers=touched, params=_float_params(model), sparsity=overall,
                layer_sparsity=per_layer, unique_weights=unique_weights(model), **extra,
            ))
            if checkpoint is not None and index < len(self.steps) - 1:
                checkpoint.save_step(index, model, stages[-1], dict(pruned), dict(clustered))
        self.pruned_layers, self.clustered_layers = pruned, clustered
        return model, stages

    def verify(self, flatbuffer_or_path):
        """Checks the exported file keeps what the last :meth:`run` promised: sparsity of
        each pruned kernel within 1 point of its target, the 2:4 pattern, at most K
        distinct weights per channel of each clustered kernel. Raises ValueError, or
        returns what was measured."""
        from kdtf.compress.verify import verify_clusters, verify_m_by_n, verify_sparsity

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
        return result


def _pruning_schedule_steps(total_steps, steps_per_epoch):
    """End step and update frequency of the polynomial schedule: reach the target one
    epoch before the end (half-way for a single epoch), updating 4 times an epoch, with
    the end step on an update so the target is really reached."""
    end = total_steps - steps_per_epoch if total_steps > steps_per_epoch else total_steps // 2
    frequency = max(1, min(steps_per_epoch // 4, end))
    return max(frequency, end - end % frequency), frequency


def _float_params(model):
    # parameters of the deployed layers, leaving out TF-MOT's quantizer ranges and steps
    if not is_quantized(model):
        return model.count_params()
    return int(sum(np.prod(w.shape) for w in model.weights if w.name.split("/")[-1].split(":")[0] in ("kernel", "bias", "depthwise_kernel", "gamma", "beta", "moving_mean", "moving_variance")))


def _count_batches(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality > 0:
        return cardinality
    raise ValueError("Pass steps_per_epoch: the training dataset's length is unknown.")


def _fit_cross_entropy(model, train_ds, val_ds, epochs, learning_rate, steps_per_epoch, verbose, callbacks=None):
    # -1 labels (unlabeled transfer examples) get weight 0, so plain fine-tuning uses
    # exactly the labelled examples the Distiller's cross-entropy would.
    def weigh(x, y):
        if isinstance(x, dict):  # a Distiller.cached_dataset(): plain training needs no teacher
            x = x["x"]
        return x, keras.backend.maximum(y, 0), keras.backend.cast(y >= 0, "float32")

    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    callbacks = list(callbacks or []) + (pruning_callbacks() if is_pruned(model) else [])
    model.fit(train_ds.map(weigh), validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks, verbose=verbose)
