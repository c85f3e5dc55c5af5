"""Post-training quantization of a float ``.tflite`` with litert-quantizer, per-op error
reports, and sensitivity-driven mixed precision.

LiteRT marks the converter's own post-training quantization as deprecated and points to
``litert-quantizer`` (formerly ai-edge-quantizer), which rewrites a float flatbuffer:

* ``int8``: static int8 activations and int8 weights (per channel), calibrated; int8
  model input and output, like :func:`kdtf.export.to_tflite` ``mode="int8"``.
* ``int16x8``: static int16 activations (symmetric) and int8 weights; int16 I/O.
* ``int4w``: int4 weights (per channel, or blockwise with ``block_size``), activations
  float in the file and quantized on the fly by LiteRT's hybrid kernels (dynamic range).

:func:`layer_errors` runs the float and the quantized model on LiteRT with every
intermediate tensor kept and compares each op's output (tensors match by name:
litert-quantizer keeps them): SNR in dB, cosine similarity, MSE, and the SNR the op loses
between its input and its output. :func:`mixed_precision` uses that loss to keep the
most sensitive ops in float (or int16) one at a time until the accuracy is within
``max_drop`` of float.

Everything returns bytes; nothing is written here (the caller writes atomically, e.g.
with :func:`kdtf.export.save_tflite`).
"""

import dataclasses
import math
import re
import types
import warnings

import numpy as np

from kdtf import catalog
from kdtf.export.flatbuffer import read_flatbuffer, tensor_types
from kdtf.export.litert import predict
from kdtf.export.samples import representative_samples

__all__ = ["PTQ_MODES", "MixedPrecision", "layer_error_table", "layer_errors", "mixed_precision", "post_training_quantize"]

PTQ_MODES = catalog.PTQ_MODES
BLOCK_SIZES = (0, 32, 64, 128, 256)
_NO_QUANTIZE = "no_quantize"


def _lq():
    """litert-quantizer's modules, imported on first use (it is heavy and only needed here)."""
    try:
        from litert_quantizer import (
            algorithm_manager,
            model_validator,
            qtyping,
            quantizer,
        )
        from litert_quantizer.algorithms.utils import common_utils
        from litert_quantizer.utils import tfl_flatbuffer_utils, validation_utils
    except ImportError:
        raise ValueError("Post-training quantization needs litert-quantizer: pip install litert-quantizer") from None
    return types.SimpleNamespace(
        algorithms=algorithm_manager, validator=model_validator, qtyping=qtyping, quantizer=quantizer,
        flatbuffer=tfl_flatbuffer_utils, metrics=validation_utils,
        weight_ops={str(name.value) for name in common_utils.DRQ_OR_WEIGHT_ONLY_OPS},
    )


@dataclasses.dataclass(frozen=True)
class _Op:
    index: int
    type: str  # litert-quantizer's op name (CONV_2D, FULLY_CONNECTED, ...)
    scope: str  # what litert-quantizer's regexes match: output tensor names joined by ";", then ";"
    output: str
    inputs: tuple  # names of the non-constant input tensors
    weights: tuple  # names of the constant input tensors


def _parse_ops(flatbuffer):
    """The ops of the main subgraph as litert-quantizer sees them (type names, scopes)."""
    lq = _lq()
    model = lq.flatbuffer.read_model(flatbuffer)
    graph, names = model.subgraphs[0], lq.flatbuffer.TFL_OP_CODE_TO_NAME
    ops = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        tensors = {"inputs": [], "weights": []}
        for t in (t for t in op.inputs if t >= 0):
            buffer = model.buffers[graph.tensors[t].buffer]
            constant = buffer.data is not None or (getattr(buffer, "offset", 0) or 0) > 1  # > 2 GB files: offsets
            tensors["weights" if constant else "inputs"].append(graph.tensors[t].name.decode())
        ops.append(_Op(
            index, str(kind.value) if kind else f"BUILTIN_{code.builtinCode}", lq.flatbuffer.get_op_scope(op, graph.tensors),
            graph.tensors[op.outputs[0]].name.decode(), tuple(tensors["inputs"]), tuple(tensors["weights"]),
        ))
    return ops


class _FloatModel:
    """A float flatbuffer, parsed once: its ops (main subgraph), signature and input."""

    def __init__(self, flatbuffer_or_path):
        from ai_edge_litert.interpreter import Interpreter

        self.data = read_flatbuffer(flatbuffer_or_path)
        if self.data[4:8] != b"TFL3":
            raise ValueError("Expected TFLite flatbuffer bytes (with the 'TFL3' identifier). Received: other bytes")
        self.ops = _parse_ops(self.data)
        interpreter = Interpreter(model_content=self.data)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
            raise ValueError(
                "Expected a model with one signature and one input (as TFLiteConverter.from_keras_model "
                f"writes). Received: signatures={signatures}"
            )
        self.signature, spec = next(iter(signatures.items()))
        self.input_name = spec["inputs"][0]
        detail = interpreter.get_signature_runner(self.signature).get_input_details()[self.input_name]
        self.input_shape = tuple(int(d) for d in detail["shape"][1:])
        # a file exported with to_tflite(batch_size=n) is fed n examples at a time
        self.fixed_batch = int(detail["shape_signature"][0]) if int(detail["shape_signature"][0]) > 0 else None
        if not np.issubdtype(detail["dtype"], np.floating):
            raise ValueError(f"Expected a float model to quantize. Received: a model with {detail['dtype'].__name__} input.")

    def feed(self, samples, batch_size=32):
        """``{signature: [{input: batch}, ...]}``: litert-quantizer's data layout."""
        batches = [{self.input_name: samples[i : i + batch_size]} for i in range(0, len(samples), batch_size)]
        return {self.signature: batches}

    def select(self, selectors, argument):
        """Op indices for ``selectors``: op indices, op types (``"DEPTHWISE_CONV_2D"``),
        output tensor names, or Keras layer names (a ``/name/`` part of the op's output)."""
        if isinstance(selectors, (str, int, np.integer)):
            selectors = [selectors]
        chosen = set()
        for selector in selectors:
            if isinstance(selector, (int, np.integer)) and not isinstance(selector, bool):
                found = [op.index for op in self.ops if op.index == selector]
            elif isinstance(selector, str):
                found = [op.index for op in self.ops if selector in (op.type, op.output) or any(
                    f"/{selector}/" in f"/{name}" for name in (op.output, *op.weights))]
            else:
                found = []
            if not found:
                raise ValueError(
                    f"Expected op indices (0-{len(self.ops) - 1}), op types ({', '.join(sorted({op.type for op in self.ops}))}) "
                    f"or layer names in {argument}. Received: {selector!r}"
                )
            chosen.update(found)
        return sorted(chosen)


def _check_mode(mode, block_size):
    if mode not in PTQ_MODES:
        raise ValueError(f"Expected a post-training quantization mode in {', '.join(PTQ_MODES)}. Received: mode={mode!r}")
    if block_size not in BLOCK_SIZES or (block_size and mode != "int4w"):
        raise ValueError(
            f"Expected block_size 0 (per channel) or 32/64/128/256 (int4w only). Received: block_size={block_size!r} with mode={mode!r}"
        )


def _int4_config(lq, block_size):
    qtyping = lq.qtyping
    granularity = qtyping.QuantGranularity(f"BLOCKWISE_{block_size}") if block_size else qtyping.QuantGranularity.CHANNELWISE
    weights = qtyping.TensorQuantizationConfig(num_bits=4, symmetric=True, granularity=granularity)
    return qtyping.OpQuantizationConfig(
        weight_tensor_config=weights, compute_precision=qtyping.ComputePrecision.INTEGER, explicit_dequantize=False,
    )


def _check_int4(model, lq, config, keep_float, block_size):
    """Raises one ValueError naming every weight op (not kept in float) that LiteRT has
    no int4 kernel for, instead of leaving it float without a word."""
    algorithms = lq.algorithms
    refused = []
    for op in model.ops:
        if not op.weights or op.index in keep_float or op.type not in lq.weight_ops:
            continue
        try:
            algorithms.check_op_quantization_config(
                algorithms.AlgorithmName.MIN_MAX_UNIFORM_QUANT, lq.qtyping.TFLOperationName(op.type), config
            )
        except ValueError:
            refused.append(op)
    if refused:
        granularity = f"blockwise-{block_size}" if block_size else "per-channel"
        names = "; ".join(f"op {op.index} {op.type} '{op.output.split(';')[0]}'" for op in refused)
        raise ValueError(
            f"LiteRT has no {granularity} int4 kernel for {names}. Keep them float (keep_float="
            f"{[op.index for op in refused]} or their op type), use block_size=0 (blockwise int4 is for "
            "FULLY_CONNECTED only) or mode 'int8'."
        )


def _quantizer(model, mode, keep_float, int16_ops, block_size):
    """A litert-quantizer ``Quantizer`` with the mode's recipe for every op, int16
    activations for ``int16_ops`` and no quantization for ``keep_float`` (later rules
    win in litert-quantizer)."""
    lq = _lq()
    qtyping = lq.qtyping
    every = qtyping.TFLOperationName.ALL_SUPPORTED
    quantizer = lq.quantizer.Quantizer(bytearray(model.data))
    if mode == "int4w":
        config = _int4_config(lq, block_size)
        _check_int4(model, lq, config, keep_float, block_size)
        quantizer.update_quantization_recipe(".*", every, config)
    else:
        quantizer.add_static_config(".*", every, 16 if mode == "int16x8" else 8, 8)
    for index in int16_ops:
        quantizer.add_static_config(_exactly(model.ops[index].scope), every, 16, 8)
    for index in keep_float:
        quantizer.update_quantization_recipe(_exactly(model.ops[index].scope), every, algorithm_key=_NO_QUANTIZE)
    return quantizer


def _exactly(scope):
    return "^" + re.escape(scope) + "$"


def _calibrate(quantizer, model, samples, batch_size=32):
    """Activation ranges: the min and max over every batch (as the TFLite converter
    takes them), not litert-quantizer's default moving average, which weights the first
    batches most."""
    merged = {}
    batch_size = model.fixed_batch or batch_size
    samples = samples[: len(samples) - len(samples) % batch_size] if model.fixed_batch else samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors is for debugging"
        for start in range(0, len(samples), batch_size):
            batch = model.feed(samples[start : start + batch_size], batch_size)
            for name, qsv in quantizer.calibrate(batch).items():
                if name in merged and "min" in qsv and "max" in qsv:
                    qsv = dict(qsv, min=np.minimum(merged[name]["min"], qsv["min"]), max=np.maximum(merged[name]["max"], qsv["max"]))
                merged[name] = qsv
    return merged


def _run_quantizer(quantizer, ranges, mode):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its range check keeps every tensor
            result = quantizer.quantize(ranges or None, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"litert-quantizer could not quantize the model in mode {mode!r}: {reason}") from None
    return bytes(result.quantized_model)


def post_training_quantize(float_tflite, mode, representative_data=None, *, keep_float=(), int16_ops=(), block_size=0, max_examples=256):
    """Quantizes a float ``.tflite`` after training with litert-quantizer.

    Args:
        float_tflite: float flatbuffer bytes or ``.tflite`` path (e.g. from
            ``kdtf.export.to_tflite(model, "float32")``).
        mode: ``"int8"``, ``"int16x8"`` or ``"int4w"`` (see the module docstring).
        representative_data: calibration inputs for ``int8``/``int16x8`` (ignored by
            ``int4w``): an array of examples, a ``tf.data.Dataset`` (of ``x``, ``(x, y)``
            or ``{"x": x}``, batched or not) or an iterable of batches; at most
            ``max_examples`` examples are read.
        keep_float: ops left in float: op indices, op types (``"DEPTHWISE_CONV_2D"``),
            output tensor names or Keras layer names.
        int16_ops: with ``int8``: ops given int16 activations (int8 weights) instead.
        block_size: ``int4w`` only: 0 (one scale per output channel) or 32/64/128/256
            (blockwise; FULLY_CONNECTED only).
        max_examples: calibration examples read from ``representative_data``.

    Returns:
        The quantized flatbuffer bytes (nothing is written).

    Raises:
        ValueError: one line, for an unknown mode, data of the wrong shape, an unknown
            op, or (``int4w``) a weight op LiteRT has no int4 kernel for.
    """
    _check_mode(mode, block_size)
    model = _FloatModel(float_tflite)
    keep = model.select(keep_float, "keep_float")
    wider = model.select(int16_ops, "int16_ops")
    if wider and mode != "int8":
        raise ValueError(f"Expected int16_ops only with mode 'int8'. Received: int16_ops={list(int16_ops)} with mode={mode!r}")
    ranges = _ranges(model, mode, representative_data, max_examples)
    return _run_quantizer(_quantizer(model, mode, keep, wider, block_size), ranges, mode)


def _ranges(model, mode, representative_data, max_examples):
    """Calibrated activation ranges of every tensor (none for ``int4w``); they do not
    depend on which ops are later kept in float, so one calibration serves them all."""
    if mode == "int4w":
        return {}
    samples = representative_samples(representative_data, model.input_shape, "representative_data", max_examples)
    return _calibrate(_quantizer(model, mode, (), (), 0), model, samples)


def _compare(model, quantized, samples):
    """litert-quantizer's side-by-side run (every tensor preserved, no XNNPACK, so each
    op's output exists): ``{tensor name: {"snr": ratio, "cosine_similarity": c, "mse": m}}``."""
    lq = _lq()
    metric = lq.metrics.ValidationErrorMetric
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = lq.validator.compare_model(
            model.data, quantized, model.feed(samples, len(samples)),
            [metric.SNR, metric.COSINE_SIMILARITY, metric.MSE], use_xnnpack=False, num_threads=1,
        )
    return result.get_all_tensor_results()


def _db(ratio):
    return 10.0 * math.log10(max(ratio, 1e-30))


def layer_errors(float_tflite, quantized_tflite, samples, *, max_examples=256):
    """The error of every op of the quantized model against the float one, on LiteRT.

    Both models run on ``samples`` with every intermediate tensor kept; each op's output
    tensor is compared by name (litert-quantizer keeps the names; a model converted
    separately may not). ``SNR = mean(float ** 2) / mean((quantized - float) ** 2)``
    pooled over the samples, in dB; ``cosine`` and ``mse`` over the flattened batch.
    Errors accumulate along the graph, so the output SNR of a late op also holds the
    noise of every op before it. ``op_snr_db`` isolates the op's own share: with
    relative noise ``1 / SNR`` adding up along the graph (noise of the op independent of
    the noise it receives), ``op_snr_db = -10 log10(1 / SNR_out - 1 / SNR_in)``, its
    input being the noisiest of its non-constant inputs. The lowest ``op_snr_db`` marks
    the op that adds the most noise; :func:`mixed_precision` moves those first.

    Args:
        float_tflite, quantized_tflite: flatbuffer bytes or paths; the quantized one made
            from the float one (by :func:`post_training_quantize`).
        samples: inputs, as ``representative_data`` of :func:`post_training_quantize`.
        max_examples: examples read from ``samples``.

    Returns:
        One dict per op of the float model, in graph order: ``op`` (index), ``type``,
        ``tensor`` (output name), ``activations`` and ``weights`` (their type in the
        quantized file, e.g. ``"INT8"``, ``"INT4"``, ``"FLOAT32"``; weights ``None`` for an
        op without), ``quantized`` (either is an integer type), ``snr_db``, ``cosine``,
        ``mse``, ``op_snr_db`` (``None`` where the output has no counterpart; ``op_snr_db``
        also ``None`` for an op that adds no noise, such as a reshape).
    """
    model = _FloatModel(float_tflite)
    quantized = read_flatbuffer(quantized_tflite)
    samples = representative_samples(samples, model.input_shape, "samples", max_examples)
    compared, dtypes = _compare(model, quantized, samples), tensor_types(quantized)
    rows = []
    for op in model.ops:
        result = compared.get(op.output)
        weights = dtypes.get(op.weights[0]) if op.weights else None
        activations = dtypes.get(op.output)
        row = {
            "op": op.index, "type": op.type, "tensor": op.output, "activations": activations, "weights": weights,
            "quantized": any(t is not None and t.startswith(("INT", "UINT")) for t in (activations, weights)),
            "snr_db": None, "cosine": None, "mse": None, "op_snr_db": None,
        }
        if result is not None:
            row.update(snr_db=_db(result["snr"]), cosine=result["cosine_similarity"], mse=result["mse"])
            received = max((1.0 / max(compared[name]["snr"], 1e-30) for name in op.inputs if name in compared), default=0.0)
            added = 1.0 / max(result["snr"], 1e-30) - received
            row["op_snr_db"] = -_db(added) if added > 1e-12 else None
        rows.append(row)
    return rows


def layer_error_table(rows, limit=None):
    """A Markdown table of :func:`layer_errors` rows, worst SNR first (``limit`` rows)."""
    measured = sorted((r for r in rows if r["snr_db"] is not None), key=lambda r: r["snr_db"])[:limit]

    def number(value, spec):
        return "—" if value is None else format(value, spec)

    lines = [
        "| op | type | output tensor | activations | weights | SNR (dB) | SNR of the op alone (dB) | cosine | MSE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in measured:
        tensor = r["tensor"].split(";")[0][:60]
        lines.append(
            f"| {r['op']} | {r['type']} | `{tensor}` | {r['activations']} | {r['weights'] or '—'} | "
            f"{number(r['snr_db'], '.1f')} | {number(r['op_snr_db'], '.1f')} | {number(r['cosine'], '.5f')} | {number(r['mse'], '.3g')} |"
        )
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class MixedPrecision:
    """What :func:`mixed_precision` found.

    Attributes:
        model: the quantized flatbuffer bytes.
        kept: the ops moved to ``fallback``, most sensitive first: dicts with ``op``,
            ``type``, ``tensor`` and the ``op_snr_db`` that chose them.
        float_accuracy, accuracy: top-1 accuracy of the float and of ``model`` on the
            samples (agreement with float when no labels were given).
        reached: whether ``float_accuracy - accuracy <= max_drop``.
        steps: ``{"kept": n, "accuracy": a}`` after each quantization.
    """

    model: bytes
    kept: list
    float_accuracy: float
    accuracy: float
    reached: bool
    steps: list


def _top1(flatbuffer, samples):
    return predict(flatbuffer, samples, num_threads=1).argmax(-1)


def _most_sensitive(rows, kept, fallback):
    """The op not yet kept that adds the most noise, among those ``fallback`` changes."""
    candidates = [
        r for r in rows
        if r["op"] not in kept and r["op_snr_db"] is not None and r["quantized"]
        and (fallback == "float" or r["activations"] == "INT8")
    ]
    return min(candidates, key=lambda r: r["op_snr_db"], default=None)


def mixed_precision(float_tflite, samples, labels=None, max_drop=0.01, *, mode="int8", representative_data=None,
                    fallback="float", keep_float=(), max_examples=512):
    """Quantizes with ``mode``, then moves the most sensitive ops to ``fallback`` one at
    a time until the top-1 accuracy on ``samples`` is within ``max_drop`` of float.

    Sensitivity is the noise an op adds itself (:func:`layer_errors` ``op_snr_db``,
    lowest first), measured again after every change, since keeping one op in float
    changes the error its successors see.

    Args:
        float_tflite: float flatbuffer bytes or path.
        samples: evaluation inputs (array, dataset or iterable of batches).
        labels: their integer labels; ``None`` measures agreement with the float model.
        max_drop: the accuracy (fraction, e.g. 0.01 = one point) the quantized model may
            lose; >= 0.
        mode: ``"int8"``, ``"int16x8"`` or ``"int4w"``.
        representative_data: calibration inputs (default ``samples``).
        fallback: ``"float"``, or ``"int16"`` (int16 activations; mode ``int8`` only).
        keep_float: ops in float from the start (see :func:`post_training_quantize`).
        max_examples: examples read from ``samples``.

    Returns:
        A :class:`MixedPrecision`; ``reached`` is False when every candidate op was
        moved and the accuracy is still short (the last model is returned).
    """
    _check_mode(mode, 0)
    if fallback not in ("float", "int16") or (fallback == "int16" and mode != "int8"):
        raise ValueError(f"Expected fallback 'float', or 'int16' with mode 'int8'. Received: fallback={fallback!r} with mode={mode!r}")
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not 0 <= max_drop < 1:
        raise ValueError(f"Expected max_drop in [0, 1). Received: max_drop={max_drop!r}")
    model = _FloatModel(float_tflite)
    samples = representative_samples(samples, model.input_shape, "samples", max_examples)
    reference = _top1(model.data, samples)
    truth = reference if labels is None else np.asarray(labels).reshape(-1)[: len(samples)]
    if len(truth) != len(samples):
        raise ValueError(f"Expected one label per sample ({len(samples)}). Received: {len(truth)} labels")
    float_accuracy = float(np.mean(reference == truth))
    ranges = _ranges(model, mode, samples if representative_data is None else representative_data, max_examples)
    keep, moved, steps = set(model.select(keep_float, "keep_float")), [], []
    while True:
        float_ops, int16 = (keep | {r["op"] for r in moved}, ()) if fallback == "float" else (keep, [r["op"] for r in moved])
        quantized = _run_quantizer(_quantizer(model, mode, sorted(float_ops), int16, 0), ranges, mode)
        accuracy = float(np.mean(_top1(quantized, samples) == truth))
        steps.append({"kept": len(moved), "accuracy": accuracy})
        if float_accuracy - accuracy <= max_drop:
            break
        choice = _most_sensitive(layer_errors(model.data, quantized, samples), float_ops | set(int16), fallback)
        if choice is None:
            break
        moved.append({key: choice[key] for key in ("op", "type", "tensor", "op_snr_db")})
    return MixedPrecision(quantized, moved, float_accuracy, accuracy, float_accuracy - accuracy <= max_drop, steps)
