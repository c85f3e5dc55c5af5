"""Compression steps applied to a student, each fine-tuned by the Distiller."""

from kdtf.compress.prune import (
    clone_with_weights,
    is_pruned,
    kernel_sparsity,
    prunable_layers,
    prune,
    pruning_callbacks,
    strip_pruning,
)
from kdtf.compress.quantize import is_quantized, quantize, quantize_scope, unsupported_layers

__all__ = [
    "prune",
    "strip_pruning",
    "is_pruned",
    "prunable_layers",
    "pruning_callbacks",
    "kernel_sparsity",
    "clone_with_weights",
    "quantize",
    "is_quantized",
    "quantize_scope",
    "unsupported_layers",
]
