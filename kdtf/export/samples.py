"""Example inputs for calibration and checks, taken the way ``fit`` takes data: an
array of examples, a ``tf.data`` pipeline (of ``x``, ``(x, y)`` or ``{"x": x}``) or any
iterable of batches; a bounded sample, never the whole data set."""

import numpy as np

from kdtf._keras import tf

__all__ = ["representative_samples"]


def _as_inputs(element):
    if isinstance(element, dict):
        element = element.get("x", next(iter(element.values())) if len(element) == 1 else None)
    elif isinstance(element, (tuple, list)) and element and not np.isscalar(element[0]):
        element = element[0]  # (x, y[, weights]) from a labelled dataset
    if element is None:
        raise ValueError("Expected dataset elements x, (x, y) or {'x': x}. Received: a dict without an 'x' key")
    return np.asarray(element)


def representative_samples(data, input_shape, argument="representative_data", max_examples=256, dtype=np.float32):
    """At most ``max_examples`` float32 examples shaped ``(n, *input_shape)`` from an array
    of examples, a ``tf.data.Dataset`` or an iterable of batches (or of single examples)."""
    if data is None:
        raise ValueError(f"Expected {argument}: examples shaped {input_shape}. Received: {argument}=None")
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        parts = [np.asarray(data)]
    else:
        parts, count = [], 0
        for element in data.as_numpy_iterator() if isinstance(data, tf.data.Dataset) else data:
            part = _as_inputs(element)
            parts.append(part[None] if part.ndim == len(input_shape) else part)
            count += len(parts[-1])
            if count >= max_examples:
                break
    if not parts:
        raise ValueError(f"Expected {argument} to hold examples shaped {input_shape}. Received: no examples")
    for part in parts:
        if part.ndim != len(input_shape) + 1 or tuple(part.shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"Expected {argument} of examples shaped {tuple(input_shape)} (the model's input). "
                f"Received: an array of shape {tuple(part.shape)}"
            )
        if not np.issubdtype(part.dtype, np.number):
            raise ValueError(f"Expected numeric {argument}. Received: dtype {part.dtype}")
    return np.concatenate(parts)[:max_examples].astype(dtype)
