"""Structured (filter) pruning: whole filters removed, so the model really shrinks.

:func:`prune_filters` removes the least important filters of Conv2D, SeparableConv2D and
Dense layers and the channels that carried them downstream (BatchNormalization,
DepthwiseConv2D, the next layer's input channels, the Dense rows behind a Flatten), and
returns a smaller plain tf_keras model (Functional, rebuilt from the layer configs with
sliced weights) that converts like any other. Unlike magnitude pruning, the parameter
count, the ``.tflite`` size, the MACs and the latency all drop, on every runtime.

Channels tied by ``Add``/``Concatenate`` are removed together (see
:mod:`kdtf.compress.channels`); the output layer and anything feeding a layer that
cannot be sliced stay whole (:func:`unprunable_filters` names them, with the reason).
The pruned model computes what the original computes with the removed channels' outputs
zeroed, except that a removed channel's constant output after BatchNormalization (its
``beta - gamma * mean / sqrt(var + eps)``) is dropped too: fine-tune after pruning,
preferably by distillation (:class:`kdtf.compress.filter_rounds.FilterPrune`).

    small, report = prune_filters(model, 0.5, criterion="l1", scope="global")
"""

import math
import numbers

import numpy as np

from kdtf._keras import keras
from kdtf.compress.channels import PRODUCER_TYPES, ChannelGraph, filter_count
from kdtf.compress.filter_choices import SCOPES, check_fraction
from kdtf.compress.graph import clone_layer, rebuild
from kdtf.compress.importance import CRITERIA, class_scores
from kdtf.compress.layers import require_graph_model

__all__ = [
    "SCOPES", "prune_filters", "prunable_groups", "unprunable_filters", "count_filters",
    "check_fraction",
]

def count_filters(model):
    """``{layer_name: output channels}`` of every Conv2D, SeparableConv2D and Dense layer."""
    return {layer.name: filter_count(layer) for layer in model.layers if type(layer) in PRODUCER_TYPES}


def prunable_groups(model):
    """The groups of layers whose filters are removed together (one
    :class:`~kdtf.compress.channels.FilterGroup` per group: layer names and prunable
    filters), input side first."""
    require_graph_model(model)
    return ChannelGraph(model).groups


def unprunable_filters(model):
    """``{layer_name: reason}`` for the Conv2D/SeparableConv2D/Dense layers of ``model``
    none of whose filters can be removed."""
    require_graph_model(model)
    return ChannelGraph(model).unprunable


def _check_min_keep(min_keep):
    if isinstance(min_keep, dict):
        bad = {k: v for k, v in min_keep.items() if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1}
        if not bad:
            return
    elif isinstance(min_keep, numbers.Integral) and not isinstance(min_keep, bool) and min_keep >= 1:
        return
    elif isinstance(min_keep, numbers.Real) and not isinstance(min_keep, bool) and 0 < min_keep <= 1:
        return
    raise ValueError(
        "Expected min_keep as an int >= 1 (filters), a float in (0, 1] (fraction of each "
        f"group) or {{layer: int >= 1}}. Received: min_keep={min_keep!r}"
    )


def _minimum(min_keep, names, total):
    if isinstance(min_keep, dict):
        wanted = max(int(min_keep.get(name, 1)) for name in names)
    elif isinstance(min_keep, numbers.Integral):
        wanted = int(min_keep)
    else:
        wanted = math.ceil(min_keep * total)
    return min(max(wanted, 1), total)


def _selected_groups(model, graph, layers, skip):
    names = [layer.name for layer in model.layers]
    for argument, given in (("layers", layers), ("skip", skip)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(f"Unknown layer name(s) in `{argument}`: {unknown}. Layers of '{model.name}': {names}")
    for name in layers or ():
        layer = model.get_layer(name)
        if type(layer) not in PRODUCER_TYPES:
            raise ValueError(
                f"Layer '{name}' ({type(layer).__name__}) has no filters to remove: only Conv2D, "
                "SeparableConv2D and Dense layers have. Leave it out of `layers`."
            )
        if name in graph.unprunable:
            raise ValueError(f"Layer '{name}' cannot be pruned: it {graph.unprunable[name]}. Leave it out of `layers`.")
    chosen = [
        group for group in graph.groups
        if (layers is None or set(group.layers) & set(layers)) and not set(group.layers) & set(skip or ())
    ]
    return [group for group in chosen if group.filters > 1]


def _keep_counts(groups, scores, fraction, scope, minimums):
    """Filters to keep per group: uniform ratio, or one ranking of the scores normalised
    by each group's mean (at most ``n - minimum`` taken from a group)."""
    if scope == "uniform":
        return [min(max(len(s) - round(len(s) * fraction), low), len(s)) for s, low in zip(scores, minimums)]
    candidates = []
    for index, (s, low) in enumerate(zip(scores, minimums)):
        finite = s[np.isfinite(s)]
        scale = finite.mean() if finite.size and finite.mean() > 0 else 1.0
        candidates += [(value / scale, index) for value in np.sort(s)[: len(s) - low]]
    candidates.sort(key=lambda pair: pair[0])
    removed = [0] * len(groups)
    for _, index in candidates[: round(fraction * sum(len(s) for s in scores))]:
        removed[index] += 1
    return [len(s) - r for s, r in zip(scores, removed)]


def _choose(graph, groups, scores, fraction, scope, min_keep, multiple_of):
    """The removed classes, and the groups left whole because nothing ranks them."""
    ranked, unranked, values = [], {}, []
    for group in groups:
        classes = graph.group_classes(group.layers)
        s = np.array([scores.get(int(c), np.nan) for c in classes])
        if np.all(np.isnan(s)):
            why = "has no BatchNormalization after it to rank its filters by (criterion 'bn')"
            unranked.update(dict.fromkeys(group.layers, why))
            continue
        ranked.append((group, classes))
        values.append(np.where(np.isnan(s), np.inf, s))
    minimums = [_minimum(min_keep, g.layers, len(c)) for g, c in ranked]
    keep = _keep_counts(ranked, values, fraction, scope, minimums)
    removed = set()
    for (_group, classes), s, k in zip(ranked, values, keep):
        k = min(len(classes), math.ceil(k / multiple_of) * multiple_of)
        removed.update(classes[np.argsort(s, kind="stable")[: len(classes) - k]].tolist())
    return removed, [g for g, _ in ranked], unranked


def _sliced_weights(layer, keep_in, keep_out):
    def take(w, mask, axis):
        return w if mask is None else np.compress(mask, w, axis=axis)

    w, kind = layer.get_weights(), type(layer)
    if kind is keras.layers.Dense:
        return [take(take(w[0], keep_in, 0), keep_out, 1)] + [take(b, keep_out, 0) for b in w[1:]]
    if kind is keras.layers.Conv2D:
        return [take(take(w[0], keep_in, 2), keep_out, 3)] + [take(b, keep_out, 0) for b in w[1:]]
    repeated = None if keep_in is None else np.repeat(keep_in, getattr(layer, "depth_multiplier", 1))
    if kind is keras.layers.SeparableConv2D:
        return [take(w[0], keep_in, 2), take(take(w[1], repeated, 2), keep_out, 3)] + [take(b, keep_out, 0) for b in w[2:]]
    if kind is keras.layers.DepthwiseConv2D:
        return [take(w[0], keep_in, 2)] + [take(b, repeated, 0) for b in w[1:]]
    return [take(v, keep_in, v.ndim - 1) if v.ndim and v.shape[-1] == len(keep_in) else v for v in w]


def _slicer(graph, removed):
    def apply(layer, args, kwargs):
        keep_in = graph.keep_mask(graph.inputs.get(layer.name), removed)
        keep_out = graph.keep_mask(graph.producers.get(layer.name), removed)
        if all(mask is None or mask.all() for mask in (keep_in, keep_out)):
            return clone_layer(layer, args, kwargs)
        config = layer.get_config()
        if keep_out is not None:
            config["units" if type(layer) is keras.layers.Dense else "filters"] = int(keep_out.sum())
        if type(layer) is keras.layers.Reshape and config["target_shape"][-1] != -1:  # keeps the channel axis
            config["target_shape"] = tuple(config["target_shape"][:-1]) + (int(keep_in.sum()),)
        return clone_layer(layer, args, kwargs, config, _sliced_weights(layer, keep_in, keep_out))

    return apply


def prune_filters(
    model, fraction, *, criterion="l1", scope="uniform", min_keep=0.1, multiple_of=1,
    layers=None, skip=None, data=None, loss=None, batches=4,
):
    """Removes ``fraction`` of the filters and returns a smaller model.

    Args:
        model: a built Sequential or Functional tf_keras model (no TF-MOT wrappers).
        fraction: share of the filters to remove, in (0, 1).
        criterion: ``"l1"``, ``"l2"`` (kernel norms), ``"bn"`` (BatchNormalization
            ``|gamma|``) or ``"taylor"`` (activation x gradient; needs ``data``); see
            :mod:`kdtf.compress.importance`.
        scope: ``"uniform"`` removes ``fraction`` of every group; ``"global"`` ranks all
            filters together, scores normalised by their group's mean.
        min_keep: filters kept at least per group: an int, a fraction of the group, or
            ``{layer_name: int}`` (a group takes the largest of its layers').
        multiple_of: round each group's kept filters up to a multiple of this (SIMD).
        layers: names of the layers to prune (their whole groups); default all.
        skip: names of layers to leave whole (with their groups).
        data, loss, batches: for ``"taylor"``: ``(x, y)`` batches, ``loss(y, logits)``
            (default: cross-entropy on logits, label -1 ignored) and batches used.

    Returns:
        ``(pruned_model, report)``; ``report`` holds ``layers`` (``{name: {"kept",
        "total"}}`` for every pruned layer), ``groups``, ``unprunable`` (``{name:
        reason}``), ``removed`` (fraction of the pruned groups' filters removed),
        ``params`` (before, after) and the arguments.
    """
    require_graph_model(model)
    fraction = check_fraction(fraction)
    if criterion not in CRITERIA:
        raise ValueError(f"Expected criterion in {CRITERIA}. Received: criterion={criterion!r}")
    if scope not in SCOPES:
        raise ValueError(f"Expected scope in {SCOPES}. Received: scope={scope!r}")
    _check_min_keep(min_keep)
    if isinstance(multiple_of, bool) or not isinstance(multiple_of, numbers.Integral) or multiple_of < 1:
        raise ValueError(f"Expected multiple_of as an int >= 1. Received: multiple_of={multiple_of!r}")
    graph = ChannelGraph(model)
    groups = _selected_groups(model, graph, layers, skip)
    scores = class_scores(model, graph, criterion, data, loss, batches) if groups else {}
    removed, groups, unranked = _choose(graph, groups, scores, fraction, scope, min_keep, multiple_of)
    unprunable = dict(graph.unprunable, **unranked)
    if not groups:
        reasons = "; ".join(f"'{name}' {why}" for name, why in unprunable.items()) or "no group has 2 filters or more"
        raise ValueError(f"No filters of '{model.name}' can be removed: {reasons}.")
    pruned = rebuild(model, _slicer(graph, removed))
    before, after = count_filters(model), count_filters(pruned)
    total = sum(graph.group_classes(g.layers).size for g in groups)
    report = dict(
        fraction=fraction, criterion=criterion, scope=scope,
        layers={n: {"kept": after[n], "total": before[n]} for g in groups for n in g.layers},
        groups=[list(g.layers) for g in groups], unprunable=unprunable,
        removed=len(removed) / total, params=[int(model.count_params()), int(pruned.count_params())],
    )
    return pruned, report
