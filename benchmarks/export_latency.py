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
and output SNR on 64 random inputs against the model the file was converted from
(:func:`fidelity`: a random-weight model's float32 file; for a trained run, the Keras
model: ``student.keras`` for its float32 export, the compressed model the run saved,
e.g. ``student_pruned_qat.h5``, for its int8 file), and for the float32 and int8 files the
operator types that take the time (LiteRT's op profiler, :mod:`kdtf.export.op_profile`).
The recommended export has the lowest latency ratio to float32 at its worse thread count
among files whose top-1 agreement with their reference is at least ``--min-agreement``
(the fastest file overall is marked too: an int8 file of random weights can collapse to
one class, which says nothing of a trained model's int8).
Writes ``--out``/table.md and raw.json; ``--keep`` keeps the rows of models not measured
this time (``--models --run RUN_DIR --keep``: the trained run's rows only).
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


def output_snr_db(expected, outputs):
    """``10 log10(sum(expected ** 2) / sum((outputs - expected) ** 2))`` over every
    example and logit; ``None`` where the outputs are equal (exact)."""
    expected, outputs = np.asarray(expected, np.float64), np.asarray(outputs, np.float64)
    noise = float(np.sum((outputs - expected) ** 2))
    return float(10 * np.log10(np.sum(expected ** 2) / noise)) if noise > 0 else None


def fidelity(files, x, references=None):
    """Each file's top-1 agreement and output SNR on ``x``, against the model it copies:
    ``references[name] = (label, keras_model)`` for a file converted from that Keras model
    (a trained run's files), else the first file (the model's float32 export, which the
    other exports of a random-weight model are converted from like it).

    Returns:
        ``{name: {"compared_with", "agreement", "snr_db"}}`` (``snr_db`` ``None``: exact).
    """
    from kdtf import export

    first = export.predict(next(iter(files.values())), x, num_threads=1)
    result = {}
    for name, data in files.items():
        if references and name in references:
            label, model = references[name]
            expected = np.asarray(model(np.asarray(x, np.float32), training=False))
        else:
            label, expected = "float32 file", first
        outputs = export.predict(data, x, num_threads=1)
        result[name] = {"compared_with": label, "agreement": float(np.mean(outputs.argmax(-1) == expected.argmax(-1))),
                        "snr_db": output_snr_db(expected, outputs)}
    return result


def measure(files, threads, reps, runs, op_runs, references=None):
    """Latency per rep in turns, delegation, agreement and SNR (:func:`fidelity`), op-type
    profiles of float32/int8."""
    from kdtf import export
    from kdtf.export import profile

    first = next(iter(files.values()))
    x = np.random.default_rng(1).random((64,) + tuple(export.load_interpreter(first).get_input_details()[0]["shape"][1:]),
                                        dtype=np.float32)
    copies = fidelity(files, x, references)
    rows = {}
    for name, data in files.items():
        cover = profile.delegation(data)
        rows[name] = {"size_bytes": len(data), **copies[name],
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


def _agreement(row):
    """A row's top-1 agreement (raw.json files before the ``compared_with`` column: ``agreement_with_float32``)."""
    return row["agreement"] if "agreement" in row else row["agreement_with_float32"]


def recommend(rows, min_agreement):
    """``(fastest, recommended)``: the file with the lowest worst-thread-count ratio to
    float32, over all files and over those agreeing with the model they copy on
    ``min_agreement`` of the inputs (an int8 file of random weights can collapse to one class)."""
    ok = [name for name, row in rows.items() if _agreement(row) >= min_agreement]
    return min(rows, key=lambda name: _worst_ratio(rows, name)), min(ok, key=lambda name: _worst_ratio(rows, name))


def table(results, threads, reps, runs):
    from kdtf.export import profile
    from kdtf.export.litert import runtime_version

    lines = ["| model | export | size (KB) | XNNPACK ops | partitions | shape ops | compared with | top-1 agreement | output SNR (dB) | "
             + " | ".join(f"{n} thread{'s' if n > 1 else ''}: ms (x float32)" for n in threads) + " |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(threads)]
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
                         f"{row['partitions']} | {', '.join(row['shape_ops']) or '-'} | {row.get('compared_with', 'float32 file')} | "
                         f"{100 * _agreement(row):.0f} % | "
                         f"{'exact' if row.get('snr_db') is None else format(row['snr_db'], '.1f')} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"LiteRT {runtime_version()} (XNNPACK delegate on, its default), batch 1, median of {runs} invocations per repetition, "
              f"{reps} repetitions (ratio range across them), every file of a model timed in turns in one process; "
              f"{os.cpu_count()}-core x86 machine shared with other jobs: read the ratios, not the milliseconds. "
              "Random weights with BatchNormalization statistics taken from 32 random inputs (a trained run's rows: its own weights). "
              "Top-1 agreement and output SNR compare each file with the model it was converted from ('compared with'), on the same 64 random inputs: "
              "the SNR is 10 log10(sum(reference logits^2) / sum((file logits - reference logits)^2)). For the random-weight models the reference "
              "is the model's float32 file; for a trained run it is the Keras model the file was converted from: student.keras (the distilled "
              "student) for the float32 file, and for the run's int8 file the compressed model (pruned and QAT-trained) the run saved beside it, "
              "not student.keras, whose weights and logits compression fine-tuning changed. With random weights "
              "a network's top-1 is nearly constant across inputs, so top-1 agreement is a coarse check and the output SNR the finer one. "
              "Recommended: lowest worse-thread-count ratio to float32 among files agreeing with their reference "
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


def converted_from(run_dir):
    """The Keras file a run's ``.tflite`` was converted from: its tflite row's
    ``converted_from`` in ``report.json`` (runs before that field: the Keras row just
    before the tflite row, the compression stage's model)."""
    with open(os.path.join(run_dir, "report.json"), encoding="utf-8") as f:
        stages = json.load(f)["stages"]
    for i, stage in enumerate(stages):
        if stage["file"].endswith(".tflite"):
            return stage.get("converted_from") or stages[i - 1]["file"]
    raise ValueError(f"Expected a .tflite row in {run_dir}/report.json. Received: stages "
                     f"{[s['stage'] for s in stages]}; rerun kdtf distill with its export stage.")


def run_files(run_dir):
    """A trained run's float32 export of ``student.keras`` (the latency baseline) and its
    own int8 file, each with the Keras model it was converted from, as
    ``(files, references)`` for :func:`measure`."""
    from kdtf import export
    from kdtf.saving import load_model

    student = load_model(os.path.join(run_dir, "student.keras"))
    source = converted_from(run_dir)
    with open(os.path.join(run_dir, "student_int8.tflite"), "rb") as f:
        files = {"float32": export.to_tflite(student, "float32"), "int8 (the run's QAT file)": f.read()}
    references = {"float32": ("student.keras (Keras)", student),
                  "int8 (the run's QAT file)": (f"{source} (Keras)", load_model(os.path.join(run_dir, source)))}
    return files, references


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--run", help="a trained run folder: adds its student and student_int8.tflite")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100, help="timed invocations per file, thread count and repetition")
    parser.add_argument("--op-runs", type=int, default=200, help="invocations under LiteRT's op profiler")
    parser.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT)
    parser.add_argument("--out", default="benchmarks/results/export_latency")
    parser.add_argument("--keep", action="store_true",
                        help="keep the other models' rows of --out/raw.json: measure only the models given, then write "
                             "table.md from all of them (e.g. --models --run RUN_DIR --keep re-measures the trained run)")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    todo = [(name, None) for name in args.models] + ([("trained run student", args.run)] if args.run else [])
    results, raw = {}, {"args": vars(args)}
    if args.keep and os.path.exists(os.path.join(args.out, "raw.json")):
        with open(os.path.join(args.out, "raw.json"), encoding="utf-8") as f:
            earlier = json.load(f)
        results = earlier["results"]  # measured models replace their rows in place; the others stay as measured then
        raw["earlier_args"] = earlier.get("earlier_args", earlier["args"])
    os.makedirs(args.out, exist_ok=True)
    for name, run_dir in todo:
        log(f"{name}: exporting")
        files, references = run_files(run_dir) if run_dir else (
            exports(build_model(name), static=MODELS[name][0].startswith("vit")), None)
        rows = measure(files, args.threads, args.reps, args.runs, args.op_runs, references)
        fastest, recommended = recommend(rows, args.min_agreement)
        results[name] = {"rows": rows, "fastest": fastest, "recommended": recommended}
        log(f"{name}: recommended {results[name]['recommended']}")
        write_text(os.path.join(args.out, "raw.json"), json.dumps({**raw, "results": results}, indent=2) + "\n")
    text = table(results, args.threads, args.reps, args.runs)
    write_text(os.path.join(args.out, "table.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
