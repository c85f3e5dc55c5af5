"""Symmetric int8 (zero-point 0) for the right-hand operands of an int8 graph's BATCH_MATMUL.

XNNPACK takes an int8 ``BATCH_MATMUL`` only when its right-hand operand has zero-point 0
(LiteRT's ``xnnpack_delegate.cc``); the converter calibrates activations asymmetrically, so
attention's ``Q @ K^T`` and ``softmax @ V`` stay on LiteRT's slow builtin kernels. This
rewrites the quantization of those operands after conversion: the calibrated range
``[(-128 - z) s, (127 - z) s]`` becomes the symmetric ``[-m, m]`` with ``m`` the larger
magnitude, scale ``m / 127`` and zero-point 0. Every tensor that must share the operand's
parameters moves with it: through ``RESHAPE``, ``TRANSPOSE`` and the like (kernels that copy
int8 bytes) back to the operator that computes the values (the K or V projection, a
``FULLY_CONNECTED`` that requantizes its output to whatever the tensor says). Cost: at
most one bit of resolution on those tensors.
"""

import collections

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from kdtf.export.flatbuffer import model_object, read_flatbuffer

__all__ = ["symmetric_matmul_operands", "matmul_rhs_zero_points", "xnnpack_int8"]

_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
# int8 kernels that copy bytes: input and output must have the same scale and zero-point.
_SAME_PARAMS = {"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "GATHER", "STRIDED_SLICE", "SLICE"}
# operators whose int8 output parameters are fixed by the kernel.
_FIXED_OUTPUT = {"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX"}


def _op_names(model):
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    return [_NAMES.get(codes[op.opcodeIndex], "?") for op in model.subgraphs[0].operators]


def _int8_activation(model, graph, index):
    tensor = graph.tensors[index]
    q = tensor.quantization
    constant = model.buffers[tensor.buffer].data is not None if tensor.buffer < len(model.buffers) else False
    return (tensor.type == schema.TensorType.INT8 and q is not None and q.scale is not None and len(q.scale) == 1
            and not constant)


def matmul_rhs_zero_points(flatbuffer_or_path):
    """``[zero-point]`` of every int8 ``BATCH_MATMUL``'s right-hand operand, in graph order."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(read_flatbuffer(flatbuffer_or_path)))
    graph, names = model.subgraphs[0], _op_names(model)
    out = []
    for op, name in zip(graph.operators, names):
        if name == "BATCH_MATMUL" and graph.tensors[op.inputs[1]].type == schema.TensorType.INT8:
            out.append(int(graph.tensors[op.inputs[1]].quantization.zeroPoint[0]))
    return out


def symmetric_matmul_operands(flatbuffer_or_path):
    """The flatbuffer with zero-point 0 on every int8 ``BATCH_MATMUL`` right-hand operand
    (and on the tensors that share its parameters).

    Returns:
        ``(flatbuffer bytes, changed)``: ``changed`` counts the tensor groups rewritten;
        a group produced by an operator with fixed output parameters (``SOFTMAX``) is left
        as it is.
    """
    model = model_object(flatbuffer_or_path)
    graph, names = model.subgraphs[0], _op_names(model)
    producer, consumers = {}, collections.defaultdict(list)
    for i, op in enumerate(graph.operators):
        for t in op.outputs:
            producer[int(t)] = i
        for t in op.inputs:
            if t >= 0:
                consumers[int(t)].append(i)
    done, changed = set(), 0
    for op, name in zip(graph.operators, names):
        rhs = int(op.inputs[1]) if name == "BATCH_MATMUL" and len(op.inputs) > 1 else -1
        if rhs < 0 or rhs in done or not _int8_activation(model, graph, rhs):
            continue
        group = _shared_group(graph, names, producer, consumers, rhs)
        done |= group
        if any(names[producer[t]] in _FIXED_OUTPUT for t in group if t in producer):
            continue
        q = graph.tensors[rhs].quantization
        scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
        if zero == 0:
            continue
        magnitude = max(abs((-128 - zero) * scale), abs((127 - zero) * scale))
        for t in group:
            tq = graph.tensors[t].quantization
            tq.scale = np.asarray([magnitude / 127], dtype=np.float32)
            tq.zeroPoint = np.asarray([0], dtype=np.int64)
        changed += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changed


def _shared_group(graph, names, producer, consumers, start):
    """Tensors tied to ``start``'s quantization through byte-copying operators, both ways."""
    group, stack = set(), [start]
    while stack:
        t = stack.pop()
        if t in group:
            continue
        group.add(t)
        if t in producer and names[producer[t]] in _SAME_PARAMS:
            op = graph.operators[producer[t]]
            stack += [int(i) for i in op.inputs[:1] if i >= 0 and graph.tensors[i].type == schema.TensorType.INT8]
        for c in consumers.get(t, []):
            op = graph.operators[c]
            if names[c] in _SAME_PARAMS and int(op.inputs[0]) == t:
                stack += [int(o) for o in op.outputs if graph.tensors[o].type == schema.TensorType.INT8]
    return group


def xnnpack_int8(float_tflite, representative_data, *, keep_float=(), max_examples=256, rounds=2):
    """An int8 file XNNPACK runs whole: int8 where it has an int8 kernel, float elsewhere.

    Quantizes ``float_tflite`` with litert-quantizer (:func:`kdtf.export.post_training_quantize`,
    int8 activations and per-channel int8 weights), gives the ``BATCH_MATMUL`` right-hand
    operands zero-point 0 (:func:`symmetric_matmul_operands`), then keeps in float every
    operator type XNNPACK still leaves on LiteRT's builtin kernels (in a ViT: LayerNorm's
    SQUARED_DIFFERENCE, RSQRT and SUB, SOFTMAX, GELU, a broadcast ADD) and repeats, up to
    ``rounds`` times. The float islands cost a QUANTIZE/DEQUANTIZE pair each, which
    XNNPACK runs too, so the graph stays in one delegate partition instead of handing over
    to slow builtin int8 kernels. A CNN whose int8 ops XNNPACK all takes comes back as the
    plain litert-quantizer int8 file. Export with ``to_tflite(model, "float32",
    batch_size=1)`` first for a Transformer (no run-time shape ops).

    Args:
        keep_float: op types kept in float from the start (e.g. ``"DEPTHWISE_CONV_2D"``,
            whose int8 XNNPACK kernel is slower than the float one on x86 with AVX-512).

    Returns:
        ``(flatbuffer bytes, kept_float)``: the op types left in float.
    """
    from kdtf.export.delegation import delegation
    from kdtf.export.ptq import post_training_quantize

    kept = tuple(keep_float)
    for _ in range(rounds + 1):
        quantized = post_training_quantize(float_tflite, "int8", representative_data, keep_float=kept,
                                           max_examples=max_examples)
        quantized, _ = symmetric_matmul_operands(quantized)
        builtin = tuple(sorted(op for op in delegation(quantized)["builtin"] if op not in kept))
        if not builtin:
            break
        kept = tuple(sorted(set(kept) | set(builtin)))
    return quantized, kept
