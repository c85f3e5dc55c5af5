#!/usr/bin/env python
"""Transformers: ViT teacher and student, attention-matrix and hidden-state distillation,
a CNN teacher for a ViT student, and the int8 (QAT) student on LiteRT.

    python benchmarks/transformers.py                       # seeds 0 1 2
    python benchmarks/transformers.py --seeds 0 --teacher-epochs 1 --epochs 1 --qat-epochs 1   # smoke

Regime: the main job's default (mnist5k, 500 training labels, the other 3,499 training
images unlabeled; see label_scarce.py). Teachers train on the labels alone; every student
row starts from the same initial ViT student (``vit_student``, 41.7 k parameters) and
trains for ``--epochs`` over all training images with Adam 1e-3, alpha = 0.5, T = 4:
cross-entropy where labelled, plus the distillation terms ``kd`` (weight 1),
``attention`` (:func:`kdtf.losses.transformer.attention_matrix_loss`) and ``hidden``
(:func:`kdtf.losses.transformer.hidden_state_loss` through a learnable linear adapter per
student block), both on the uniform block mapping (student block i <- teacher block
ceil((i+1) L_t / L_s) - 1), each averaged over the mapped block pairs. Term weights follow
methods.py's rule, weight ~ 1 / (the term's value for an untrained student against the
trained teacher): attention 0.067 and hidden 6.0 in the smoke run below (seed 0, a ViT
teacher of 2 epochs), hence 15 and 0.15; the script prints the start values of every run
so the rule can be re-checked against the fully trained teachers.

Every student trains through ``kdtf.Distiller`` with the spec string of its row
(``"kd:1,attention:W,hidden:W"``), as ``scripts/distill.py --distill`` would.

The int8 row: the ``kd+attention+hidden`` student, quantization-aware trained
(``kdtf.compress.quantize``) for ``--qat-epochs`` of KD + cross-entropy, converted to a
full-integer ``.tflite`` (200 training images calibrate the LayerNorm internals), then
measured on LiteRT: test accuracy, agreement with Keras, size, gzip size, batch-1 latency
(1 thread). Prints Markdown tables and writes them with raw numbers to --out.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

from kdtf import Distiller, DistillSpec, compress, export, keras  # noqa: E402
from kdtf.training import fit  # noqa: E402

# row -> (distillation terms, teacher)
METHODS = {
    "kd": ("kd", "vit_teacher"),
    "kd+attention": ("kd,attention", "vit_teacher"),
    "kd+attention+hidden": ("kd,attention,hidden", "vit_teacher"),
    "cnn teacher, kd": ("kd", "teacher_cnn"),
}


def term_weights(terms, args):
    weights = {"kd": 1.0, "attention": args.attention_weight, "hidden": args.hidden_weight}
    return {name: weights[name] for name in terms.split(",")}


def spec_string(weights):
    """The ``--distill`` spec of the same terms, for the Distiller once they are wired in."""
    return ",".join(f"{name}:{weight:g}" for name, weight in weights.items())


def distill(student, teacher, setup, weights, epochs):
    """Trains ``student`` with ``kdtf.Distiller`` (T = 4, alpha = 0.5, Adam 1e-3) on every
    training image; returns each term's value on the first batch, before any update."""
    spec = DistillSpec(temperature=4.0, alpha=0.5, terms=spec_string(weights))
    distiller = Distiller(student, teacher, spec)
    distiller.compile(keras.optimizers.Adam(1e-3))
    logs = distiller.evaluate(setup.train_ds.take(1), return_dict=True, verbose=0)
    start = {name: logs.get(f"{name}_loss", logs["distillation_loss"]) for name in weights}
    distiller.fit(setup.train_ds, epochs=epochs, verbose=0)
    return start


def int8_student(student, teacher, setup, args):
    """QAT (KD + CE) of ``student``, int8 TFLite, measured on LiteRT."""
    quantized = compress.quantize(student)
    fit(quantized, setup.train_ds, epochs=args.qat_epochs, teacher=teacher, spec=DistillSpec(temperature=4.0, alpha=0.5))
    flatbuffer = export.to_tflite(quantized, "int8", representative_data=setup.data.x_train[:200])
    ops = export.check_builtin_ops(flatbuffer)
    metrics = export.evaluate(flatbuffer, setup.data.x_test, setup.data.y_test, keras_model=quantized)
    float_size = len(export.to_tflite(student, "float32"))
    return dict(
        metrics, keras_accuracy=setup.accuracy(quantized), bytes=len(flatbuffer), gzip_bytes=len(gzip.compress(flatbuffer)),
        float32_bytes=float_size, ops=ops, latency_ms=export.latency(flatbuffer, runs=args.latency_runs)["median_ms"],
    )


def one_seed(seed, args):
    from label_scarce import LabelScarce

    setup = LabelScarce(seed, args.labels)
    teachers = {"vit_teacher": setup.supervised("vit_teacher", args.teacher_epochs, seed_offset=0)}
    result = {"vit teacher": setup.accuracy(teachers["vit_teacher"]), "start values": {}}
    if any(METHODS[m][1] == "teacher_cnn" for m in args.methods):
        teachers["teacher_cnn"] = setup.supervised("teacher_cnn", args.cnn_teacher_epochs, seed_offset=0)
        result["cnn teacher"] = setup.accuracy(teachers["teacher_cnn"])
    result["scratch"] = setup.accuracy(setup.supervised("vit_student", args.epochs, seed_offset=1))
    for name in args.methods:
        terms, teacher = METHODS[name]
        student = setup.build("vit_student", seed_offset=1)  # the scratch row's initial weights
        result["start values"][name] = distill(student, teachers[teacher], setup, term_weights(terms, args), args.epochs)
        result[name] = setup.accuracy(student)
        print(f"seed {seed} {name}: {result[name]:.4f} (start values {result['start values'][name]})", file=sys.stderr, flush=True)
        if name == args.int8_row:
            result["int8"] = int8_student(student, teachers[teacher], setup, args)
    return result


def tables(runs, args):
    rows = ["vit teacher"] + (["cnn teacher"] if "cnn teacher" in runs[0] else []) + ["scratch"] + args.methods
    scratch = np.array([r["scratch"] for r in runs])
    lines = ["| model | distill terms | test accuracy (%) | minus scratch (points) |", "|---|---|---|---|"]
    for row in rows:
        values = np.array([r[row] for r in runs])
        spec = spec_string(term_weights(METHODS[row][0], args)) if row in METHODS else "—"
        gain = f"{100 * np.mean(values - scratch):+.2f} ± {100 * np.std(values - scratch):.2f}" if row in METHODS else "—"
        lines.append(f"| {row} | `{spec}` | {100 * values.mean():.2f} ± {100 * values.std():.2f} | {gain} |")
    text = "\n".join(lines) + f"\n\nMean ± std over {len(runs)} seed(s); {args.labels} labels + the rest unlabeled; 500 test images.\n"
    if all("int8" in r for r in runs):
        m = {k: np.array([r["int8"][k] for r in runs]) for k in ("accuracy", "keras_accuracy", "agreement", "bytes", "gzip_bytes", "float32_bytes", "latency_ms")}
        text += (
            f"\nint8 student (`{args.int8_row}`, QAT {args.qat_epochs} epoch(s)) on LiteRT: accuracy {100 * m['accuracy'].mean():.2f} ± {100 * m['accuracy'].std():.2f} % "
            f"(Keras QAT model {100 * m['keras_accuracy'].mean():.2f} %), top-1 agreement with Keras {100 * m['agreement'].mean():.2f} %, "
            f"{m['bytes'].mean() / 1024:.1f} KiB ({m['gzip_bytes'].mean() / 1024:.1f} KiB gzip; float32 {m['float32_bytes'].mean() / 1024:.1f} KiB), "
            f"batch-1 latency {m['latency_ms'].mean():.3f} ms median (1 thread). Ops: {', '.join(runs[0]['int8']['ops'])}.\n"
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--teacher-epochs", type=int, default=30, help="ViT teacher epochs")
    parser.add_argument("--cnn-teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--attention-weight", type=float, default=15.0, help="1 / 0.067, its start value (see the docstring)")
    parser.add_argument("--hidden-weight", type=float, default=0.15, help="1 / 6.0, its start value")
    parser.add_argument("--int8-row", default="kd+attention+hidden", choices=list(METHODS))
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/transformers")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    runs = [dict(one_seed(seed, args), seed=seed) for seed in args.seeds]
    text = tables(runs, args)
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), text)
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "runs": runs}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
