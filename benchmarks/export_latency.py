#!/usr/bin/env python
"""Which TFLite export of each kdtf student is fastest on LiteRT, and why.

    python benchmarks/export_latency.py                        # every model below
    python benchmarks/export_latency.py --models student --reps 1 --runs 50    # quicker

Models (random weights, BatchNormalization statistics taken from 32 random inputs:
latency depends on shapes and on which kernels run, not on the weights' values; ``--run
RUN_DIR`` adds a trained run's student and its own int8 file): the default student
(``student_cnn``, 28x28x1), the filters:0.5 student (half of its filters removed by
:func:`kdtf.compress.prune_filters`), MobileNetV2 0.35 (``mobilenet_v2_035``) at 96 and
160 px (RGB) and the ViT student (``vit_student``, 28x28x1). Exports of each: float32,
float16 (float16 weights), dynamic (int8 weights, float activations), int8 (the
converter's full integer, int8 input/output, calibrated on 32 random inputs), each with the
batch dimension dynamic (as kdtf exports by default) and, for the ViT, also fixed to 1
(``to_tflite(batch_size=1)``: no shape-computation ops); and ``int8 xnnpack``
(:func:`kdtf.export.symmetric.xnnpack_int8`: litert-quantizer int8, zero-point 0 on the
BATCH_MATMUL right-hand operands, float only where XNNPACK has no int8 kernel; for
MobileNetV2 also with DEPTHWISE_CONV_2D kept in float).

All files of one model are timed in turns in one process (batch 1, after warm-up), at 1
and 2 threads, ``--reps`` times; the machine is shared with other jobs, so the ratios
to float32 are the figures to read, not the milliseconds. Each file: XNNPACK-delegated
ops / all ops and partitions (:func:`kdtf.export.profile.delegation`), top-1 agreement
with the float32 file and the output SNR against it on 64 random inputs, and for the
float32 and int8 files the operator types that take the time (LiteRT's op profiler,
:mod:`kdtf.export.op_profile`). The recommended export has the lowest latency ratio to
float32 at its worse thread count among files whose top-1 agreement with float32 is at
least ``--min-agreement`` (the fastest file overall is marked too: an int8 file of random
weights can collapse to one class, which says nothing of a trained model's int8).
Writes ``--out``/table.md and raw.json.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

MODELS = {  # name: (zoo model, input shape, filters removed)
    "student": ("student_cnn", (28, 28, 1), 0.0),
    "student filters:0.5": ("student_cnn", (28, 28, 1), 0.5),
    "mobilenet_v2_035 96px": ("mobilenet_v2_035", (96, 96, 3), 0.0),
    "mobilenet_v2_035 160px": ("mobilenet_v2_035", (160, 160, 3), 0.0),
    "vit_student": ("vit_student", (28, 28, 1), 0.0),
}
MODES = ("float32", "float16", "dynamic", "int8")
MIN_AGREEMENT = 0.9


def log(message):
    print(f"[export_latency {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_model(name):
    from kdtf import compress, keras
    from kdtf.models import build

    zoo, shape, fraction = MODELS[name]
    keras.utils.set_random_seed(0)
    model = build(zoo, shape, 10)
    model = compress.prune_filters(model, fraction)[0] if fraction else model
    return data_statistics(model, np.random.default_rng(2).random((32,) + shape, dtype=np.float32))


def data_statistics(model, x):
    """BatchNormalization statistics of ``x`` instead of the initial 0/1: one training-mode
    pass with momentum 0, so every layer's activations have the scale a trained
    network's have (random weights otherwise feed int8 ranges that no trained model has)."""
    from kdtf import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if layers:
        momenta = [layer.momentum for layer in layers]
        for layer in layers:
            layer.momentum = 0.0
        model(x, training=True)
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return model


def exports(model, static):
    """``{export name: flatbuffer}``: every mode with a dynamic batch, and with batch 1 when ``static``."""
    from kdtf import export
    from kdtf.export import symmetric

    shape = tuple(model.input_shape[1:])
    calibration = np.random.default_rng(0).random((32,) + shape, dtype=np.float32)
    files = {}
    for batch in (None, 1) if static else (None,):
        for mode in MODES:
            name = mode + (" batch-1" if batch else "")
            files[name] = export.to_tflite(model, mode, representative_data=calibration, batch_size=batch)
            log(f"  {name}: {len(files[name]) / 1024:.0f} KB")
    # int8 where XNNPACK has an int8 kernel, float islands elsewhere, zero-point 0 on matmul operands
    base = files["float32 batch-1" if static else "float32"]
    suffix = " batch-1" if static else ""
    files["int8 xnnpack" + suffix], kept = symmetric.xnnpack_int8(base, calibration)
    log(f"  int8 xnnpack{suffix}: kept in float: {', '.join(kept) or 'nothing'}")
    if "DEPTHWISE_CONV_2D" in export.list_ops(base):
        files["int8 xnnpack, depthwise float"], _ = symmetric.xnnpack_int8(base, calibration, keep_float=("DEPTHWISE_CONV_2D",))
    return files


def measure(files, threads, reps, runs, op_runs):
    """Latency per rep in turns, delegation, agreement, op-type profiles of float32/int8."""
    from kdtf import export
    from kdtf.export import profile

    reference = next(iter(files.values()))
    x = np.random.default_rng(1).random((64,) + tuple(export.load_interpreter(reference).get_input_details()[0]["shape"][1:]),
                                        dtype=np.float32)
    expected = export.predict(reference, x, num_threads=1)
    top1 = expected.argmax(-1)
    rows = {}
    for name, data in files.items():
        cover = profile.delegation(data)
        outputs = export.predict(data, x, num_threads=1)
        noise = float(np.sum((outputs - expected) ** 2))
        rows[name] = {"size_bytes": len(data), "agreement_with_float32": float(np.mean(outputs.argmax(-1) == top1)),
                      "snr_db": float(10 * np.log10(np.sum(expected ** 2) / noise)) if noise > 0 else None,
                      **{k: v for k, v in cover.items() if k != "ops"},
                      "shape_ops": sorted({op["op"] for op in cover["ops"] if op["op"] in profile.SHAPE_OPS}),
                      "latency_ms": {str(n): [] for n in threads}}
    for rep in range(reps):
        for n, timing in profile.compare_exports(files, threads=threads, runs=runs).items():
            for name in files:
                rows[name]["latency_ms"][str(n)].append(timing[name]["median_ms"])
        log(f"  rep {rep + 1}/{reps} timed")
    for name in files:
        if name.split()[0] in ("float32", "int8") and "depthwise" not in name:
            times = profile.op_times(files[name], runs=op_runs, rounds=3)
            rows[name]["op_time_method"] = times[0]["method"] if times else "none"
            rows[name]["op_time_by_type"] = profile.op_time_totals(times, limit=6)
    return rows


def _worst_ratio(rows, name):
    """The file's latency over float32's at its worst thread count (median over repetitions)."""
    base = rows["float32"]["latency_ms"]
    return max(np.median(rows[name]["latency_ms"][n]) / np.median(base[n]) for n in base)


def recommend(rows, min_agreement):
    """``(fastest, recommended)``: the file with the lowest worst-thread-count ratio to
    float32, over all files and over those agreeing with float32 on ``min_agreement`` of
    the inputs (an int8 file of random weights can collapse to one class)."""
    ok = [name for name, row in rows.items() if row["agreement_with_float32"] >= min_agreement]
    return min(rows, key=lambda name: _worst_ratio(rows, name)), min(ok, key=lambda name: _worst_ratio(rows, name))


def table(results, threads, reps, runs):
    from kdtf.export import profile
    from kdtf.export.litert import runtime_version

    lines = ["| model | export | size (KB) | XNNPACK ops | partitions | shape ops | agreement with float32 | output SNR (dB) | "
             + " | ".join(f"{n} thread{'s' if n > 1 else ''}: ms (x float32)" for n in threads) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(threads)]
    for model, result in results.items():
        rows, base = result["rows"], result["rows"]["float32"]
        for name, row in rows.items():
            cells = []
            for n in threads:
                ms = float(np.median(row["latency_ms"][str(n)]))
                ratios = [a / b for a, b in zip(row["latency_ms"][str(n)], base["latency_ms"][str(n)])]
                spread = f" {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
                cells.append(f"{ms:.4f} ({np.median(ratios):.2f}x{spread})")
            fastest, recommended = recommend(rows, MIN_AGREEMENT)
            mark = (" **recommended**" if name == recommended else "") + (" (fastest)" if name == fastest else "")
            lines.append(f"| {model} | {name}{mark} | {row['size_bytes'] / 1024:.1f} | {row['delegated_ops']}/{row['total_ops']} | "
                         f"{row['partitions']} | {', '.join(row['shape_ops']) or '-'} | {100 * row['agreement_with_float32']:.0f} % | "
                         f"{'exact' if row.get('snr_db') is None else format(row['snr_db'], '.1f')} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"LiteRT {runtime_version()} (XNNPACK delegate on, its default), batch 1, median of {runs} invocations per repetition, "
              f"{reps} repetitions (ratio range across them), every file of a model timed in turns in one process; "
              f"{os.cpu_count()}-core x86 machine shared with other jobs: read the ratios, not the milliseconds. "
              "Random weights with BatchNormalization statistics taken from 32 random inputs (a trained run's rows: its own weights); with random weights "
              "a network's top-1 is nearly constant across inputs, so top-1 agreement is a coarse check and the output SNR (float32 logits against the file's, "
              "64 random inputs) the finer one. Recommended: lowest worse-thread-count ratio to float32 among files agreeing with float32 "
              f"on at least {MIN_AGREEMENT:.0%} of 64 random inputs. XNNPACK ops: operators the delegate took / all operators; shape ops: run-time shape computation. "
              "int8 xnnpack: litert-quantizer int8, zero-point 0 on BATCH_MATMUL right-hand operands, float only for the op types XNNPACK has no int8 kernel for "
              "(kdtf.export.symmetric.xnnpack_int8).",
              "", "Where the time goes (1 thread, per operator type as LiteRT's op profiler names it, [XNNPACK] or [builtin] kernel; "
              "sum of the operators' median µs per invocation, in brackets the sums of their 10th and 90th percentiles):", ""]
    for model, result in results.items():
        for name, row in result["rows"].items():
            if "op_time_by_type" in row:
                lines.append(f"- {model}, {name}: " + profile.format_op_totals(row["op_time_by_type"]))
    return "\n".join(lines) + "\n"


def run_files(run_dir):
    """A trained run's float32 student export and its own int8 file."""
    from kdtf import export
    from kdtf.saving import load_model

    student = load_model(os.path.join(run_dir, "student.keras"))
    with open(os.path.join(run_dir, "student_int8.tflite"), "rb") as f:
        return {"float32": export.to_tflite(student, "float32"), "int8 (the run's QAT file)": f.read()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--run", help="a trained run folder: adds its student and student_int8.tflite")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100, help="timed invocations per file, thread count and repetition")
    parser.add_argument("--op-runs", type=int, default=200, help="invocations under LiteRT's op profiler")
    parser.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT)
    parser.add_argument("--out", default="benchmarks/results/export_latency")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    todo = [(name, None) for name in args.models] + ([("trained run student", args.run)] if args.run else [])
    results = {}
    os.makedirs(args.out, exist_ok=True)
    for name, run_dir in todo:
        log(f"{name}: exporting")
        files = run_files(run_dir) if run_dir else exports(build_model(name), static=MODELS[name][0].startswith("vit"))
        rows = measure(files, args.threads, args.reps, args.runs, args.op_runs)
        fastest, recommended = recommend(rows, args.min_agreement)
        results[name] = {"rows": rows, "fastest": fastest, "recommended": recommended}
        log(f"{name}: recommended {results[name]['recommended']}")
        write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    text = table(results, args.threads, args.reps, args.runs)
    write_text(os.path.join(args.out, "table.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
