"""Keras -> TFLite conversion and inspection of the flatbuffer (ops, weights)."""

import contextlib
import os
import sys
import tempfile

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from kdtf._keras import tf
from kdtf.io import write_bytes

__all__ = [
    "MODES",
    "to_tflite",
    "save_tflite",
    "list_ops",
    "check_builtin_ops",
    "weight_sparsity",
    "weight_tensors",
    "TFLiteOpError",
]

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class TFLiteOpError(ValueError):
    """A converted model uses an op that stock Android LiteRT cannot run."""


def _strip_wrappers(model):
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    from kdtf.compress.prune import is_pruned, strip_pruning

    if is_pruned(model):
        model = strip_pruning(model)
    if any(isinstance(layer, cluster_wrapper.ClusterWeights) for layer in model.layers):
        import tensorflow_model_optimization as tfmot

        model = tfmot.clustering.keras.strip_clustering(model)
    return model


def to_tflite(
    model,
    mode="float32",
    *,
    representative_data=None,
    input_type=None,
    output_type=None,
    allow_flex=False,
):
    """Converts a tf_keras model to a TFLite flatbuffer.

    Args:
        model: tf_keras model; pruning/clustering wrappers are stripped first.
        mode: ``"float32"``, ``"float16"`` (float16 weights), ``"dynamic"`` (int8
            weights, float activations), ``"int8"`` (full integer) or ``"int16x8"``
            (int16 activations, int8 weights).
        representative_data: iterable of input batches (numpy or tensors) for
            calibration; required for ``int8``/``int16x8`` unless the model went through
            quantization-aware training.
        input_type, output_type: for ``int8``: ``tf.int8``, ``tf.uint8`` or ``tf.float32``
            (default int8); for ``int16x8``: ``tf.int16`` or ``tf.float32`` (default float).
        allow_flex: allow SELECT_TF_OPS (not recommended for Android; see
            :func:`check_builtin_ops`).

    Returns:
        The flatbuffer bytes.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown TFLite mode {mode!r}. Expected one of {', '.join(MODES)}.")
    from kdtf.compress.quantize import is_quantized

    model = _strip_wrappers(model)
    qat = is_quantized(model)
    if mode in ("int8", "int16x8") and representative_data is None and not qat:
        raise ValueError(
            f"mode={mode!r} needs representative_data (a few hundred training inputs) to "
            f"calibrate activation ranges of '{model.name}', or a quantization-aware "
            "trained model. Pass representative_data=..., or use mode='dynamic'."
        )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode != "float32" or qat:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if representative_data is not None and mode in ("int8", "int16x8"):
        batches = list(representative_data)

        def gen():
            for batch in batches:
                for example in np.asarray(batch, dtype=np.float32):
                    yield [example[None]]

        converter.representative_dataset = gen
    if mode == "int8":
        # A QAT model carries its ranges; TFLITE_BUILTINS_INT8 would demand calibration
        # data anyway (TF 2.21 checks before it sees the fake-quant ops).
        if not qat:
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = input_type or tf.int8
        converter.inference_output_type = output_type or tf.int8
    elif mode == "int16x8":
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = input_type or tf.float32
        converter.inference_output_type = output_type or tf.float32
    if allow_flex:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    with _captured_stderr() as log:
        try:
            return converter.convert()
        except Exception as error:  # the converter raises many types
            failure = error
    reason = _first_error_line(log["text"]) or _first_error_line(str(failure)) or type(failure).__name__
    raise ValueError(
        f"The TFLite converter refused '{model.name}' in mode {mode!r}: {reason}"
    ) from None


def _first_error_line(text):
    for line in text.splitlines():
        if "error:" in line:
            return line[line.index("error:") + len("error:"):].strip()[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


@contextlib.contextmanager
def _captured_stderr():
    """Sends the converter's C++ logging (MLIR dumps, often hundreds of lines) to a
    temporary file instead of the terminal; yields a dict whose "text" holds it after."""
    captured = {"text": ""}
    with tempfile.TemporaryFile(mode="w+") as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            captured["text"] = log.read()


def save_tflite(flatbuffer, path):
    """Writes a flatbuffer atomically and returns ``path``."""
    return write_bytes(path, flatbuffer)


def _read(flatbuffer_or_path):
    if isinstance(flatbuffer_or_path, (bytes, bytearray)):
        return bytes(flatbuffer_or_path)
    path = os.fspath(flatbuffer_or_path)
    if not os.path.isfile(path):
        raise ValueError(f"TFLite file not found: {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            f"{path!r} is not a TFLite flatbuffer (missing the 'TFL3' identifier); the file "
            "is corrupt or truncated. Re-export it."
        )
    return data


def _model(flatbuffer_or_path):
    data = _read(flatbuffer_or_path)
    try:
        return schema.Model.GetRootAsModel(data, 0), data
    except Exception as error:
        raise ValueError(f"Cannot parse the TFLite flatbuffer: {error}") from None


def _op_name(model, opcode_index):
    code = model.OperatorCodes(opcode_index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.CustomCode().decode()
        return f"FLEX:{custom[4:]}" if custom.startswith("Flex") else f"CUSTOM:{custom}"
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def list_ops(flatbuffer_or_path):
    """Operators the model runs (every subgraph): builtin names, ``FLEX:<op>`` or
    ``CUSTOM:<op>``. Opcodes listed in the file but used by no operator are left out."""
    model, _ = _model(flatbuffer_or_path)
    names = set()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            names.add(_op_name(model, graph.Operators(i).OpcodeIndex()))
    return sorted(names)


def _op_tensors(model):
    # (op name, output tensor names) for every operator of every subgraph
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            outputs = [graph.Tensors(op.Outputs(j)).Name().decode() for j in range(op.OutputsLength())]
            yield _op_name(model, op.OpcodeIndex()), outputs


def check_builtin_ops(flatbuffer_or_path):
    """Raises :class:`TFLiteOpError` if the model needs Flex (SELECT_TF_OPS) or custom ops.

    The message names each op and the tensor (hence the Keras layer) that produced it.
    Returns the sorted list of ops otherwise.
    """
    model, _ = _model(flatbuffer_or_path)
    offending = [(op, outputs) for op, outputs in _op_tensors(model) if op.startswith(("FLEX:", "CUSTOM:"))]
    if offending:
        lines = [
            f"  {'Flex op ' + op[5:] if op.startswith('FLEX:') else 'custom op ' + op[7:]}, "
            f"producing {', '.join(outputs)}"
            for op, outputs in offending
        ]
        raise TFLiteOpError(
            "The model needs ops that stock Android LiteRT does not have (the Flex delegate "
            "or a custom op):\n" + "\n".join(lines) + "\nThe tensor names start with the "
            "Keras layer that produced them: replace that layer with builtin-friendly ops, "
            "or ship the Flex delegate in the app."
        )
    return list_ops(flatbuffer_or_path)


def weight_tensors(flatbuffer_or_path, min_size=64):
    """Constant weight tensors of rank >= 2 in the flatbuffer, as numpy arrays.

    Returns:
        ``{tensor_name: (values, zero_points)}``; ``values`` has the tensor's shape
        (TFLite puts output channels first and input channels last), ``zero_points`` is
        an array (one per channel, or one) of the integer zero point, ``[0]`` for floats.
    """
    model, _ = _model(flatbuffer_or_path)
    graph = model.Subgraphs(0)
    dtypes = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT8: np.int8,
    }
    found = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if tensor.ShapeLength() < 2 or tensor.Type() not in dtypes or buffer.DataLength() == 0:
            continue
        values = buffer.DataAsNumpy().view(dtypes[tensor.Type()])
        if values.size < min_size:
            continue
        quant = tensor.Quantization()
        zero_points = np.zeros(1, np.int64)
        if quant is not None and quant.ZeroPointLength() > 0:
            zero_points = quant.ZeroPointAsNumpy().astype(np.int64)
        found[tensor.Name().decode()] = (values.reshape(tensor.ShapeAsNumpy()), zero_points)
    return found


def _zero_mask(values, zero_points):
    if zero_points.size > 1:  # per output channel (axis 0)
        return values == zero_points.reshape((-1,) + (1,) * (values.ndim - 1))
    return values == zero_points[0]


def weight_sparsity(flatbuffer_or_path, min_size=64):
    """Fraction of zero weights in each constant tensor of rank >= 2 in the flatbuffer.

    Quantized weights count as zero when they equal their zero point.

    Returns:
        ``(per_tensor, overall)``: ``{tensor_name: fraction}`` and the fraction over all
        such tensors.
    """
    per_tensor, zeros, total = {}, 0, 0
    for name, (values, zero_points) in weight_tensors(flatbuffer_or_path, min_size).items():
        n_zero = int(np.sum(_zero_mask(values, zero_points)))
        per_tensor[name] = n_zero / values.size
        zeros += n_zero
        total += values.size
    return per_tensor, (zeros / total if total else 0.0)
