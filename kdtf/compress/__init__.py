"""Compression steps applied to a student, each fine-tuned by a callable (the Distiller
in kdtf's pipelines).

Paired verbs: prune / strip_pruning, cluster / strip_clustering, quantize, factorize;
prune_filters removes whole filters (a smaller model; ``FilterPrune`` does it in rounds);
``Recipe`` chains them; ``verify_*`` check the result inside the exported ``.tflite``.
"""

from kdtf.compress.channels import FilterGroup
from kdtf.compress.cluster import cluster, is_clustered, strip_clustering
from kdtf.compress.filter_rounds import FilterPrune
from kdtf.compress.filters import count_filters, prunable_groups, prune_filters, unprunable_filters
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
from kdtf.compress.verify import verify_clusters, verify_filters, verify_m_by_n, verify_sparsity

__all__ = [
    "prune", "strip_pruning", "is_pruned", "prunable_layers", "pruning_callbacks",
    "cluster", "strip_clustering", "is_clustered",
    "quantize", "is_quantized", "quantize_scope", "unsupported_layers",
    "factorize", "factorized_params", "rank_for_energy",
    "prune_filters", "prunable_groups", "unprunable_filters", "count_filters", "FilterGroup", "FilterPrune",
    "Recipe", "parse_step", "StepContext", "Prune", "Cluster", "QAT", "LowRank",
    "verify_sparsity", "verify_m_by_n", "verify_clusters", "verify_filters",
    "kernel_sparsity", "kernels", "unique_weights", "clone_with_weights",
]
