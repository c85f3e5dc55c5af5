"""Reading a TFLite flatbuffer: its operators, weight tensors and their zeros.

Everything that inspects an exported ``.tflite`` (the builtin-op check, sparsity and
cluster verification, MAC counts) reads it through here.
"""

import os

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "read_flatbuffer", "parse", "list_ops", "operators", "op_tensors", "check_builtin_ops", "weight_tensors",
    "zero_mask", "weight_sparsity", "sparse_tensors", "tensor_types", "batch_matmul_adjoint_x", "TFLiteOpError",
    "model_object",
]

_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


class TFLiteOpError(ValueError):
    """A converted model uses an op that stock Android LiteRT cannot run."""


def read_flatbuffer(flatbuffer_or_path):
    """The bytes of a flatbuffer given as bytes or a path; a missing, truncated or
    non-TFLite file is refused with a ValueError naming it."""
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


def parse(flatbuffer_or_path):
    """``(schema.Model, bytes)`` of a flatbuffer."""
    data = read_flatbuffer(flatbuffer_or_path)
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
    model, _ = parse(flatbuffer_or_path)
    names = set()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            names.add(_op_name(model, graph.Operators(i).OpcodeIndex()))
    return sorted(names)


def operators(flatbuffer_or_path):
    """Every operator of every subgraph, in execution order, as ``(name, op, graph,
    index)``: the builtin name (``"CONV_2D"``, or ``FLEX:<op>`` / ``CUSTOM:<op>``), the
    schema ``Operator``, its ``SubGraph`` (``graph.Tensors(op.Inputs(i))`` is an input
    tensor) and the subgraph's index (0: the main graph).
    """
    model, _ = parse(flatbuffer_or_path)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            yield _op_name(model, op.OpcodeIndex()), op, graph, g


def op_tensors(flatbuffer_or_path):
    """``(op name, output tensor names)`` for every operator of every subgraph."""
    for name, op, graph, _ in operators(flatbuffer_or_path):
        yield name, [graph.Tensors(op.Outputs(j)).Name().decode() for j in range(op.OutputsLength())]


def check_builtin_ops(flatbuffer_or_path):
    """Raises :class:`TFLiteOpError` if the model needs Flex (SELECT_TF_OPS) or custom ops.

    The message names each op and the tensor (hence the Keras layer) that produced it.
    Returns the sorted list of ops otherwise.
    """
    offending = [(op, outputs) for op, outputs in op_tensors(flatbuffer_or_path) if op.startswith(("FLEX:", "CUSTOM:"))]
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
    model, _ = parse(flatbuffer_or_path)
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
        if tensor.Sparsity() is not None:
            raise ValueError(
                f"Weight tensor {tensor.Name().decode()!r} is stored sparse (an XNNPACK sparse export, "
                "kdtf.export.to_sparse_tflite): its values cannot be read as a dense array. Inspect the dense "
                "export of the same model (kdtf.export.to_tflite) instead."
            )
        values = buffer.DataAsNumpy().view(dtypes[tensor.Type()])
        if values.size < min_size:
            continue
        quant = tensor.Quantization()
        zero_points = np.zeros(1, np.int64)
        if quant is not None and quant.ZeroPointLength() > 0:
            zero_points = quant.ZeroPointAsNumpy().astype(np.int64)
        found[tensor.Name().decode()] = (values.reshape(tensor.ShapeAsNumpy()), zero_points)
    return found


def tensor_types(flatbuffer_or_path):
    """``{tensor name: "INT8" | "INT4" | "FLOAT32" | ...}`` of the main subgraph."""
    model, _ = parse(flatbuffer_or_path)
    graph = model.Subgraphs(0)
    return {graph.Tensors(i).Name().decode(): _TYPE_NAMES.get(graph.Tensors(i).Type(), str(graph.Tensors(i).Type()))
            for i in range(graph.TensorsLength())}


def batch_matmul_adjoint_x(op):
    """Whether a BATCH_MATMUL ``op`` (from :func:`operators`) transposes its first input."""
    if op.BuiltinOptionsType() != schema.BuiltinOptions.BatchMatMulOptions:
        return False
    options = schema.BatchMatMulOptions()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    return bool(options.AdjX())


def sparse_tensors(flatbuffer_or_path):
    """Names of the tensors stored in sparse form (with sparsity parameters), every subgraph."""
    model, _ = parse(flatbuffer_or_path)
    names = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.TensorsLength()):
            if graph.Tensors(i).Sparsity() is not None:
                names.append(graph.Tensors(i).Name().decode())
    return names


def zero_mask(values, zero_points):
    """True where a (quantized) weight equals its zero point, per output channel (axis 0)
    when there is one zero point per channel."""
    if zero_points.size > 1:
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
        n_zero = int(np.sum(zero_mask(values, zero_points)))
        per_tensor[name] = n_zero / values.size
        zeros += n_zero
        total += values.size
    return per_tensor, (zeros / total if total else 0.0)


def model_object(flatbuffer_or_path):
    """The flatbuffer as an editable ``ModelT`` (``flatbuffer_utils``), with buffers
    stored after the flatbuffer (litert-quantizer writes large weights at an ``offset``)
    moved inside, so that writing it back keeps them."""
    from ai_edge_litert.tools import flatbuffer_utils

    data = read_flatbuffer(flatbuffer_or_path)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    for buffer in model.buffers or []:
        if buffer.offset and buffer.offset > 1:
            buffer.data = np.frombuffer(data, np.uint8, count=buffer.size, offset=buffer.offset).copy()
            buffer.offset, buffer.size = 0, 0
    return model
