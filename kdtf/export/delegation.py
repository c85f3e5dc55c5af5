"""Which operators of a ``.tflite`` XNNPACK (LiteRT's default CPU delegate) takes.

The interpreter lists its nodes (the model's operators, then one ``DELEGATE`` node per
partition); a partition's operators are found by walking back from the delegate node's
outputs to its inputs. Used by the latency profile (:mod:`kdtf.export.profile`) and by
:func:`kdtf.export.symmetric.xnnpack_int8`, which keeps in float what XNNPACK leaves out.
"""

import collections

from ai_edge_litert.interpreter import Interpreter, OpResolverType

from kdtf.export.flatbuffer import operators, read_flatbuffer

__all__ = ["delegation", "allocated_interpreter"]


def allocated_interpreter(data, num_threads, delegate=True):
    """A LiteRT interpreter of ``data`` with its tensors allocated: XNNPACK applied
    (LiteRT's default) or, with ``delegate=False``, builtin kernels only."""
    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=data, num_threads=num_threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def delegation(flatbuffer_or_path, num_threads=1):
    """Which operators of the main graph XNNPACK (LiteRT's default CPU delegate) took.

    Returns:
        dict: ``ops`` (one ``{"index", "op", "delegated"}`` per operator, in execution
        order), ``delegated`` and ``builtin`` (``{op name: count}``), ``partitions``
        (delegate nodes), ``delegated_ops`` and ``total_ops``.
    """
    data = read_flatbuffer(flatbuffer_or_path)
    names = [name for name, _, _, graph_index in operators(data) if graph_index == 0]
    nodes = allocated_interpreter(data, num_threads)._get_ops_details()
    producer = {int(t): node["index"] for node in nodes[: len(names)] for t in node["outputs"]}
    inputs_of = {node["index"]: [int(t) for t in node["inputs"] if t >= 0] for node in nodes[: len(names)]}
    delegated = set()
    partitions = nodes[len(names):]
    for node in partitions:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in delegated:
                continue
            delegated.add(producer[tensor])
            stack += inputs_of[producer[tensor]]
    ops = [{"index": i, "op": name, "delegated": i in delegated} for i, name in enumerate(names)]
    count = lambda flag: dict(collections.Counter(op["op"] for op in ops if op["delegated"] == flag))  # noqa: E731
    return {"ops": ops, "delegated": count(True), "builtin": count(False), "partitions": len(partitions),
            "delegated_ops": len(delegated), "total_ops": len(names)}
