#!/usr/bin/env python
"""TFLite export modes of a run's distilled student, measured on LiteRT in one run.

    python benchmarks/export_modes.py saved_models/readme-default

For the run's ``student.keras``: float32, float16, dynamic-range int8, full-integer int8
(int8 input/output, calibrated on 256 training images) and 16x8; plus the run's own
pruned+QAT ``student_int8.tflite``. Each row: size, gzip size, LiteRT test accuracy, and
median batch-1 latency with 1 thread and with every core; the Keras model's latency is
measured in the same process. Prints a Markdown table and writes it to
``RUN_DIR/export_modes.md``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)

    from kdtf import export
    from kdtf.data import load
    from kdtf.io import gzip_size, write_text
    from kdtf.models.io import load_model
    from kdtf.report import load_report

    report = load_report(args.run_dir)
    data = load(report["config"]["dataset"], seed=report["config"]["seed"])
    student = load_model(os.path.join(args.run_dir, "student.keras"))
    threads = os.cpu_count() or 1
    rows = []

    def measure(name, flatbuffer):
        result = export.evaluate(flatbuffer, data.x_test, data.y_test, keras_model=student)
        one = export.latency(flatbuffer, num_threads=1, runs=args.runs, warmup=30)
        many = export.latency(flatbuffer, num_threads=threads, runs=args.runs, warmup=30)
        rows.append((name, len(flatbuffer), gzip_size(flatbuffer), result["accuracy"], result["agreement"], one["median_ms"], many["median_ms"]))
        print(f"{name}: done", file=sys.stderr, flush=True)

    representative = [data.x_train[:256]]
    for mode in export.MODES:
        measure(mode, export.to_tflite(student, mode, representative_data=representative))
    with open(os.path.join(args.run_dir, "student_int8.tflite"), "rb") as f:
        measure("pruned+QAT int8 (the run's student_int8.tflite)", f.read())
    keras_ms = export.keras_latency(student, data.input_shape, runs=args.runs, warmup=30)["median_ms"]

    lines = [
        f"| model | size (KB) | gzip (KB) | LiteRT test accuracy | top-1 agreement with Keras float | latency 1 thread (µs) | latency {threads} threads (µs) | speed-up vs Keras (1 thread) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, size, gz, acc, agree, one, many in rows:
        lines.append(
            f"| {name} | {size / 1024:.1f} | {gz / 1024:.1f} | {100 * acc:.2f} % | {100 * agree:.1f} % | "
            f"{1000 * one:.1f} | {1000 * many:.1f} | {keras_ms / one:.0f}x |"
        )
    lines.append(f"| Keras float32 (`model(x)` in a tf.function) | — | — | — | — | {1000 * keras_ms:.1f} | — | 1x |")
    table = "\n".join(lines) + "\n"
    write_text(os.path.join(args.run_dir, "export_modes.md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
