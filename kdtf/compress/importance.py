"""Filter importance for structured pruning: one score per channel class.

A class is a set of channels removed together (see :mod:`kdtf.compress.channels`); its
score is the sum of the scores of its member channels. Criteria:

* ``"l1"``: ``sum |W[..., f]|``, the L1 norm of the filter's kernel (Li et al., "Pruning
  Filters for Efficient ConvNets", ICLR 2017).
* ``"l2"``: ``sqrt(sum W[..., f]^2)``.
* ``"bn"``: ``|gamma_f|`` of the BatchNormalization layers the channel passes through
  (network slimming: Liu et al., "Learning Efficient Convolutional Networks through
  Network Slimming", ICCV 2017). Channels with no BatchNormalization cannot be ranked.
* ``"taylor"``: ``|mean over positions of a_f * dL/da_f|`` per example, averaged over the
  examples of a few batches: the first-order Taylor estimate of the loss change when the
  feature map ``a_f`` is zeroed (Molchanov et al., "Pruning Convolutional Neural Networks
  for Resource Efficient Inference", ICLR 2017). Needs data and a loss.

SeparableConv2D filters are scored by their pointwise kernel.
"""

import numpy as np

from kdtf._keras import keras, tf
from kdtf.compress.filter_choices import CRITERIA

__all__ = ["CRITERIA", "class_scores", "masked_cross_entropy"]



def _kernel(layer):
    return layer.pointwise_kernel if type(layer) is keras.layers.SeparableConv2D else layer.kernel


def _norms(model, graph, order):
    scores = {}
    for name in graph.producers:
        kernel = _kernel(model.get_layer(name)).numpy()
        flat = np.abs(kernel.reshape(-1, kernel.shape[-1]))
        scores[name] = flat.sum(0) if order == 1 else np.sqrt(np.square(flat).sum(0))
    return scores


def _accumulate(graph, per_channel):
    """``{class root: summed score}`` from ``{layer: (ids, channel scores)}``."""
    totals = {}
    for ids, values in per_channel.values():
        for root, value in zip(graph.root(ids).tolist(), np.asarray(values, np.float64).tolist()):
            totals[root] = totals.get(root, 0.0) + value
    return totals


def masked_cross_entropy(y, logits):
    """Mean sparse cross-entropy over the labelled examples (label ``-1`` = unlabeled)."""
    y = tf.reshape(tf.cast(y, tf.int32), [-1])
    weights = tf.cast(y >= 0, logits.dtype)
    losses = keras.losses.sparse_categorical_crossentropy(tf.maximum(y, 0), logits, from_logits=True)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _batches(data, count):
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape"):  # (x, y) arrays
        data = tf.data.Dataset.from_tensor_slices(data).batch(64)
    return data.take(count) if hasattr(data, "take") else list(data)[:count]


def _taylor(model, graph, data, loss, batches):
    names = list(graph.producers)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names] + list(model.outputs))
    sums = {n: 0.0 for n in names}
    seen = 0
    for x, y in _batches(data, batches):
        if isinstance(x, dict):  # a Distiller.cached_dataset(): {"x": images, ...}
            x = x["x"]
        with tf.GradientTape() as tape:
            outputs = probe(x, training=False)
            value = loss(y, outputs[len(names)])
        grads = tape.gradient(value, outputs[: len(names)])
        for name, a, g in zip(names, outputs, grads):
            if g is None:
                continue
            product = tf.reshape(a * g, [tf.shape(a)[0], -1, a.shape[-1]])
            sums[name] = sums[name] + tf.reduce_sum(tf.abs(tf.reduce_mean(product, 1)), 0).numpy()
        seen += int(tf.shape(x)[0])
    if not seen:
        raise ValueError("Expected data with at least one (x, y) batch for criterion='taylor'. Received: an empty dataset.")
    return {n: np.broadcast_to(np.asarray(sums[n], np.float64) / seen, graph.producers[n].shape) for n in names}


def class_scores(model, graph, criterion, data=None, loss=None, batches=4):
    """``{class root: score}`` for every class of the producers of ``graph``.

    Args:
        model: the model ``graph`` was built from.
        graph: a :class:`kdtf.compress.channels.ChannelGraph`.
        criterion: one of :data:`CRITERIA`.
        data: ``(x, y)`` batches (a ``tf.data.Dataset`` or a list) for ``"taylor"``.
        loss: ``loss(y, logits) -> scalar`` for ``"taylor"`` (default
            :func:`masked_cross_entropy`; the model must output logits).
        batches: how many batches of ``data`` to use.

    Returns:
        Scores by class root; a class missing from the dict has no score (``"bn"``
        where no BatchNormalization follows).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"Expected criterion in {CRITERIA}. Received: criterion={criterion!r}")
    if criterion in ("l1", "l2"):
        norms = _norms(model, graph, 1 if criterion == "l1" else 2)
        return _accumulate(graph, {n: (graph.producers[n], v) for n, v in norms.items()})
    if criterion == "bn":
        gammas = {
            name: (ids, np.abs(model.get_layer(name).gamma.numpy()))
            for name, ids in graph.inputs.items()
            if type(model.get_layer(name)) is keras.layers.BatchNormalization and model.get_layer(name).scale
            and ids is not None
        }
        return _accumulate(graph, gammas)
    if data is None:
        raise ValueError("Expected data=(x, y) batches for criterion='taylor' (activation x gradient). Received: data=None")
    scores = _taylor(model, graph, data, loss or masked_cross_entropy, batches)
    return _accumulate(graph, {n: (graph.producers[n], v) for n, v in scores.items()})
