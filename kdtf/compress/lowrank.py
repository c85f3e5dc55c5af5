"""Low-rank factorization by truncated SVD (not in TF-MOT): :func:`factorize`.

A Dense kernel ``W`` (``m x n``) becomes two Dense layers, ``m -> r`` (linear, no bias)
then ``r -> n`` (the original bias and activation), with ``W ~ U_r S_r V_r^T`` split as
``(U_r S_r^1/2)(S_r^1/2 V_r^T)``. A Conv2D kernel (``k x k x c_in x c_out``) is reshaped
to ``(k k c_in) x c_out`` and becomes a ``k x k`` conv with ``r`` filters (same strides,
padding and dilation; linear, no bias) followed by a ``1 x 1`` conv with ``c_out`` filters
(bias and activation). At full rank the outputs equal the original's up to float error.

Parameters after factorization (the formula :func:`factorized_params` implements):
Dense ``r (m + n) + n``; Conv2D ``r (k_h k_w c_in + c_out) + c_out`` (``+ n`` / ``+ c_out``
only when the layer had a bias).

The rank is given per layer or chosen as the smallest ``r`` keeping ``energy`` of
``sum(S^2)``. Fine-tune the result with the Distiller afterwards.
"""

import numpy as np

from kdtf._keras import keras
from kdtf.compress.graph import clone_layer, rebuild
from kdtf.compress.layers import require_graph_model

__all__ = ["factorize", "rank_for_energy", "factorized_params", "FACTORIZABLE_TYPES"]

FACTORIZABLE_TYPES = (keras.layers.Dense, keras.layers.Conv2D)


def _matrix(layer):
    kernel = layer.get_weights()[0]
    return kernel.reshape(-1, kernel.shape[-1])


def rank_for_energy(singular_values, energy):
    """Smallest rank whose singular values keep ``energy`` of ``sum(S^2)``."""
    if not 0 < energy <= 1:
        raise ValueError(f"Expected energy in (0, 1]. Received: energy={energy!r}")
    cumulative = np.cumsum(np.square(singular_values)) / np.sum(np.square(singular_values))
    return int(min(np.searchsorted(cumulative, energy - 1e-12) + 1, len(singular_values)))


def factorized_params(layer, rank):
    """Parameter count of ``layer`` once factorized at ``rank``."""
    rows, cols = _matrix(layer).shape
    return rank * (rows + cols) + (cols if layer.use_bias else 0)


def _rank_of(layer, rank, energy):
    matrix = _matrix(layer)
    limit = min(matrix.shape)
    if isinstance(rank, dict):
        rank = rank.get(layer.name)
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= limit:
            raise ValueError(
                f"Rank {rank!r} is impossible for layer '{layer.name}': its kernel is a "
                f"{matrix.shape[0]} x {matrix.shape[1]} matrix, so the rank must be in [1, {limit}]."
            )
        return int(rank)
    return rank_for_energy(np.linalg.svd(matrix, compute_uv=False), energy)


def _split(layer, rank):
    """The two layers replacing ``layer``, and their weights."""
    kernel = layer.get_weights()[0]
    matrix = kernel.reshape(-1, kernel.shape[-1])
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:rank])
    first = (u[:, :rank] * root).astype(np.float32)
    second = (root[:, None] * vt[:rank]).astype(np.float32)
    config = layer.get_config()
    tail_weights = [second] + layer.get_weights()[1:]
    if isinstance(layer, keras.layers.Dense):
        head = keras.layers.Dense(rank, use_bias=False, name=f"{layer.name}_lr_a")
        tail = keras.layers.Dense.from_config(dict(config, name=f"{layer.name}_lr_b"))
        return head, [first], tail, tail_weights
    head = keras.layers.Conv2D(
        rank, config["kernel_size"], strides=config["strides"], padding=config["padding"],
        dilation_rate=config["dilation_rate"], data_format=config["data_format"],
        use_bias=False, name=f"{layer.name}_lr_a",
    )
    tail = keras.layers.Conv2D.from_config(
        dict(config, kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1), name=f"{layer.name}_lr_b")
    )
    head_kernel = first.reshape(kernel.shape[:-1] + (rank,))
    tail_weights[0] = second.reshape((1, 1, rank, kernel.shape[-1]))
    return head, [head_kernel], tail, tail_weights


def factorize(model, *, rank=None, energy=None, layers=None, only_if_smaller=True):
    """Returns a Functional model in which the chosen Dense/Conv2D layers are factorized.

    Args:
        model: Sequential, or Functional with one inbound node per layer.
        rank: an int for every chosen layer, or ``{layer_name: rank}``.
        energy: retained fraction of ``sum(S^2)`` used where no rank is given.
        layers: names of the layers to factorize (default: every Dense/Conv2D).
        only_if_smaller: leave a layer whole when factorizing would not reduce its
            parameter count (when ``layers`` names it, that is an error instead);
            ``False`` factorizes regardless (e.g. full rank, to check the SVD).

    Returns:
        ``(model, ranks)``: the new model, weights set from the SVD, and
        ``{layer_name: rank}`` of the layers factorized.
    """
    model = require_graph_model(model)
    if rank is None and energy is None:
        raise ValueError("Give a rank (int or {layer: rank}) or an energy threshold in (0, 1].")
    names = [layer.name for layer in model.layers]
    candidates = [layer for layer in model.layers if isinstance(layer, FACTORIZABLE_TYPES)]
    if layers is not None:
        unknown = sorted(set(layers) - set(names))
        if unknown:
            raise ValueError(f"Unknown layer name(s) in `layers`: {unknown}. Layers of '{model.name}': {names}")
        bad = [n for n in layers if not isinstance(model.get_layer(n), FACTORIZABLE_TYPES)]
        if bad:
            raise ValueError(f"Layer(s) {bad} cannot be factorized: only Dense and Conv2D can.")
        candidates = [layer for layer in candidates if layer.name in layers]
    if isinstance(rank, dict):
        unknown = sorted(set(rank) - {layer.name for layer in candidates})
        if unknown:
            raise ValueError(f"`rank` names layer(s) {unknown} that are not factorized; candidates: {[c.name for c in candidates]}")
        if energy is None:
            candidates = [layer for layer in candidates if layer.name in rank]
    plan = {}
    for layer in candidates:
        r = _rank_of(layer, rank, energy)
        if only_if_smaller and factorized_params(layer, r) >= layer.count_params():
            if layers is not None:
                raise ValueError(
                    f"Factorizing layer '{layer.name}' at rank {r} would not shrink it "
                    f"({factorized_params(layer, r)} >= {layer.count_params()} parameters); "
                    "choose a lower rank, leave it out of `layers`, or pass only_if_smaller=False."
                )
            continue
        plan[layer.name] = r
    return rebuild(model, _apply(plan), name=f"{model.name}_lowrank"), plan


def _apply(plan):
    def apply(layer, args, kwargs):
        if layer.name not in plan:
            return clone_layer(layer, args, kwargs)
        head, head_weights, tail, tail_weights = _split(layer, plan[layer.name])
        hidden = head(*args, **kwargs)
        head.set_weights(head_weights)
        out = tail(hidden)
        tail.set_weights(tail_weights)
        return out

    return apply
