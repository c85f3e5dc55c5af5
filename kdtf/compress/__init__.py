"""Compression steps applied to a student, each fine-tuned by a callable (the Distiller
in kdtf's pipelines).

Paired verbs: prune / strip_pruning, cluster / strip_clustering, quantize, factorize;
``Recipe`` chains them; ``verify_*`` check the result inside the exported ``.tflite``.
"""

from kdtf.compress.cluster import cluster, is_clustered, strip_clustering
from kdtf.compress.layers import (
    clone_with_weights,
    kernel_sparsity,
    kernels,
    prunable_layers,
    unique_weights,
)
from kdtf.compress.lowrank import factorize, factorized_params, rank_for_energy
from kdtf.compress.prune import is_pruned, prune, pruning_callbacks, strip_pruning
from kdtf.compress.quantize import is_quantized, quantize, quantize_scope, unsupported_layers
from kdtf.compress.recipe import Recipe, parse_step
from kdtf.compress.steps import QAT, Cluster, LowRank, Prune, StepContext
from kdtf.compress.verify import verify_clusters, verify_m_by_n, verify_sparsity

__all__ = [
    "prune", "strip_pruning", "is_pruned", "prunable_layers", "pruning_callbacks",
    "cluster", "strip_clustering", "is_clustered",
    "quantize", "is_quantized", "quantize_scope", "unsupported_layers",
    "factorize", "factorized_params", "rank_for_energy",
    "Recipe", "parse_step", "StepContext", "Prune", "Cluster", "QAT", "LowRank",
    "verify_sparsity", "verify_m_by_n", "verify_clusters",
    "kernel_sparsity", "kernels", "unique_weights", "clone_with_weights",
]
