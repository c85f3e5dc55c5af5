"""LiteRT's own op profiler, reached through the C API of the ``ai-edge-litert`` wheel.

The Python ``Interpreter`` and ``CompiledModel`` of ``ai-edge-litert`` 2.3 have no profiler
hook, but the wheel's ``libLiteRt.so`` exports the C API that has one: a compiled model
created with the runtime option ``enable_profiling = true`` owns a profiler
(``LiteRtCompiledModelGetProfiler``) that records one event per operator and invocation,
XNNPACK's own operators inside a delegate partition (``Delegate/Convolution (NHWC, QC8)
IGEMM``) and LiteRT's builtin kernels outside it (``SOFTMAX``). :func:`profile_ops` loads
the library with ``ctypes``, runs the model ``runs`` times and summarizes the events per
operator: mean, median and the 10th-90th percentile range per invocation. Events are whole
microseconds, so an operator under 1 µs reads 0 (never negative).

The thread count goes to the XNNPACK options (``num_threads = N``); a file with a dynamic
batch dimension is profiled at batch 1 (its shape signature is fixed first).
"""

import collections
import ctypes
import functools
import os

import numpy as np

__all__ = ["profile_ops", "profiler_available", "by_kernel_type"]

_P = ctypes.c_void_p
# tflite::Profiler::EventType values in LiteRT 2.3's events: one DEFAULT event "Invoke"
# opens each invocation; operators on builtin kernels, then XNNPACK's operators.
_DEFAULT_EVENT, _OPERATOR_EVENT, _DELEGATE_OPERATOR_EVENT = 1, 2, 8


class _Event(ctypes.Structure):
    """``ProfiledEventData`` of ``litert/c/litert_profiler_event.h`` (C layout)."""

    _fields_ = [("tag", ctypes.c_char_p), ("event_type", ctypes.c_int), ("start_us", ctypes.c_uint64),
                ("elapsed_us", ctypes.c_uint64), ("begin_mem", ctypes.c_size_t * 3), ("end_mem", ctypes.c_size_t * 3),
                ("metadata1", ctypes.c_uint64), ("metadata2", ctypes.c_uint64), ("source", ctypes.c_int)]


@functools.lru_cache(maxsize=1)
def _library():
    import ai_edge_litert

    lib = ctypes.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))
    for name in ("LiteRtCompiledModelGetProfiler", "LiteRtGetProfilerEvents", "LiteRtCreateOpaqueOptions"):
        getattr(lib, name)  # AttributeError: this wheel has no profiler in its C API
    libc = ctypes.CDLL(None)
    libc.strdup.restype, libc.strdup.argtypes = _P, [ctypes.c_char_p]
    return lib, libc


def profiler_available():
    """True when the installed ``ai-edge-litert`` exports LiteRT's profiler C API."""
    try:
        _library()
        return True
    except (OSError, AttributeError, ImportError):
        return False


def _check(status, call):
    if status != 0:
        raise RuntimeError(f"LiteRT's C API refused {call} (status {status}).")


def _static_batch(data):
    """The flatbuffer with every tensor's shape signature removed, so a dynamic batch
    dimension reads as its stored size 1 (the C API sizes buffers from static shapes)."""
    from ai_edge_litert.tools import flatbuffer_utils

    from kdtf.export.flatbuffer import model_object

    model = model_object(data)
    changed = False
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if tensor.shapeSignature is not None and len(tensor.shapeSignature) and min(tensor.shapeSignature) < 0:
                tensor.shapeSignature, changed = None, True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else data


class _Profiled:
    """A compiled model with profiling on, its environment and its I/O buffers (C handles)."""

    def __init__(self, data, num_threads):
        lib, libc = self.lib, self.libc = _library()
        self.data = ctypes.create_string_buffer(data, len(data))  # the model reads it in place
        self.env, self.model, self.options, self.compiled = _P(), _P(), _P(), _P()
        _check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self.env)), "LiteRtCreateEnvironment")
        _check(lib.LiteRtCreateModelFromBuffer(self.env, self.data, ctypes.c_size_t(len(data)), ctypes.byref(self.model)),
               "LiteRtCreateModelFromBuffer")
        _check(lib.LiteRtCreateOptions(ctypes.byref(self.options)), "LiteRtCreateOptions")
        _check(lib.LiteRtSetOptionsHardwareAccelerators(self.options, ctypes.c_int(1)), "the CPU accelerator")
        free = ctypes.cast(libc.free, _P)
        for identifier, toml in ((b"runtime_options_string", "enable_profiling = true"),
                                 (b"xnnpack", f"num_threads = {int(num_threads)}")):
            opaque = _P()
            _check(lib.LiteRtCreateOpaqueOptions(identifier, _P(libc.strdup(toml.encode() + b"\n")), free,
                                                 ctypes.byref(opaque)), f"options {identifier.decode()}")
            _check(lib.LiteRtAddOpaqueOptions(self.options, opaque), "LiteRtAddOpaqueOptions")
        _check(lib.LiteRtCreateCompiledModel(self.env, self.model, self.options, ctypes.byref(self.compiled)),
               "LiteRtCreateCompiledModel")
        self.profiler = _P()
        _check(lib.LiteRtCompiledModelGetProfiler(self.compiled, ctypes.byref(self.profiler)), "LiteRtCompiledModelGetProfiler")
        signature = _P()
        _check(lib.LiteRtGetModelSignature(self.model, ctypes.c_size_t(0), ctypes.byref(signature)), "LiteRtGetModelSignature")
        self.inputs, self.outputs = self._buffers(signature, "Input"), self._buffers(signature, "Output")

    def _buffers(self, signature, kind):
        lib, count = self.lib, ctypes.c_size_t()
        _check(getattr(lib, f"LiteRtGetNumSignature{kind}s")(signature, ctypes.byref(count)), f"{kind} count")
        handles = []
        for i in range(count.value):
            tensor, requirements, buffer = _P(), _P(), _P()
            tensor_type = (ctypes.c_byte * 512)()  # LiteRtRankedTensorType, filled by the library
            _check(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex")(signature, ctypes.c_size_t(i), ctypes.byref(tensor)),
                   f"{kind} tensor")
            _check(lib.LiteRtGetRankedTensorType(tensor, tensor_type), "LiteRtGetRankedTensorType")
            _check(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
                self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(i), ctypes.byref(requirements)), f"{kind} buffer requirements")
            _check(lib.LiteRtCreateManagedTensorBufferFromRequirements(self.env, tensor_type, requirements, ctypes.byref(buffer)),
                   f"a {kind.lower()} buffer")
            handles.append(buffer)
        return (_P * len(handles))(*handles)

    def run(self, times):
        for _ in range(times):
            _check(self.lib.LiteRtRunCompiledModel(self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(len(self.inputs)),
                                                   self.inputs, ctypes.c_size_t(len(self.outputs)), self.outputs),
                   "LiteRtRunCompiledModel")

    def events(self):
        count = ctypes.c_int()
        _check(self.lib.LiteRtGetNumProfilerEvents(self.profiler, ctypes.byref(count)), "LiteRtGetNumProfilerEvents")
        events = (_Event * count.value)()
        _check(self.lib.LiteRtGetProfilerEvents(self.profiler, count, events), "LiteRtGetProfilerEvents")
        return [(e.tag.decode(errors="replace"), e.event_type, int(e.elapsed_us), int(e.metadata1)) for e in events]

    def close(self):
        lib = self.lib
        for buffer in list(self.inputs) + list(self.outputs):
            lib.LiteRtDestroyTensorBuffer(_P(buffer))
        lib.LiteRtDestroyCompiledModel(self.compiled)
        lib.LiteRtDestroyOptions(self.options)
        lib.LiteRtDestroyModel(self.model)
        lib.LiteRtDestroyEnvironment(self.env)


def profile_ops(flatbuffer_or_path, num_threads=1, runs=200, warmup=10):
    """Per-operator time from LiteRT's op profiler, batch 1.

    Args:
        flatbuffer_or_path: the ``.tflite`` path or bytes.
        num_threads: XNNPACK threads.
        runs: profiled invocations (after ``warmup`` unprofiled ones).

    Returns:
        ``[{"index", "op", "kernel", "ms", "mean_ms", "p10_ms", "p90_ms", "runs"}]``
        in execution order: ``op`` is the kernel's name (XNNPACK's operator inside a
        delegate partition, LiteRT's builtin op name outside), ``kernel`` ``"XNNPACK"``
        or ``"builtin"``, ``ms`` the median per invocation (robust to other work on the
        machine; ``mean_ms`` is not), ``p10_ms``-``p90_ms`` the range of 80 % of the
        invocations. All values >= 0 (events are whole microseconds).
    """
    from kdtf.export.flatbuffer import read_flatbuffer
    from kdtf.io import captured_stderr

    data = _static_batch(read_flatbuffer(flatbuffer_or_path))
    with captured_stderr():  # the C API logs every environment it creates and destroys
        session = _Profiled(data, num_threads)
        try:
            session.run(warmup)
            _check(session.lib.LiteRtStartProfiler(session.profiler), "LiteRtStartProfiler")
            session.run(runs)
            _check(session.lib.LiteRtStopProfiler(session.profiler), "LiteRtStopProfiler")
            events = session.events()
        finally:
            session.close()
    return _summarize(events)


def _summarize(events):
    """Per-operator statistics from the raw events: the k-th operator event of every
    invocation (each opens with a DEFAULT ``Invoke`` event) is operator k."""
    invocations, current = [], None
    for tag, kind, elapsed, _ in events:
        if kind == _DEFAULT_EVENT and tag == "Invoke":
            current = []
            invocations.append(current)
        elif kind in (_OPERATOR_EVENT, _DELEGATE_OPERATOR_EVENT) and current is not None:
            current.append((tag, kind == _DELEGATE_OPERATOR_EVENT, elapsed / 1e3))
    invocations = [run for run in invocations if run]
    if not invocations:
        return []
    layout = [(tag, delegated) for tag, delegated, _ in invocations[0]]
    runs = [run for run in invocations if [(tag, delegated) for tag, delegated, _ in run] == layout]
    times = np.asarray([[ms for *_, ms in run] for run in runs])
    rows = []
    for position, (tag, delegated) in enumerate(layout):
        values = times[:, position]
        rows.append({"index": position, "op": tag.removeprefix("Delegate/"), "kernel": "XNNPACK" if delegated else "builtin",
                     "ms": float(np.median(values)), "mean_ms": float(values.mean()),
                     "p10_ms": float(np.percentile(values, 10)), "p90_ms": float(np.percentile(values, 90)),
                     "runs": int(len(values))})
    return rows


def by_kernel_type(rows, limit=None):
    """:func:`profile_ops` rows summed per ``(op, kernel)``, slowest first: ``[{"op",
    "kernel", "count", "ms", "low_ms", "high_ms", "share"}]`` (``ms``: the sum of the
    operators' medians; ``low``/``high``: the sums of their 10th and 90th percentiles)."""
    total = sum(row["ms"] for row in rows) or 1.0
    groups = collections.defaultdict(lambda: {"count": 0, "ms": 0.0, "low_ms": 0.0, "high_ms": 0.0})
    for row in rows:
        group = groups[(row["op"], row["kernel"])]
        group["count"] += 1
        group["ms"] += row["ms"]
        group["low_ms"] += row["p10_ms"]
        group["high_ms"] += row["p90_ms"]
    out = [{"op": op, "kernel": kernel, **values, "share": values["ms"] / total} for (op, kernel), values in groups.items()]
    out.sort(key=lambda row: -row["ms"])
    return out[:limit] if limit else out
