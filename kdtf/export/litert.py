"""Evaluation and latency of ``.tflite`` models on the LiteRT interpreter (what Android runs)."""

import importlib.metadata
import os
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from kdtf.data.batches import hard_labels, iterate_batches
from kdtf.export.flatbuffer import read_flatbuffer

__all__ = ["runtime_version", "load_interpreter", "predict", "evaluate", "latency", "latency_side_by_side", "keras_latency"]


def runtime_version():
    """The installed LiteRT (``ai-edge-litert``) version, as reports and benchmarks name it."""
    return importlib.metadata.version("ai-edge-litert")


def load_interpreter(flatbuffer_or_path, num_threads=1):
    """A LiteRT interpreter for a ``.tflite`` path or flatbuffer bytes (validated first)."""
    data = read_flatbuffer(flatbuffer_or_path)
    try:
        interpreter = Interpreter(model_content=data, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        name = flatbuffer_or_path if isinstance(flatbuffer_or_path, (str, os.PathLike)) else "model"
        raise ValueError(f"LiteRT cannot load {name!r}: {str(error).strip().splitlines()[0]}") from None
    return interpreter


def _quantize(x, detail):
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    if scale == 0:  # an integer input that is not quantized (token ids)
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.issubdtype(detail["dtype"], np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


class _Runner:
    """Runs batches through one LiteRT interpreter, resizing its input to each batch."""

    def __init__(self, flatbuffer_or_path, num_threads=None):
        self.interpreter = load_interpreter(flatbuffer_or_path, num_threads=num_threads or os.cpu_count())
        self.inp = self.interpreter.get_input_details()[0]
        self.expected = tuple(int(d) for d in self.inp["shape"][1:])
        self.current = None
        # a file exported with a fixed batch (``to_tflite(batch_size=...)``) runs that many at a time
        self.fixed = int(self.inp["shape"][0]) if int(self.inp["shape_signature"][0]) > 0 else None

    def __call__(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        if tuple(batch.shape[1:]) != self.expected:
            raise ValueError(
                f"Input shape {tuple(batch.shape[1:])} does not match the model's {self.expected} "
                "(batch dimension excluded)."
            )
        if self.fixed and len(batch) != self.fixed:
            return self._in_fixed_batches(batch)
        if self.current != len(batch):
            self.interpreter.resize_tensor_input(self.inp["index"], (len(batch),) + self.expected)
            self.interpreter.allocate_tensors()
            self.current = len(batch)
            self.inp = self.interpreter.get_input_details()[0]
            self.out = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.inp["index"], _quantize(batch, self.inp))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.out["index"]), self.out)

    def _in_fixed_batches(self, batch):
        """Runs a batch through a fixed-batch file, padding the last chunk with zeros."""
        size, outputs = self.fixed, []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            padded = np.concatenate([chunk, np.zeros((size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
            outputs.append(self(padded)[: len(chunk)])
        return np.concatenate(outputs)


def predict(flatbuffer_or_path, x, batch_size=256, num_threads=None):
    """Float outputs of the model on ``x`` (an array, or a dataset of ``(x, y)``
    batches), quantising inputs and dequantising outputs with the tensors' own scale and
    zero point. The input tensor is resized to the batch.
    """
    runner = _Runner(flatbuffer_or_path, num_threads)
    if not (hasattr(x, "as_numpy_iterator") or hasattr(x, "__next__")):
        x = np.asarray(x)
        outputs = [runner(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    else:
        outputs = [runner(batch) for batch, _ in iterate_batches(x)]
    return np.concatenate(outputs)


def evaluate(flatbuffer_or_path, x, y=None, keras_model=None, batch_size=256):
    """Accuracy through LiteRT, and agreement with a Keras model, streamed by batch.

    Args:
        flatbuffer_or_path: the ``.tflite`` path or bytes.
        x: inputs (array, with labels ``y``), or a batched ``tf.data.Dataset`` (or any
            iterable) of ``(x, y)`` batches, e.g. ``Splits.dataset("test", 256)``.
        y: labels for array ``x`` (sparse or one-hot rows).
        keras_model: compare its outputs on the same batches.
        batch_size: batch size for array ``x``.

    Returns:
        dict with ``accuracy`` and ``examples``; with ``keras_model``: ``agreement``
        (fraction of equal top-1 predictions), ``max_abs_diff`` of the outputs and
        ``snr_db``, the output SNR against the Keras outputs pooled over every example and
        output, ``10 log10(sum(keras ** 2) / sum((tflite - keras) ** 2))`` (``None``:
        equal outputs). Compare a file with the Keras model it was converted from: against
        any other (e.g. the student before QAT fine-tuning) the SNR measures the models'
        difference, not the conversion's.
    """
    runner = _Runner(flatbuffer_or_path)
    correct = agree = total = 0
    max_diff = signal = noise = 0.0
    for batch, labels in iterate_batches(x, y, batch_size):
        outputs = runner(batch)
        predicted = outputs.argmax(-1)
        correct += int(np.sum(predicted == hard_labels(labels)))
        total += len(batch)
        if keras_model is not None:
            reference = np.asarray(keras_model(np.asarray(batch, np.float32), training=False))
            agree += int(np.sum(predicted == reference.argmax(-1)))
            max_diff = max(max_diff, float(np.max(np.abs(outputs - reference))))
            signal += float(np.sum(np.square(reference, dtype=np.float64)))
            noise += float(np.sum(np.square(outputs - reference, dtype=np.float64)))
    if not total:
        raise ValueError("Expected at least one example to evaluate on LiteRT. Received: none")
    result = {"accuracy": correct / total, "examples": total}
    if keras_model is not None:
        snr_db = 10.0 * float(np.log10(max(signal, 1e-30) / noise)) if noise > 0 else None
        result.update(agreement=agree / total, max_abs_diff=max_diff, snr_db=snr_db)
    return result


def _summary(times):
    times = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def _ready_at_batch_one(flatbuffer_or_path, num_threads, warmup):
    """An interpreter resized to batch 1, fed zeros and invoked ``warmup`` times."""
    interpreter = load_interpreter(flatbuffer_or_path, num_threads=num_threads)
    detail = interpreter.get_input_details()[0]
    shape = (1,) + tuple(detail["shape"][1:])
    if tuple(detail["shape"]) != shape:
        interpreter.resize_tensor_input(detail["index"], shape)
        interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.zeros(shape, dtype=detail["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    return interpreter


def _timed(interpreter, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return times


def latency(flatbuffer_or_path, num_threads=1, runs=100, warmup=10):
    """Median and p90 milliseconds per batch-1 invocation after ``warmup`` runs."""
    times = _timed(_ready_at_batch_one(flatbuffer_or_path, num_threads, warmup), runs)
    return dict(_summary(times), threads=num_threads, runs=runs)


def keras_latency(model, input_shape, runs=100, warmup=10):
    """The same measurement for a Keras model (a traced ``model(x, training=False)`` call)."""
    import tensorflow as tf

    x = tf.zeros((1,) + tuple(input_shape), tf.float32)
    fn = tf.function(lambda t: model(t, training=False))
    for _ in range(warmup):
        fn(x).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return dict(_summary(times), runs=runs)


def latency_side_by_side(flatbuffers, num_threads=1, runs=300, rounds=10, warmup=10):
    """Latency of several models measured in turns, for fair ratios on a busy machine.

    Each of ``rounds`` rounds times every model for ``runs / rounds`` batch-1 invocations,
    in turn, so a slow spell of the machine (other work sharing the cores) falls on all
    models alike instead of on whichever was being timed.

    Args:
        flatbuffers: ``{name: flatbuffer bytes or path}``.

    Returns:
        ``{name: {"median_ms", "p90_ms", "runs", "threads"}}`` over all of a model's runs.
    """
    interpreters = {name: _ready_at_batch_one(model, num_threads, warmup) for name, model in flatbuffers.items()}
    times = {name: [] for name in flatbuffers}
    for _ in range(rounds):
        for name, interpreter in interpreters.items():
            times[name] += _timed(interpreter, max(1, runs // rounds))
    return {name: dict(_summary(values), threads=num_threads, runs=len(values)) for name, values in times.items()}
