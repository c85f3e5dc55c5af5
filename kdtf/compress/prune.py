"""Magnitude pruning with TF-MOT, as paired verbs: :func:`prune` / :func:`strip_pruning`.

Only the chosen layers are wrapped (by name, or every prunable layer with at least
``min_weights`` kernel weights, which keeps tiny first and last layers dense). Train the
result with :class:`kdtf.Distiller` (which attaches ``UpdatePruningStep`` itself) or
with ``fit(callbacks=[pruning_callbacks()])``.
"""

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from kdtf import validation
from kdtf.compress.layers import (
    clone_with_weights,
    kernel_sparsity,
    prunable_layers,
    require_graph_model,
    select_layers,
    wrap_layers,
)
from kdtf.export.sparse import xnnpack_sparse_layers

__all__ = [
    "prune",
    "strip_pruning",
    "is_pruned",
    "prunable_layers",
    "pruning_callbacks",
    "kernel_sparsity",
    "check_sparsity",
    "clone_with_weights",
]

_sparsity = tfmot.sparsity.keras


def check_sparsity(sparsity, name="sparsity"):
    """``float(sparsity)`` if it is in [0, 1), else a ValueError naming ``name``."""
    return validation.number(name, sparsity, 0, 1, high_open=True, what="in [0, 1) (the fraction of weights set to zero)")


def prune(
    model,
    sparsity=0.75,
    *,
    schedule="polynomial",
    begin_step=0,
    end_step=1000,
    frequency=100,
    initial_sparsity=0.0,
    m_by_n=None,
    layers=None,
    skip=None,
    min_weights=0,
    policy=None,
):
    """Wraps the chosen layers of ``model`` for magnitude pruning.

    Args:
        model: a Sequential or Functional tf_keras model.
        sparsity: final fraction of zero weights in each pruned kernel, in ``[0, 1)``.
        schedule: ``"polynomial"`` (TF-MOT PolynomialDecay from ``initial_sparsity``
            to ``sparsity`` between ``begin_step`` and ``end_step``) or ``"constant"``.
        begin_step, end_step, frequency: schedule steps (optimizer steps).
        initial_sparsity: start of the polynomial schedule.
        m_by_n: e.g. ``(2, 4)`` for 2:4 structured sparsity (``sparsity`` is then ignored).
        layers: names of layers to prune (default: every prunable layer with at least
            ``min_weights`` kernel weights).
        skip: names of layers to keep dense.
        min_weights: smallest kernel (number of weights) pruned by default.
        policy: ``"xnnpack"`` to prune only the 1x1 convolutions XNNPACK's sparse path
            runs (the model must have its pattern, checked first; see
            :mod:`kdtf.export.sparse`), for :func:`kdtf.export.to_sparse_tflite`.

    Returns:
        A new model with ``PruneLowMagnitude`` wrappers.
    """
    model = require_graph_model(model)
    sparsity = check_sparsity(sparsity)
    if schedule == "polynomial":
        if not 0 <= begin_step < end_step:
            raise ValueError(
                f"Expected 0 <= begin_step < end_step. Received: begin_step={begin_step}, end_step={end_step}"
            )
        pruning_schedule = _sparsity.PolynomialDecay(
            initial_sparsity=check_sparsity(initial_sparsity, "initial_sparsity"),
            final_sparsity=sparsity,
            begin_step=begin_step,
            end_step=end_step,
            frequency=frequency,
        )
    elif schedule == "constant":
        pruning_schedule = _sparsity.ConstantSparsity(sparsity, begin_step=begin_step, frequency=frequency)
    else:
        raise ValueError(
            f"Unknown pruning schedule {schedule!r}. Expected 'polynomial' or 'constant'."
        )
    chosen = select_layers(model, layers, skip, min_weights)
    if policy == "xnnpack":
        sparse_path = set(xnnpack_sparse_layers(model))
        chosen = [name for name in chosen if name in sparse_path]
    elif policy is not None:
        raise ValueError(f"Unknown pruning policy {policy!r}. Expected None or 'xnnpack'.")
    if not chosen:
        raise ValueError(
            f"No layer of '{model.name}' would be pruned (min_weights={min_weights}, "
            f"skip={skip}). Prunable layers: {prunable_layers(model)}"
        )
    kwargs = {"pruning_schedule": pruning_schedule}
    if m_by_n is not None:
        kwargs = {"sparsity_m_by_n": tuple(m_by_n)}

    return wrap_layers(model, chosen, lambda layer: _sparsity.prune_low_magnitude(layer, **kwargs))


def strip_pruning(model):
    """Removes pruning wrappers, keeping the pruned (zeroed) weights. Do this before export."""
    return _sparsity.strip_pruning(model)


def is_pruned(model):
    """True when ``model`` (or a model nested in it) holds pruning wrappers."""
    return bool(pruning_wrapper.collect_prunable_layers(model))


def pruning_callbacks():
    """Callbacks to train a pruned model with plain ``fit`` (the Distiller adds them itself)."""
    return [_sparsity.UpdatePruningStep()]


