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

Trainer. ``--trainer local`` (default) trains with the explicit step in this file, so the
benchmark runs before the Distiller knows the ``attention`` / ``hidden`` terms;
``--trainer distiller`` passes the same spec strings (``"kd:1,attention:W,hidden:W"``) to
``kdtf.Distiller`` once they are wired in.

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

from kdtf import Distiller, compress, export, keras  # noqa: E402
from kdtf._keras import tf  # noqa: E402
from kdtf.losses import kd_loss  # noqa: E402
from kdtf.losses import transformer as losses  # noqa: E402
from kdtf.models import vit  # noqa: E402
from kdtf.taps import tap  # noqa: E402

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


class LocalTerms:
    """Student and teacher views (taps of the mapped blocks), hidden adapters and the
    term values: the explicit version of what the Distiller's terms will do."""

    def __init__(self, student, teacher, weights):
        self.weights = weights
        s_names, t_names, self.pairs = [], [], {}
        for kind in ("attention", "hidden"):
            if kind in weights:
                pairs = vit.block_pairs(student, teacher, kind)
                self.pairs[kind] = range(len(s_names) + 1, len(s_names) + 1 + len(pairs))
                s_names += [s for s, _ in pairs]
                t_names += [t for _, t in pairs]
        self.student_view, self.teacher_view = tap(student, s_names), tap(teacher, t_names)
        self.adapters = []
        if "hidden" in weights:
            widths = [(student.get_layer(s).output_shape[-1], teacher.get_layer(t).output_shape[-1]) for s, t in zip(s_names, t_names) if s.endswith("_output")]
            self.adapters = [losses.hidden_adapter(ws, wt, name=f"hidden_adapter{i}") for i, (ws, wt) in enumerate(widths)]

    def values(self, t_out, s_out):
        t_out, s_out = tf.nest.flatten(t_out), tf.nest.flatten(s_out)
        values = {"kd": tf.reduce_mean(kd_loss(t_out[0], s_out[0], 4.0))}
        if "attention" in self.pairs:
            values["attention"] = tf.add_n([tf.reduce_mean(losses.attention_matrix_loss(t_out[i], s_out[i])) for i in self.pairs["attention"]]) / len(self.pairs["attention"])
        if "hidden" in self.pairs:
            pairs = [tf.reduce_mean(losses.hidden_state_loss(t_out[i], a(s_out[i]))) for i, a in zip(self.pairs["hidden"], self.adapters)]
            values["hidden"] = tf.add_n(pairs) / len(pairs)
        return {name: values[name] for name in self.weights}


def distill_local(student, teacher, dataset, weights, epochs, alpha=0.5):
    """Trains ``student``: ``alpha * CE(labelled) + (1 - alpha) * sum_w w * term``.
    Returns the term values on the first batch, before any update."""
    terms = LocalTerms(student, teacher, weights)
    variables = student.trainable_variables + [v for a in terms.adapters for v in a.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(x, y):
        t_out = terms.teacher_view(x, training=False)
        with tf.GradientTape() as tape:
            s_out = tf.nest.flatten(terms.student_view(x, training=True))
            values = terms.values(t_out, s_out)
            distill = tf.add_n([weights[n] * v for n, v in values.items()])
            mask = tf.cast(y >= 0, tf.float32)
            ce = keras.losses.sparse_categorical_crossentropy(tf.maximum(y, 0), s_out[0], from_logits=True)
            total = alpha * tf.math.divide_no_nan(tf.reduce_sum(ce * mask), tf.reduce_sum(mask)) + (1 - alpha) * distill
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return values

    start = None
    for _ in range(epochs):
        for x, y in dataset:
            if start is None:
                start = {n: float(v) for n, v in terms.values(terms.teacher_view(x, training=False), terms.student_view(x, training=False)).items()}
            step(x, y)
    return start


def distill_with_distiller(student, teacher, dataset, weights, epochs):
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5, distill=spec_string(weights))
    distiller.compile(keras.optimizers.Adam(1e-3))
    distiller.fit(dataset, epochs=epochs, verbose=0)
    return {}


def int8_student(student, teacher, setup, args):
    """QAT (KD + CE) of ``student``, int8 TFLite, measured on LiteRT."""
    quantized = compress.quantize(student)
    distill_local(quantized, teacher, setup.train_ds, {"kd": 1.0}, args.qat_epochs)
    flatbuffer = export.to_tflite(quantized, "int8", representative_data=[setup.data.x_train[:200]])
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
    train = distill_local if args.trainer == "local" else distill_with_distiller
    for name in args.methods:
        terms, teacher = METHODS[name]
        student = setup.build("vit_student", seed_offset=1)  # the scratch row's initial weights
        result["start values"][name] = train(student, teachers[teacher], setup.train_ds, term_weights(terms, args), args.epochs)
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
    text = "\n".join(lines) + f"\n\nMean ± std over {len(runs)} seed(s); {args.labels} labels + the rest unlabeled; 500 test images; trainer: {args.trainer}.\n"
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
    parser.add_argument("--trainer", choices=["local", "distiller"], default="local")
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
