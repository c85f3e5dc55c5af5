#!/usr/bin/env python
"""Cost of distillation per epoch, side by side on the same data.

    python benchmarks/distill_speed.py                 # mnist5k, teacher_cnn -> student_cnn
    python benchmarks/distill_speed.py --epochs 5 --batch-size 128

Each configuration runs in its own process (so its peak memory is its own), trains for
one warm-up epoch (tracing, XLA compilation) and then ``--epochs`` timed epochs:

  (a) the student alone, ``fit`` with cross-entropy
  (b) the Distiller, teacher forward pass every step
  (c) the Distiller on cached teacher outputs (``Distiller.cached_dataset``)
  (d) (c) with ``jit_compile=True``
  (e) (b) with ``jit_compile=True``
  teacher: the teacher's forward pass alone over the same epoch of batches

Prints a table with median epoch time, examples/second, peak resident memory and ratios
to (a), checks the targets of issue 8 ((c) <= 1.15 x (a); (b) <= (a) + 1.1 x teacher)
and writes ``benchmarks/results/distill_speed/speed.{json,md}``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

CONFIGS = {
    "a": "student alone (fit, cross-entropy)",
    "b": "Distiller, teacher every step",
    "c": "Distiller, cached teacher outputs",
    "d": "Distiller, cached, jit_compile=True",
    "e": "Distiller, teacher every step, jit_compile=True",
    "teacher": "teacher forward pass alone, same batches",
}


class _EpochTimer:
    def __init__(self):
        from kdtf import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.times.append(time.perf_counter() - outer.start)

        self.times = []
        self.callback = Callback()


def _worker(config, args):
    import numpy as np

    from kdtf import Distiller, keras
    from kdtf._keras import tf
    from kdtf.data import load
    from kdtf.models import build

    data = load(args.dataset, seed=0)
    x, y = data.x_train, data.y_train
    keras.utils.set_random_seed(0)
    teacher = build(args.teacher, data.input_shape, data.num_classes, name="teacher")
    student = build(args.student, data.input_shape, data.num_classes, name="student")
    plain = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    timer = _EpochTimer()
    extra = {}
    if config == "teacher":
        forward = tf.function(lambda batch: teacher(batch, training=False))
        for epoch in range(args.epochs + 1):
            start = time.perf_counter()
            for xb, _ in plain:
                forward(xb).numpy()
            if epoch:  # the first pass traces
                timer.times.append(time.perf_counter() - start)
    elif config == "a":
        student.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
        student.fit(plain, epochs=args.epochs + 1, verbose=0, callbacks=[timer.callback])
        timer.times = timer.times[1:]
    else:
        distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5)
        distiller.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"], jit_compile=config in ("d", "e"))
        ds = plain
        if config in ("c", "d"):
            start = time.perf_counter()
            ds = distiller.cached_dataset(x, y, batch_size=args.batch_size, seed=0)
            extra["cache_build_s"] = time.perf_counter() - start
        distiller.fit(ds, epochs=args.epochs + 1, verbose=0, callbacks=[timer.callback])
        timer.times = timer.times[1:]
    epoch = float(np.median(timer.times))
    return {
        "config": config,
        "what": CONFIGS[config],
        "epoch_s": epoch,
        "epoch_times_s": timer.times,
        "examples_per_s": len(x) / epoch,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "examples": len(x),
        **extra,
    }


def _table(results, args):
    a = results["a"]["epoch_s"]
    rows = [
        f"Median epoch time over {args.epochs} epochs after one warm-up epoch; {results['a']['examples']} "
        f"training images of {args.dataset}, batch {args.batch_size}, {args.teacher} -> {args.student}; "
        f"{os.cpu_count()} CPU core(s); each row in its own process.",
        "",
        "| config | epoch (s) | examples/s | x (a) | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        rows.append(
            f"| ({key}) {r['what']} | {r['epoch_s']:.3f} | {r['examples_per_s']:,.0f} | "
            f"{r['epoch_s'] / a:.2f} | {r['peak_rss_mb']:,.0f} |"
        )
    b, c, t = results["b"]["epoch_s"], results["c"]["epoch_s"], results["teacher"]["epoch_s"]
    targets = {
        "cached_over_student": c / a,
        "cached_target_met": c <= 1.15 * a,
        "teacher_step_budget_s": a + 1.1 * t,
        "teacher_step_target_met": b <= a + 1.1 * t,
    }
    rows += [
        "",
        f"Targets: (c) / (a) = {c / a:.2f} (target <= 1.15: {'met' if targets['cached_target_met'] else 'NOT met'}); "
        f"(b) = {b:.3f} s against (a) + 1.1 x teacher = {a:.3f} + 1.1 x {t:.3f} = {a + 1.1 * t:.3f} s "
        f"({'met' if targets['teacher_step_target_met'] else 'NOT met'}).",
    ]
    return "\n".join(rows) + "\n", targets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--teacher", default="teacher_cnn")
    parser.add_argument("--student", default="student_cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--only", help="comma-separated configs (default: all)")
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "distill_speed"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args)))
        return 0
    results = {}
    for config in (args.only.split(",") if args.only else CONFIGS):
        command = [sys.executable, os.path.abspath(__file__), "--worker", config, "--dataset", args.dataset,
                   "--teacher", args.teacher, "--student", args.student, "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr[-3000:])
            return 1
        results[config] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"({config}) {CONFIGS[config]}: {results[config]['epoch_s']:.3f} s/epoch", flush=True)
    if not all(k in results for k in ("a", "b", "c", "teacher")):
        return 0
    table, targets = _table(results, args)
    print(table)
    from kdtf.io import write_text

    os.makedirs(args.output, exist_ok=True)
    write_text(os.path.join(args.output, "speed.md"), table)
    write_text(os.path.join(args.output, "speed.json"), json.dumps(
        {"settings": vars(args), "results": results, "targets": targets, "cpus": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
