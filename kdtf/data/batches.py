"""Batches from arrays or a dataset, and a model's accuracy over them.

Evaluation code takes either in-memory arrays ``(x, y)`` or a batched ``tf.data``
pipeline (``Splits.dataset("test", 256)``) through :func:`iterate_batches`, so a test
split never has to be held whole.
"""

import numpy as np

__all__ = ["accuracy", "hard_labels", "iterate_batches"]


def _split_element(element):
    if not isinstance(element, (tuple, list)) or len(element) < 2:
        raise ValueError(
            "Expected batches (x, y) or (x, y, index) from the dataset. "
            f"Received: an element of type {type(element).__name__}"
        )
    x, y = element[0], element[1]
    if isinstance(x, dict):
        x = x["x"]
    return np.asarray(x), np.asarray(y)


def iterate_batches(data, y=None, batch_size=256):
    """Yields numpy ``(x, y)`` batches.

    Args:
        data: an array of inputs (then ``y`` holds the labels), or a batched
            ``tf.data.Dataset`` / iterable of ``(x, y)`` or ``(x, y, index)`` batches
            (``x`` may be a ``{"x": ...}`` dict of a teacher-output cache).
        y: labels for array ``data``.
        batch_size: batch size for array ``data``.
    """
    if y is not None:
        data, labels = np.asarray(data), np.asarray(y)
        if len(labels) != len(data):
            raise ValueError(f"Expected one label per input. Received: {len(data)} inputs and {len(labels)} labels")
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size], labels[start:start + batch_size]
        return
    if isinstance(data, np.ndarray):
        raise TypeError("Expected labels y with an array of inputs. Received: y=None")
    batches = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    for element in batches:
        yield _split_element(element)


def hard_labels(y):
    """Class indices of sparse labels or of one-hot / mixed label rows."""
    y = np.asarray(y)
    return y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)


def accuracy(model, data, y=None, batch_size=256):
    """Top-1 accuracy of a Keras ``model`` over arrays ``(data, y)`` or a dataset of
    ``(x, y)`` batches; examples labelled ``-1`` (unlabeled) are not counted."""
    correct = total = 0
    for x, labels in iterate_batches(data, y, batch_size):
        labels = hard_labels(labels)
        predicted = np.asarray(model(x, training=False)).argmax(-1)  # eager: no retracing per batch size
        known = labels >= 0
        correct += int(np.sum(predicted[known] == labels[known]))
        total += int(known.sum())
    if not total:
        raise ValueError("Expected at least one labelled example to measure accuracy. Received: none")
    return correct / total


def outputs_and_labels(fn, data, y=None, batch_size=256):
    """``(fn(x) for every batch, concatenated; the labels in the same order)``: for
    embeddings and probes over a stream whose order is not the split's (a TFDS split
    read without a cache comes in source order)."""
    outputs, labels = [], []
    for x, batch_labels in iterate_batches(data, y, batch_size):
        outputs.append(np.asarray(fn(x)))
        labels.append(batch_labels)
    if not outputs:
        raise ValueError("Expected at least one batch. Received: none")
    return np.concatenate(outputs), np.concatenate(labels)
