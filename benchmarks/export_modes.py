#!/usr/bin/env python
"""TFLite export modes of a run's distilled student, measured on LiteRT in one run.

    python benchmarks/export_modes.py saved_models/readme-default
    python benchmarks/export_modes.py RUN_DIR --qat-epochs 0 --runs 50   # quicker

For the run's ``student.keras``:

* the TFLite converter: float32, float16, dynamic-range int8, full-integer int8 (int8
  input/output, calibrated on 256 training images) and 16x8;
* litert-quantizer post-training quantization of the float32 file
  (:func:`kdtf.export.post_training_quantize`): int8, int16x8 and int4w (int4 weights, float
  activations quantized on the fly), the int8 ones calibrated on the same 256 images;
* quantization-aware training: QAT alone (``--qat-epochs`` of distillation from the
  run's teacher, the run's own settings otherwise; 0 skips it) and the run's own
  pruned+QAT ``student_int8.tflite``.

Each row: size, gzip size, LiteRT test accuracy, top-1 agreement with the Keras float
model, and median batch-1 latency with 1 thread and with every core; the Keras model's
latency is measured in the same process. Below the table, for each litert-quantizer mode,
the per-op error against float (:func:`kdtf.export.layer_errors`, on 256 test images),
worst op first. Prints Markdown and writes it to ``RUN_DIR/export_modes.md``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402

CALIBRATION = 256


def qat_student(run_dir, report, data, epochs):
    """The run's student after QAT alone, fine-tuned by distillation from its teacher with
    the run's terms, temperature, alpha, labels kept and fine-tuning learning rate."""
    import numpy as np

    from kdtf import compress
    from kdtf.data import keep_labels
    from kdtf.saving import load_model
    from kdtf.spec import DistillSpec
    from kdtf.training import FineTuner

    config, labelled = report["config"], report["data"]["labelled"]
    if labelled < len(data.y_train):  # the run's label-scarce regime (500 labels on the bundled sets)
        data.y_train = keep_labels(data.y_train, labelled, seed=config["seed"])
    steps = int(np.ceil(len(data.y_train) / config["batch_size"]))
    student, teacher = (load_model(os.path.join(run_dir, f"{name}.keras")) for name in ("student", "teacher"))
    tuner = FineTuner(
        teacher, data.dataset("train", config["batch_size"], shuffle=True, seed=config["seed"]).repeat(),
        spec=DistillSpec(temperature=config["temperature"], alpha=config["alpha"], terms=config["distill"]),
        optimizer=config["finetune_learning_rate"], validation_data=data.dataset("val", config["batch_size"]),
        steps_per_epoch=steps,
    )
    quantized, _ = compress.Recipe.parse("qat").run(student, tuner, epochs=epochs, steps_per_epoch=steps)
    return quantized


def flatbuffers(run_dir, report, data, student, qat_epochs):
    """``[(row name, flatbuffer bytes, litert-quantizer mode or None)]`` in table order."""
    from kdtf import export

    representative = data.x_train[:CALIBRATION]
    rows = [(f"converter {mode}", export.to_tflite(student, mode, representative_data=[representative]), None) for mode in export.MODES]
    float_file = rows[0][1]
    for mode in export.PTQ_MODES:
        rows.append((f"litert-quantizer {mode}", export.post_training_quantize(float_file, mode, representative), mode))
    if qat_epochs:
        rows.append((f"QAT int8 ({qat_epochs} epochs distilled)", export.to_tflite(qat_student(run_dir, report, data, qat_epochs), "int8"), None))
    with open(os.path.join(run_dir, "student_int8.tflite"), "rb") as f:
        rows.append(("pruned+QAT int8 (the run's student_int8.tflite)", f.read(), None))
    return rows


def measure(rows, data, student, runs):
    """One table line per flatbuffer, plus the Keras float latency line."""
    from kdtf import export
    from kdtf.io import gzip_size

    threads = os.cpu_count() or 1
    keras_ms = export.keras_latency(student, data.input_shape, runs=runs, warmup=30)["median_ms"]
    lines = [
        f"| model | size (KB) | gzip (KB) | LiteRT test accuracy | top-1 agreement with Keras float | latency 1 thread (µs) | latency {threads} threads (µs) | speed-up vs Keras (1 thread) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, flatbuffer, _ in rows:
        result = export.evaluate(flatbuffer, data.x_test, data.y_test, keras_model=student)
        one = export.latency(flatbuffer, num_threads=1, runs=runs, warmup=30)["median_ms"]
        many = export.latency(flatbuffer, num_threads=threads, runs=runs, warmup=30)["median_ms"]
        lines.append(
            f"| {name} | {len(flatbuffer) / 1024:.1f} | {gzip_size(flatbuffer) / 1024:.1f} | {100 * result['accuracy']:.2f} % | "
            f"{100 * result['agreement']:.1f} % | {1000 * one:.1f} | {1000 * many:.1f} | {keras_ms / one:.0f}x |"
        )
        print(f"{name}: done", file=sys.stderr, flush=True)
    lines.append(f"| Keras float32 (`model(x)` in a tf.function) | — | — | — | — | {1000 * keras_ms:.1f} | — | 1x |")
    return "\n".join(lines) + "\n"


def layer_sections(rows, data, limit):
    """Per-op error tables of the litert-quantizer files, worst op first."""
    from kdtf import export

    float_file = rows[0][1]
    sections = []
    for name, flatbuffer, mode in rows:
        if mode is None:
            continue
        errors = export.layer_errors(float_file, flatbuffer, data.x_test[:CALIBRATION])
        worst = min((r for r in errors if r["snr_db"] is not None), key=lambda r: r["snr_db"])
        sections.append(
            f"\n### Per-op error of {name} against float ({CALIBRATION} test images; worst first)\n\n"
            f"Worst op: {worst['op']} {worst['type']} (`{worst['tensor'].split(';')[0]}`), SNR {worst['snr_db']:.1f} dB.\n\n"
            + export.layer_error_table(errors, limit=limit)
        )
    return "".join(sections)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--runs", type=int, default=300, help="timed invocations per latency")
    parser.add_argument("--qat-epochs", type=int, default=2, help="epochs of the QAT-only row (0: skip it)")
    parser.add_argument("--ops", type=int, default=8, help="rows of each per-op error table")
    args = parser.parse_args(argv)

    from kdtf.data import load
    from kdtf.io import write_text
    from kdtf.report import load_report
    from kdtf.saving import load_model

    report = load_report(args.run_dir)
    data = load(report["config"]["dataset"], seed=report["config"]["seed"])
    student = load_model(os.path.join(args.run_dir, "student.keras"))
    rows = flatbuffers(args.run_dir, report, data, student, args.qat_epochs)
    text = measure(rows, data, student, args.runs) + layer_sections(rows, data, args.ops)
    write_text(os.path.join(args.run_dir, "export_modes.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
