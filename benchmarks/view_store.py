#!/usr/bin/env python
"""Distillation with augmentation at the student's cost: the view store (issue 25).

    python benchmarks/view_store.py                      # mnist5k, teacher_cnn -> student_cnn, flip,crop
    python benchmarks/view_store.py --dataset folder:PATH --image-size 96 \\
        --teacher mobilenet_v2 --student mobilenet_v2_035 --cache-dir cache   # a folder run (slow on CPU)

One process, one machine, the same replayable augmentation (:mod:`kdtf.data.views`)
for every configuration:

  (a) the student alone, ``fit`` with cross-entropy, a fresh view every epoch
  (a-kcv) the same with today's keras-cv augmentation (``Splits.dataset(augment=...)``)
  (b) the Distiller, teacher every step, a fresh view every epoch
  (c) the Distiller from the view store (K views, top-k), one stored view per epoch

Timing: after one warm-up epoch each, ``--rounds`` rounds in which every configuration
trains one epoch (interleaved, so load from other jobs hits all alike); the median
epoch of each is reported with its ratio to (a). The store pass's seconds and bytes per
example are measured too. Accuracy: for ``--seeds`` seeds, (b) and (c) distil a
fresh student for ``--epochs`` epochs with the same policy, labels and seed; test
accuracy of each. Writes ``benchmarks/results/view_store/view_store.{json,md}``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _setup(args):
    from kdtf import keras
    from kdtf.data import accuracy, keep_labels, load
    from kdtf.data.views import ViewPolicy, view_batches
    from kdtf.models import build

    data = load(args.dataset, seed=0, image_size=args.image_size or None, cache_dir=args.cache_dir or None)
    keras.utils.set_random_seed(0)
    teacher = build(args.teacher, data.input_shape, data.num_classes, name="teacher")
    teacher.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=0)
    steps = int(np.ceil(data.size("train") / args.batch_size))
    plain = view_batches(data, "train", args.batch_size, policy, seed=0).map(lambda x, y, p, v: (x, y))
    started = time.perf_counter()
    teacher.fit(plain, steps_per_epoch=steps, epochs=args.teacher_epochs, verbose=0)
    teacher_s = time.perf_counter() - started
    teacher_acc = float(accuracy(teacher, data.dataset("test", 256)))
    print(f"teacher {args.teacher}: {args.teacher_epochs} epochs with {args.augment} in {teacher_s:.0f} s, "
          f"test accuracy {teacher_acc:.4f}", flush=True)
    labelled = data.y_train.copy()
    if args.labels:
        data.y_train = keep_labels(data.y_train, args.labels, seed=0)
    return data, teacher, teacher_acc, labelled, steps, build


def _student(build, args, data, seed):
    from kdtf import keras

    keras.utils.set_random_seed(seed + 1)
    return build(args.student, data.input_shape, data.num_classes, name="student")


def _distiller(args, student, teacher):
    from kdtf import Distiller, keras

    distiller = Distiller(student, teacher, temperature=args.temperature, alpha=args.alpha)
    distiller.compile(keras.optimizers.Adam(args.lr), metrics=["accuracy"])
    return distiller


def _store(args, distiller, data, seed, cache):
    from kdtf.data.view_store import ViewStore
    from kdtf.data.views import ViewPolicy

    policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=seed)
    top_k = args.top_k if args.top_k == "all" else int(args.top_k)
    return ViewStore.for_distiller(distiller, data, policy, views=args.views, top_k=top_k, cache_dir=cache,
                                   batch_size=args.batch_size).build()


def _timing(args, data, teacher, labelled, steps, build, cache):
    from kdtf import keras
    from kdtf.data.views import ViewPolicy, view_batches

    policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=0)
    saved, data.y_train = data.y_train, labelled  # timing: every example labelled, as in distill_speed
    try:
        fresh = view_batches(data, "train", args.batch_size, policy, seed=0).map(lambda x, y, p, v: (x, y))
        student = _student(build, args, data, 0)
        student.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
        kcv_student = _student(build, args, data, 0)
        kcv_student.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
        kcv = data.dataset("train", args.batch_size, shuffle=True, seed=0, augment=args.augment, repeat=True)
        every = _distiller(args, _student(build, args, data, 0), teacher)
        stored = _distiller(args, _student(build, args, data, 0), teacher)
        store = _store(args, stored, data, 0, cache)
        trainers = {"a": (student, fresh), "b": (every, fresh), "c": (stored, store.dataset(args.batch_size, seed=0))}
        if not args.skip_keras_cv:
            trainers["a-kcv"] = (kcv_student, kcv)
        times = {name: [] for name in trainers}
        for round_ in range(args.rounds + 1):
            for name, (model, ds) in trainers.items():
                start = time.perf_counter()
                model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
                if round_:  # round 0 traces and warms up
                    times[name].append(time.perf_counter() - start)
        return times, store.describe()
    finally:
        data.y_train = saved


def _accuracy_runs(args, data, teacher, steps, build, cache):
    from kdtf.data import accuracy
    from kdtf.data.views import ViewPolicy, view_batches

    rows = []
    for seed in range(args.seeds):
        policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=seed)
        fresh = view_batches(data, "train", args.batch_size, policy, seed=seed).map(lambda x, y, p, v: (x, y))
        row = {"seed": seed}
        for name in ("b", "c"):
            distiller = _distiller(args, _student(build, args, data, seed), teacher)
            ds = fresh
            if name == "c":
                started = time.perf_counter()
                store = _store(args, distiller, data, seed, cache)
                row["store_pass_s"] = time.perf_counter() - started
                ds = store.dataset(args.batch_size, seed=seed)
            started = time.perf_counter()
            distiller.fit(ds, steps_per_epoch=steps, epochs=args.epochs, verbose=0)
            row[f"{name}_train_s"] = time.perf_counter() - started
            row[name] = float(accuracy(distiller.student, data.dataset("test", 256)))
        print(f"seed {seed}: teacher every step {row['b']:.4f}, view store {row['c']:.4f}", flush=True)
        rows.append(row)
    return rows


def _table(args, data, teacher_acc, times, store, rows):
    median = {name: float(np.median(t)) for name, t in times.items()}
    a = median["a"]
    what = {"a": "student alone, fit, same replayable views", "a-kcv": "student alone, keras-cv augmentation (today)",
            "b": "Distiller, teacher every step", "c": f"Distiller from the view store (K={args.views}, top-k {args.top_k})"}
    lines = [
        f"`{' '.join(['python', 'benchmarks/view_store.py'] + sys.argv[1:])}`; {args.dataset} "
        f"({data.size('train')} train, input {data.input_shape}), {args.teacher} -> {args.student}, --augment {args.augment}, "
        f"batch {args.batch_size}, {os.cpu_count()} CPU cores, machine shared with other jobs, one process.",
        "",
        f"Median (and fastest) epoch over {args.rounds} interleaved rounds after a warm-up epoch:",
        "",
        "| config | median epoch (s) | x (a) | fastest epoch (s) | x (a) |",
        "|---|---|---|---|---|",
    ]
    fastest = {name: float(np.min(t)) for name, t in times.items()}
    for name in times:
        lines.append(f"| ({name}) {what[name]} | {median[name]:.3f} | {median[name] / a:.2f} | "
                     f"{fastest[name]:.3f} | {fastest[name] / fastest['a']:.2f} |")
    c_over_a = median["c"] / a
    lines += [
        "",
        f"Target (c) <= 1.10 x (a): {c_over_a:.2f} ({'met' if c_over_a <= 1.10 else 'NOT met'}). "
        f"Store pass: {store['pass_s']:.1f} s for {data.size('train')} examples x {args.views} views; "
        f"{store['bytes_per_example']:.0f} bytes per example ({store['bytes'] / 2**20:.2f} MiB on disk).",
        f"End to end for {args.epochs} epochs: (b) {args.epochs * median['b']:.1f} s vs store pass + (c) "
        f"{store['pass_s'] + args.epochs * median['c']:.1f} s.",
    ]
    if rows:
        b, c = np.array([r["b"] for r in rows]), np.array([r["c"] for r in rows])
        lines += [
            "",
            f"Test accuracy after {args.epochs} epochs ({args.labels or 'all'} labels kept, the rest an unlabeled transfer "
            f"share; T={args.temperature}, alpha={args.alpha}; teacher {teacher_acc:.4f}):",
            "",
            "| seed | (b) teacher every step | (c) view store | (c) - (b) |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['seed']} | {r['b']:.4f} | {r['c']:.4f} | {r['c'] - r['b']:+.4f} |" for r in rows]
        lines.append(f"| mean ± std | {b.mean():.4f} ± {b.std(ddof=1) if len(b) > 1 else 0:.4f} | "
                     f"{c.mean():.4f} ± {c.std(ddof=1) if len(c) > 1 else 0:.4f} | {(c - b).mean():+.4f} |")
    return "\n".join(lines) + "\n", median


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--image-size", type=int, default=0)
    parser.add_argument("--cache-dir", default="", help="image cache (needed for folders) and view stores")
    parser.add_argument("--teacher", default="teacher_cnn")
    parser.add_argument("--student", default="student_cnn")
    parser.add_argument("--augment", default="flip,crop")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--top-k", default="5")
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15, help="distillation epochs of the accuracy runs")
    parser.add_argument("--labels", type=int, default=500, help="labels kept for the accuracy runs (0: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--skip-keras-cv", action="store_true")
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "view_store"))
    parser.add_argument("--name", help="file name of the results (default: view_store, or view_store_<folder>)")
    args = parser.parse_args(argv)
    cache = args.cache_dir or tempfile.mkdtemp(prefix="view-store-bench-")
    started = time.perf_counter()
    try:
        data, teacher, teacher_acc, labelled, steps, build = _setup(args)
        times, store = _timing(args, data, teacher, labelled, steps, build, cache)
        print({k: round(float(np.median(v)), 3) for k, v in times.items()}, flush=True)
        rows = _accuracy_runs(args, data, teacher, steps, build, cache) if args.seeds else []
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache, ignore_errors=True)
    table, median = _table(args, data, teacher_acc, times, store, rows)
    print(table)
    from kdtf.io import write_text

    os.makedirs(args.output, exist_ok=True)
    slug = args.name or ("view_store" if args.dataset == "mnist5k" else "view_store_" + "".join(c if c.isalnum() else "_" for c in args.dataset)[-30:])
    write_text(os.path.join(args.output, f"{slug}.md"), table)
    write_text(os.path.join(args.output, f"{slug}.json"), json.dumps(
        {"settings": vars(args), "epoch_times_s": times, "median_epoch_s": median, "store": store, "accuracy": rows,
         "teacher_accuracy": teacher_acc, "cpus": os.cpu_count(), "total_s": time.perf_counter() - started}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
