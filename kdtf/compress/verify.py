"""Checks, on the exported ``.tflite`` itself, that compression survived conversion.

Each function reads the weight buffers of the flatbuffer, finds the tensor of each named
Keras layer (TFLite tensor names carry the layer name, possibly prefixed by TF-MOT's
``quant_`` or ``prune_low_magnitude_``), and raises ValueError listing every layer that
fails, or returns what it measured.
"""

import re

import numpy as np

from kdtf.export.flatbuffer import weight_tensors, zero_mask
from kdtf.export.macs import count_macs

__all__ = ["layer_weights", "verify_sparsity", "verify_m_by_n", "verify_clusters", "verify_filters"]


def _layer_pattern(layer):
    # TFLite tensor names carry "<model>/<layer>/...", maybe after "...;" and TF-MOT prefixes
    return re.compile(rf"(^|[/;])(quant_|prune_low_magnitude_|cluster_)?{re.escape(layer)}/")


def layer_weights(flatbuffer_or_path, layer_names):
    """``{layer_name: (values, zero_points)}`` for the weight tensor of each named layer."""
    tensors = weight_tensors(flatbuffer_or_path, min_size=1)
    found, missing = {}, []
    for layer in layer_names:
        pattern = _layer_pattern(layer)
        matches = [name for name in tensors if pattern.search(name)]
        if not matches:
            missing.append(layer)
            continue
        found[layer] = tensors[matches[0]]
    if missing:
        raise ValueError(
            f"No weight tensor for layer(s) {missing} in the flatbuffer. Tensors: {sorted(tensors)[:12]}"
        )
    return found


def verify_sparsity(flatbuffer_or_path, targets, tolerance=0.01):
    """Each layer's zero fraction equals its target within ``tolerance``.

    Args:
        targets: ``{layer_name: sparsity}``.

    Returns:
        ``{layer_name: measured sparsity}``.
    """
    measured = {
        layer: float(np.mean(zero_mask(values, zero_points)))
        for layer, (values, zero_points) in layer_weights(flatbuffer_or_path, targets).items()
    }
    wrong = {k: round(v, 4) for k, v in measured.items() if abs(v - targets[k]) > tolerance}
    if wrong:
        raise ValueError(
            f"Sparsity in the .tflite differs from the target by more than {tolerance:.0%}: "
            f"measured {wrong}, targets {dict((k, targets[k]) for k in wrong)}"
        )
    return measured


def verify_m_by_n(flatbuffer_or_path, layer_names, m=2, n=4):
    """Every block of ``n`` consecutive input-channel weights (the last axis in TFLite)
    holds at least ``n - m`` zeros, i.e. at most ``m`` non-zeros. Returns the layers checked."""
    failed = []
    for layer, (values, zero_points) in layer_weights(flatbuffer_or_path, layer_names).items():
        zeros = zero_mask(values, zero_points)
        if zeros.shape[-1] % n:
            failed.append(f"{layer} (input channels {zeros.shape[-1]} not a multiple of {n})")
            continue
        blocks = zeros.reshape(zeros.shape[:-1] + (zeros.shape[-1] // n, n)).sum(-1)
        if np.any(blocks < n - m):
            failed.append(f"{layer} ({int(np.sum(blocks < n - m))} blocks with more than {m} non-zeros)")
    if failed:
        raise ValueError(f"{m}:{n} sparsity pattern broken in the .tflite for: {', '.join(failed)}")
    return list(layer_names)


def verify_clusters(flatbuffer_or_path, layer_names, clusters):
    """At most ``clusters`` distinct values per output channel of each layer (per-channel
    int8 scales map the same centroids to different integers in each channel).
    Returns ``{layer_name: largest count found in a channel}``."""
    counts = {}
    for layer, (values, _) in layer_weights(flatbuffer_or_path, layer_names).items():
        rows = values.reshape(values.shape[0], -1)
        counts[layer] = max(len(np.unique(row)) for row in rows)
    wrong = {k: v for k, v in counts.items() if v > clusters}
    if wrong:
        raise ValueError(f"More than {clusters} distinct weights per channel in the .tflite: {wrong}")
    return counts


def verify_filters(flatbuffer_or_path, expected):
    """Each layer's op in the ``.tflite`` has the expected number of output channels.

    A layer's op is the CONV_2D or FULLY_CONNECTED whose weight tensor carries the layer
    name (for SeparableConv2D, the pointwise CONV_2D), else its DEPTHWISE_CONV_2D.

    Args:
        expected: ``{layer_name: output channels}``, e.g. from
            :func:`kdtf.compress.filters.count_filters` of the pruned model.

    Returns:
        ``{layer_name: output channels found}``.
    """
    ops = count_macs(flatbuffer_or_path)["per_op"]
    found, missing = {}, []
    for layer in expected:
        pattern = _layer_pattern(layer)
        matches = sorted((op["op"] == "DEPTHWISE_CONV_2D", i) for i, op in enumerate(ops) if pattern.search(op["weights"]))
        if not matches:
            missing.append(layer)
            continue
        op = ops[matches[0][1]]
        found[layer] = op["weight_shape"][-1 if op["op"] == "DEPTHWISE_CONV_2D" else 0]
    wrong = {k: f"{v} (expected {expected[k]})" for k, v in found.items() if v != expected[k]}
    if missing or wrong:
        raise ValueError(
            "Output channels in the .tflite differ from the pruned model: "
            + ", ".join([f"{k}: {v}" for k, v in wrong.items()] + [f"{k}: no CONV_2D/FULLY_CONNECTED op found" for k in missing])
        )
    return found
