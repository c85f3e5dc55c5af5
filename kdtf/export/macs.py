"""Multiply-accumulates of a ``.tflite`` model, counted from the tensor shapes it holds.

Per op, for one inference at the file's own batch size (1 after conversion from Keras):

* ``CONV_2D``: ``prod(output) * KH * KW * I`` (filter ``O x KH x KW x I``).
* ``DEPTHWISE_CONV_2D``: ``prod(output) * KH * KW`` (filter ``1 x KH x KW x C``).
* ``TRANSPOSE_CONV``: ``prod(input) * KH * KW * O``.
* ``FULLY_CONNECTED``: ``prod(output) * I`` (weights ``O x I``).
* ``BATCH_MATMUL``: ``prod(output) * K``, ``K`` the contracted axis of the first input.

Element-wise ops, pooling and activations are left out (they are not multiply-accumulates
and cost little beside these). Quantization does not change the count. Shapes are the
ones LiteRT computes in one inference on zeros (a Dense on a sequence becomes a RESHAPE
then a FULLY_CONNECTED whose stored shape says 1 row), else the stored ones.
"""

import numpy as np

from kdtf.export.flatbuffer import batch_matmul_adjoint_x, operators
from kdtf.export.litert import load_interpreter

__all__ = ["MAC_OPS", "count_macs"]

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")


def _tensor(graph, op, index, shapes):
    position = op.Inputs(index) if index >= 0 else op.Outputs(0)
    tensor = graph.Tensors(position)
    shape = shapes.get(position, tensor.ShapeAsNumpy() if tensor.ShapeLength() else [])
    return tensor.Name().decode(), [max(int(d), 1) for d in shape]


def _runtime_shapes(flatbuffer_or_path):
    """Tensor index -> shape in the main subgraph after one inference on zeros (tensors
    shaped by SHAPE ops get their size only when the model runs)."""
    interpreter = load_interpreter(flatbuffer_or_path)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return {d["index"]: d["shape"] for d in interpreter.get_tensor_details()}


def _macs(name, op, graph, shapes):
    output_name, output = _tensor(graph, op, -1, shapes)
    size = int(np.prod(output)) if output else 1
    if name == "TRANSPOSE_CONV":
        weights, shape = _tensor(graph, op, 1, shapes)
        _, source = _tensor(graph, op, 2, shapes)
        return output_name, weights, shape, output, int(np.prod(source)) * shape[1] * shape[2] * shape[0]
    weights, shape = _tensor(graph, op, 1, shapes)
    if name == "CONV_2D":
        macs = size * int(np.prod(shape[1:]))
    elif name == "DEPTHWISE_CONV_2D":
        macs = size * shape[1] * shape[2]
    elif name == "FULLY_CONNECTED":
        macs = size * shape[-1]
    else:  # BATCH_MATMUL: the first input is (..., M, K), or (..., K, M) with adj_x
        _, first = _tensor(graph, op, 0, shapes)
        macs = size * first[-2 if batch_matmul_adjoint_x(op) else -1]
    return output_name, weights, shape, output, macs


def count_macs(flatbuffer_or_path):
    """Multiply-accumulates of one inference of a ``.tflite`` (path or bytes).

    Returns:
        ``{"total": int, "per_op": [...]}``; each entry of ``per_op`` has ``op`` (the
        builtin name), ``output`` (output tensor name), ``weights`` (name of the second
        input: the filter, or the right-hand matrix), ``weight_shape``, ``output_shape``
        and ``macs``, in execution order.
    """
    per_op = []
    allocated = _runtime_shapes(flatbuffer_or_path)
    for name, op, graph, index in operators(flatbuffer_or_path):
        if name not in MAC_OPS:
            continue
        output_name, weights, shape, output, macs = _macs(name, op, graph, {} if index else allocated)
        per_op.append(dict(op=name, output=output_name, weights=weights, weight_shape=shape, output_shape=output, macs=int(macs)))
    return {"total": sum(entry["macs"] for entry in per_op), "per_op": per_op}
