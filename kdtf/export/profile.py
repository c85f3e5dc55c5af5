"""Where a ``.tflite`` spends its time on LiteRT: delegate coverage, per-op time, and
float32 against int8 of the same model, measured in turns in one process.

* :func:`delegation` (:mod:`kdtf.export.delegation`): which operators XNNPACK took and
  which stayed on LiteRT's builtin kernels, and how many delegate partitions the graph
  was cut into.
* :func:`op_times`: per-operator time from LiteRT's own op profiler
  (:mod:`kdtf.export.op_profile`, the C API of the wheel's ``libLiteRt.so``): XNNPACK's
  operators inside a delegate partition, LiteRT's builtin kernels outside, each with its
  median and 10th-90th percentile range over the profiled invocations. Where that library
  has no profiler, truncated graphs stand in (the model cut after each operator, all
  prefixes timed in turns, an operator's time the difference of two prefixes' medians,
  clamped at 0 and given the range of that difference over the timing rounds).
* :func:`compare_exports`: batch-1 latency of several files at 1 and 2 threads, in turns.
* :func:`latency_profile`: all of the above for a float32 and an int8 file of one
  model, and, when int8 is slower, the reason found (``reason``).
"""

import collections
import logging

import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

from kdtf.export.delegation import allocated_interpreter, delegation
from kdtf.export.flatbuffer import operators, read_flatbuffer
from kdtf.export.litert import latency_side_by_side
from kdtf.export.tflite import to_tflite

__all__ = ["delegation", "op_times", "op_time_totals", "compare_exports", "latency_profile", "profile_export",
           "render_profile", "slower_line", "format_op_totals", "SHAPE_OPS"]

_log = logging.getLogger(__name__)

# Operators that compute shapes at run time (a dynamic batch dimension): nothing a fixed
# input size needs, and float islands in an int8 graph.
SHAPE_OPS = ("SHAPE", "FILL", "GATHER", "PACK", "REDUCE_PROD", "STRIDED_SLICE", "BROADCAST_TO", "RANGE")


def _prefix(model, end):
    """The flatbuffer of ``model`` (a ``ModelT``, main graph) cut after operator ``end``:
    that operator's outputs become the graph's outputs; signatures are dropped."""
    graph = model.subgraphs[0]
    kept_ops, kept_outputs = graph.operators, graph.outputs
    graph.operators = kept_ops[: end + 1]
    graph.outputs = np.asarray([t for t in kept_ops[end].outputs if t >= 0], dtype=np.int32)
    signatures, model.signatureDefs = model.signatureDefs, []
    try:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    finally:
        graph.operators, graph.outputs, model.signatureDefs = kept_ops, kept_outputs, signatures


def op_times(flatbuffer_or_path, num_threads=1, runs=60, rounds=6, delegate=True, method="auto"):
    """Milliseconds per operator, in execution order.

    Args:
        flatbuffer_or_path: the ``.tflite`` path or bytes.
        num_threads: interpreter threads.
        runs: profiled (or, truncated, timed) batch-1 invocations.
        delegate: ``False`` times LiteRT's builtin kernels only (no XNNPACK; truncated graphs).
        method: ``"profiler"`` (LiteRT's op profiler), ``"truncated"`` (truncated graphs)
            or ``"auto"`` (the profiler where the installed LiteRT has it).

    Returns:
        ``[{"index", "op", "kernel", "ms", "p10_ms", "p90_ms", "method"}]``: ``ms`` the
        median, ``p10_ms``-``p90_ms`` its range, never negative. From the profiler, ``op``
        is the kernel's operator (``Fully Connected (NC, QS8, QC8W) GEMM`` inside XNNPACK,
        ``SOFTMAX`` on builtin kernels); from truncated graphs, the TFLite operator.
    """
    from kdtf.export import op_profile

    if method not in ("auto", "profiler", "truncated"):
        raise ValueError(f"Expected method 'auto', 'profiler' or 'truncated'. Received: method={method!r}")
    if method == "profiler" or (method == "auto" and delegate and op_profile.profiler_available()):
        rows = op_profile.profile_ops(flatbuffer_or_path, num_threads=num_threads, runs=max(runs, 20))
        return [{**row, "method": "LiteRT op profiler"} for row in rows]
    return _truncated_times(flatbuffer_or_path, num_threads, runs, rounds, delegate)


def _truncated_times(flatbuffer_or_path, num_threads, runs, rounds, delegate):
    """Per-op time from truncated graphs: each prefix's median per round, an operator's
    time the median over rounds of its prefix's less the previous prefix's, clamped at 0;
    the range is the 10th-90th percentile of those differences, clamped at 0."""
    data = read_flatbuffer(flatbuffer_or_path)
    names = [name for name, _, _, graph_index in operators(data) if graph_index == 0]
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    prefixes = {end: _prefix(model, end) for end in range(len(names))}
    per_round = []
    for _ in range(max(2, rounds)):
        if delegate:
            timings = latency_side_by_side(prefixes, num_threads=num_threads, runs=max(1, runs // rounds), rounds=1,
                                           warmup=2)
        else:
            timings = _side_by_side_builtin(prefixes, num_threads, max(1, runs // rounds), 1)
        per_round.append([timings[end]["median_ms"] for end in range(len(names))])
    medians = np.asarray(per_round)
    differences = np.diff(np.concatenate([np.zeros((len(medians), 1)), medians], axis=1), axis=1)
    rows = []
    for end in range(len(names)):
        d = differences[:, end]
        rows.append({"index": end, "op": names[end], "kernel": "?", "ms": max(0.0, float(np.median(d))),
                     "p10_ms": max(0.0, float(np.percentile(d, 10))), "p90_ms": max(0.0, float(np.percentile(d, 90))),
                     "method": "truncated graphs (estimates)"})
    return rows


def _side_by_side_builtin(flatbuffers, num_threads, runs, rounds):
    import time

    interpreters = {}
    for name, data in flatbuffers.items():
        interpreter = allocated_interpreter(data, num_threads, delegate=False)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
        interpreter.invoke()
        interpreters[name] = interpreter
    times = {name: [] for name in flatbuffers}
    for _ in range(rounds):
        for name, interpreter in interpreters.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": float(np.median(values) * 1e3)} for name, values in times.items()}


def op_time_totals(times, delegation_result=None, limit=None):
    """Per-op-type totals of :func:`op_times`, slowest first: ``[{"op", "kernel", "count",
    "ms", "low_ms", "high_ms", "share", "delegated"}]`` (``ms`` the sum of the operators'
    medians, ``low``/``high`` of their 10th/90th percentiles; ``delegated``: how many of
    that type ran inside XNNPACK)."""
    total = sum(t["ms"] for t in times) or 1.0
    by_op = collections.defaultdict(lambda: {"count": 0, "ms": 0.0, "low_ms": 0.0, "high_ms": 0.0, "delegated": 0})
    flags = {op["index"]: op["delegated"] for op in delegation_result["ops"]} if delegation_result else {}
    for t in times:
        entry = by_op[(t["op"], t.get("kernel", "?"))]
        entry["count"] += 1
        entry["ms"] += max(0.0, t["ms"])
        entry["low_ms"] += max(0.0, t.get("p10_ms", t["ms"]))
        entry["high_ms"] += max(0.0, t.get("p90_ms", t["ms"]))
        known = t.get("kernel", "?") != "?"
        entry["delegated"] += int(t["kernel"] == "XNNPACK" if known else flags.get(t["index"], False))
    rows = [{"op": op, "kernel": kernel, **entry, "share": entry["ms"] / total} for (op, kernel), entry in by_op.items()]
    rows.sort(key=lambda row: -row["ms"])
    return rows[:limit] if limit else rows


def format_op_totals(rows):
    """One line of :func:`op_time_totals` rows: ``Batch Matrix Multiply (builtin) x4 95.5 µs
    (88-120)``; the kernel is named where the profiler knew it."""
    def one(row):
        kernel = f" [{row['kernel']}]" if row.get("kernel", "?") != "?" else ""
        return (f"{row['op']}{kernel} x{row['count']} {1000 * row['ms']:.1f} µs "
                f"({1000 * row['low_ms']:.1f}-{1000 * row['high_ms']:.1f})")
    return ", ".join(one(row) for row in rows)


def compare_exports(flatbuffers, threads=(1, 2), runs=300, rounds=10, warmup=20):
    """Batch-1 latency of ``{name: flatbuffer}``, all files in turns, at each thread count:
    ``{threads: {name: {"median_ms", "p90_ms", ...}}}``."""
    return {n: latency_side_by_side(flatbuffers, num_threads=n, runs=runs, rounds=rounds, warmup=warmup) for n in threads}


def _reason(float_coverage, int8_coverage, int8_totals):
    """Why the int8 file is slower, from what was measured."""
    parts = []
    builtin = int8_coverage["builtin"]
    if builtin:
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(builtin.items(), key=lambda kv: -kv[1]))
        parts.append(f"XNNPACK took {int8_coverage['delegated_ops']} of {int8_coverage['total_ops']} int8 ops "
                     f"(float: {float_coverage['delegated_ops']} of {float_coverage['total_ops']}); on builtin kernels: {listed}")
    if int8_coverage["partitions"] > 1:
        parts.append(f"{int8_coverage['partitions']} delegate partitions (each boundary a hand-over to builtin kernels)")
    shape_ops = sorted({op["op"] for op in int8_coverage["ops"] if op["op"] in SHAPE_OPS})
    if shape_ops:
        parts.append("shape computed at run time (" + ", ".join(shape_ops) + ")")
    if not builtin and int8_coverage["partitions"] <= 1:
        parts.append("every int8 op runs inside XNNPACK: its int8 kernels are slower than its float kernels for these shapes")
    if int8_totals:
        top = ", ".join(f"{row['op']} {row['share']:.0%}" for row in int8_totals[:3])
        parts.append(f"int8 time goes to {top}")
    return "; ".join(parts)


def latency_profile(float_file, int8_file, threads=(1, 2), runs=200, op_runs=60, names=("float32", "int8"),
                    alternatives=None):
    """Float32 against int8 of one model: latency in turns at each thread count, XNNPACK
    coverage, per-op time (1 thread) and, where int8 is slower, why.

    Returns:
        A JSON-ready dict: ``latency`` (``{threads: {name: median ms}}``), ``int8_over_float``
        (``{threads: ratio}``), ``delegation`` and ``op_time_by_type`` per file,
        ``int8_slower`` (at 1 thread) and ``reason`` (``None`` unless slower), and
        ``recommended``: the file with the lowest latency ratio to float32 at its worse
        thread count, ``alternatives`` (``{name: file}``, e.g. a dynamic-range export,
        timed in the same turns) included.
    """
    files = dict(zip(names, (read_flatbuffer(float_file), read_flatbuffer(int8_file))))
    extra = {name: read_flatbuffer(data) for name, data in (alternatives or {}).items()}
    timings = compare_exports({**files, **extra}, threads=threads, runs=runs)
    every = {str(n): {name: round(t[name]["median_ms"], 5) for name in t} for n, t in timings.items()}
    latency = {str(n): {name: round(t[name]["median_ms"], 5) for name in files} for n, t in timings.items()}
    ratio = {str(n): latency[str(n)][names[1]] / latency[str(n)][names[0]] for n in threads}
    coverage = {name: delegation(data) for name, data in files.items()}
    times = {name: op_times(data, runs=op_runs) for name, data in files.items()}
    totals = {name: op_time_totals(times[name], coverage[name], limit=8) for name in files}
    slower = ratio[str(threads[0])] > 1.0
    result = {
        "measured": f"LiteRT, XNNPACK delegate (default), batch 1, threads {list(threads)}, all files in turns in one process",
        "latency_ms": latency,
        "int8_over_float": {k: round(v, 3) for k, v in ratio.items()},
        "delegation": {name: {k: v for k, v in c.items() if k != "ops"} for name, c in coverage.items()},
        "op_time_by_type": totals,
        "op_time_method": next((t[0]["method"] for t in times.values() if t), "none"),
        "files": list(names),
        "int8_slower": slower,
        "reason": _reason(coverage[names[0]], coverage[names[1]], totals[names[1]]) if slower else None,
        "recommended": min(every[str(threads[0])], key=lambda name: max(every[n][name] / every[n][names[0]] for n in every)),
        "alternatives_ms": {n: {name: every[n][name] for name in extra} for n in every} if extra else {},
    }
    return result


def slower_line(profile):
    """The run's closing line for a :func:`latency_profile` (``None`` when int8 pays)."""
    if not profile or not profile.get("int8_slower"):
        return None
    one = next(iter(profile["latency_ms"]))
    lat, (base, quantized) = profile["latency_ms"][one], profile["files"]
    return (f"WARNING: the {quantized} export is {profile['int8_over_float'][one]:.2f}x the {base} export's latency "
            f"({lat[quantized]:.3f} vs {lat[base]:.3f} ms, {one} thread): {profile['reason']}; "
            f"fastest here: {profile.get('recommended')}")


def profile_export(float_model, int8_file, runs=100, op_runs=30, name="int8", representative_data=None):
    """The export stage's latency check: the float32 export of ``float_model`` (the model
    the int8 file replaces, converted here and not saved) against ``int8_file``, by
    :func:`latency_profile` at 1 and 2 threads, with its dynamic-range export (int8
    weights, float activations) timed alongside for the recommendation. With
    ``representative_data`` and an int8 file that leaves operators on builtin kernels (a
    Transformer's attention, LayerNorm, softmax), kdtf's ``int8 xnnpack`` export
    (:func:`kdtf.export.symmetric.xnnpack_int8` of the batch-1 float32 file) is timed too."""
    alternatives = {"dynamic": to_tflite(float_model, "dynamic")} if name != "dynamic" else {}
    if representative_data is not None and delegation(int8_file)["builtin"]:
        from kdtf.export.symmetric import xnnpack_int8

        try:
            fixed = to_tflite(float_model, "float32", batch_size=1)
            alternatives["int8 xnnpack (batch 1)"], _ = xnnpack_int8(fixed, representative_data)
        except ValueError as error:  # a model litert-quantizer cannot take: the check goes on without it
            _log.warning("int8 xnnpack export skipped in the latency check: %s", error)
    result = latency_profile(to_tflite(float_model, "float32"), int8_file, runs=runs, op_runs=op_runs,
                             names=("float32", name), alternatives=alternatives or None)
    result["float32_file"] = f"float32 export of '{float_model.name}' (converted for this check, not saved)"
    return result


def render_profile(profile):
    """Markdown lines for a :func:`latency_profile` in a run's ``report.md``."""
    threads = list(profile["latency_ms"])
    head = "| export | " + " | ".join(f"{n} thread{'s' if n != '1' else ''} (ms)" for n in threads) + \
        " | XNNPACK ops | partitions | on builtin kernels |"
    lines = ["## Where the time goes: float32 against int8 (LiteRT)", "", head, "|" + "---|" * (len(threads) + 4)]
    for name, cover in profile["delegation"].items():
        builtin = ", ".join(f"{op} x{n}" for op, n in cover["builtin"].items()) or "none"
        lines.append(f"| {name} | " + " | ".join(f"{profile['latency_ms'][n][name]:.4f}" for n in threads)
                     + f" | {cover['delegated_ops']} of {cover['total_ops']} | {cover['partitions']} | {builtin} |")
    for name, rows in profile["op_time_by_type"].items():
        lines.append("")
        lines.append(f"{name}, time by operator type (1 thread, {profile.get('op_time_method', 'truncated graphs')}; "
                     f"median per invocation, 10th-90th percentile in brackets): " + format_op_totals(rows))
    ratio = ", ".join(f"{profile['int8_over_float'][n]:.2f}x at {n} thread{'s' if n != '1' else ''}" for n in threads)
    lines += ["", f"int8 / float32 latency: {ratio}. {profile['measured']}."]
    for name, by_threads in _transpose(profile.get("alternatives_ms", {})).items():
        lines += ["", f"{name} export (timed in the same turns, not saved): "
                  + ", ".join(f"{ms:.4f} ms at {n} thread{'s' if n != '1' else ''}" for n, ms in by_threads.items())]
    if profile["int8_slower"]:
        lines += ["", f"**int8 is slower than float32 here**: {profile['reason']}."]
    if profile.get("recommended"):
        lines += ["", f"Fastest export on this machine (lowest ratio to float32 at the worse thread count): **{profile['recommended']}**."]
    return lines + [""]


def _transpose(by_threads):
    out = collections.defaultdict(dict)
    for n, values in by_threads.items():
        for name, ms in values.items():
            out[name][n] = ms
    return out
