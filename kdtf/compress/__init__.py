"""Compression steps applied to a student, each fine-tuned by a callable (the Distiller
in kdtf's pipelines).

Paired verbs: prune / strip_pruning, cluster / strip_clustering, quantize (QAT wrappers;
post-training quantization is :func:`kdtf.export.post_training_quantize`), factorize;
prune_filters removes whole filters (a smaller model; ``FilterPrune`` does it in rounds);
``Recipe`` chains the steps, each returning a result that verifies itself in the
exported ``.tflite`` (``verify_*``). See ``docs/compression.md``.

Names load on first use: the step modules (:mod:`kdtf.compress.base`,
:mod:`kdtf.compress.steps`, :mod:`kdtf.compress.filter_rounds`,
:mod:`kdtf.compress.forms`) are pure Python, so the command line parses ``--compress``
before TensorFlow loads.
"""

import importlib as _importlib
import sys as _sys
import types as _types

_EXPORTS = {
    "FilterGroup": "channels",
    "cluster": "cluster", "is_clustered": "cluster", "strip_clustering": "cluster",
    "FilterPrune": "filter_rounds", "FilterResult": "filter_rounds",
    "count_filters": "filters", "prunable_groups": "filters", "prune_filters": "filters", "unprunable_filters": "filters",
    "clone_with_weights": "layers", "kernel_sparsity": "layers", "kernels": "layers", "prunable_layers": "layers",
    "unique_weights": "layers",
    "factorize": "lowrank", "factorized_params": "lowrank", "rank_for_energy": "lowrank",
    "is_pruned": "prune", "prune": "prune", "pruning_callbacks": "prune", "strip_pruning": "prune",
    "is_quantized": "quantize", "quantize": "quantize", "quantize_scope": "quantize", "unsupported_layers": "quantize",
    "Recipe": "recipe", "Results": "recipe",
    "STEPS": "base", "register_step": "base", "Step": "base", "parse_step": "forms", "parse_steps": "forms",
    "step_forms": "forms",
    "StepResult": "base", "StepContext": "base", "StepDefaults": "base", "FineTune": "base",
    "QAT": "steps", "Cluster": "steps", "LowRank": "steps", "Prune": "steps",
    "PruneResult": "steps", "ClusterResult": "steps", "QATResult": "steps", "LowRankResult": "steps",
    "verify_clusters": "verify", "verify_filters": "verify", "verify_m_by_n": "verify", "verify_sparsity": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        try:  # a submodule, e.g. kdtf.compress.transformer_qat
            return _importlib.import_module(f"kdtf.compress.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'kdtf.compress' has no attribute {name!r}") from None
    value = getattr(_importlib.import_module(f"kdtf.compress.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """The import system sets each imported submodule as an attribute of its package;
    where a function has its submodule's name (``prune``, ``cluster``, ``quantize``),
    the function keeps the name (as the eager imports of 0.1 had it)."""

    def __setattr__(self, name, value):
        if isinstance(value, _types.ModuleType) and name in _EXPORTS and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
