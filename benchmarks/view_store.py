#!/usr/bin/env python
"""Distillation with augmentation at the student's cost: the view store (issue 25).

    python benchmarks/view_store.py                 # timing, mnist5k, teacher_cnn -> student_cnn, flip,crop (~3 min)
    python benchmarks/view_store.py --seeds 3 --teacher-epochs 8 --epochs 12 --name view_store   # + accuracy
    python benchmarks/view_store.py --synthetic-folder 300 --image-size 160 --teacher mobilenet_v2 \
        --student mobilenet_v2_035 --teacher-epochs 0 --batch-size 32 --rounds 3 --skip-keras-cv   # MobileNetV2 pair

One process, one machine, the same replayable augmentation (:mod:`kdtf.data.views`)
for every configuration:

  (a) the student alone, ``fit`` with cross-entropy, a fresh view every epoch
  (a-kcv) the same with today's keras-cv augmentation (``Splits.dataset(augment=...)``)
  (b) the Distiller, teacher every step, a fresh view every epoch
  (c) the Distiller from the view store (K views, top-k), one stored view per epoch

Timing: after one warm-up epoch each, ``--rounds`` rounds in which every configuration
trains one epoch (interleaved, the order rotated each round, so load from other jobs
hits all alike). An epoch is timed from Keras's ``on_epoch_begin`` to ``on_epoch_end``
(what each epoch of a many-epoch ``fit`` costs; the once-per-``fit`` iterator start and
collapse check are left out), in wall seconds and in process CPU seconds (all threads:
the work done, less sensitive to other jobs on the machine). Each round gives a ratio
to (a); the median ratio and its range over the rounds are reported, with the load
average before and after. The store pass's seconds and bytes per example are measured
too. ``--synthetic-folder N`` writes N JPEGs (3 classes, ``--image-size`` px) to a
temporary folder and runs on it through the image cache; ``--teacher-epochs 0`` keeps
the teacher's random weights (timing only). Accuracy (``--seeds``): (b) and (c) distil
a fresh student for ``--epochs`` epochs with the same policy, labels and seed; test
accuracy of each. Writes ``benchmarks/results/view_store/<name>.{json,md}``.
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

    data = load(args.dataset, seed=0, image_size=args.image_size or None, cache_dir=args.cache)
    keras.utils.set_random_seed(0)
    teacher = build(args.teacher, data.input_shape, data.num_classes, name="teacher")
    teacher.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=0)
    steps = int(np.ceil(data.size("train") / args.batch_size))
    plain = view_batches(data, "train", args.batch_size, policy, seed=0).map(lambda x, y, p, v: (x, y))
    started = time.perf_counter()
    if args.teacher_epochs:
        teacher.fit(plain, steps_per_epoch=steps, epochs=args.teacher_epochs, verbose=0)
    teacher_s = time.perf_counter() - started
    teacher_acc = float(accuracy(teacher, data.dataset("test", 256)))
    print(f"teacher {args.teacher}: {args.teacher_epochs} epochs with {args.augment} in {teacher_s:.0f} s, "
          f"test accuracy {teacher_acc:.4f}", flush=True)
    labelled = data.y_train.copy()
    if args.labels and args.labels < data.size("train"):  # the accuracy runs' label share
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
    top_k = args.top_k if args.top_k in (None, "all") else int(args.top_k)
    return ViewStore.for_distiller(distiller, data, policy, views=args.views, top_k=top_k, cache_dir=cache,
                                   batch_size=args.batch_size).build()


def _epoch_timer():
    """A callback keeping each epoch's wall and process CPU seconds (``.wall``, ``.cpu``)."""
    from kdtf import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.wall = time.perf_counter() - self._start[0]
            self.cpu = time.process_time() - self._start[1]

    return EpochTimer()


def _timing(args, data, teacher, labelled, steps, build):
    from kdtf import keras
    from kdtf.data.views import ViewPolicy, view_batches

    policy = ViewPolicy(args.augment, data.input_shape, data.num_classes, seed=0)
    saved, data.y_train = data.y_train, labelled  # timing: every example labelled, as in distill_speed
    try:
        fresh = view_batches(data, "train", args.batch_size, policy, seed=0).map(lambda x, y, p, v: (x, y))
        student = _student(build, args, data, 0)
        student.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
        every = _distiller(args, _student(build, args, data, 0), teacher)
        stored = _distiller(args, _student(build, args, data, 0), teacher)
        cpu = time.process_time()
        store = _store(args, stored, data, 0, args.cache)
        pass_cpu = time.process_time() - cpu
        print(f"store pass: {store.pass_seconds:.1f} s ({pass_cpu:.1f} CPU s), {store.describe()['bytes_per_example']:.0f} B "
              "per example", flush=True)
        trainers = {"a": (student, fresh), "b": (every, fresh), "c": (stored, store.dataset(args.batch_size, seed=0))}
        if not args.skip_keras_cv:
            kcv_student = _student(build, args, data, 0)
            kcv_student.compile(keras.optimizers.Adam(args.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                ["accuracy"])
            trainers["a-kcv"] = (kcv_student, data.dataset("train", args.batch_size, shuffle=True, seed=0,
                                                           augment=args.augment, repeat=True))
        names = list(trainers)
        times = {name: {"wall": [], "cpu": [], "fit": []} for name in names}
        for round_ in range(args.rounds + 1):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # rotated each round
                model, ds = trainers[name]
                timer, start = _epoch_timer(), time.perf_counter()
                extra = {} if name.startswith("a") else {"collapse_guard": None}  # a once-per-fit check
                model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer], **extra)
                if round_:  # round 0 traces and warms up
                    times[name]["wall"].append(timer.wall)
                    times[name]["cpu"].append(timer.cpu)
                    times[name]["fit"].append(time.perf_counter() - start)
            if round_:
                print(f"round {round_}: " + ", ".join(f"{n} {times[n]['wall'][-1]:.2f} s" for n in names), flush=True)
        return times, dict(store.describe(), pass_cpu_s=pass_cpu)
    finally:
        data.y_train = saved


def _accuracy_runs(args, data, teacher, steps, build):
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
                store = _store(args, distiller, data, seed, args.cache)
                row["store_pass_s"] = time.perf_counter() - started
                ds = store.dataset(args.batch_size, seed=seed)
            started = time.perf_counter()
            distiller.fit(ds, steps_per_epoch=steps, epochs=args.epochs, verbose=0)
            row[f"{name}_train_s"] = time.perf_counter() - started
            row[name] = float(accuracy(distiller.student, data.dataset("test", 256)))
        print(f"seed {seed}: teacher every step {row['b']:.4f}, view store {row['c']:.4f}", flush=True)
        rows.append(row)
    return rows


def _ratios(times, name, kind):
    """Per-round ratios of ``name`` to (a): median, min, max."""
    r = np.asarray(times[name][kind]) / np.asarray(times["a"][kind])
    return float(np.median(r)), float(r.min()), float(r.max())


def _table(args, data, teacher_acc, times, store, rows, load):
    median = {name: {k: float(np.median(v)) for k, v in t.items()} for name, t in times.items()}
    what = {"a": "student alone, fit, same replayable views", "a-kcv": "student alone, keras-cv augmentation (today)",
            "b": "Distiller, teacher every step", "c": f"Distiller from the view store (K={args.views}, top-k {store['top_k']})"}
    dataset = (f"a synthetic folder of {args.synthetic_folder} JPEGs (3 classes)" if args.synthetic_folder else args.dataset)
    teacher = f"{args.teacher} ({'random weights' if not args.teacher_epochs else f'{args.teacher_epochs} epochs'})"
    lines = [
        f"`{' '.join(['python', 'benchmarks/view_store.py'] + sys.argv[1:])}`; {dataset} "
        f"({data.size('train')} train, input {data.input_shape}), {teacher} -> {args.student}, --augment {args.augment}, "
        f"batch {args.batch_size}, {os.cpu_count()} CPU cores, one process. Load average "
        f"{load[0]:.1f} before, {load[1]:.1f} after (1-minute; {os.cpu_count()} cores; the benchmark itself adds up to "
        f"about 2, more means other jobs shared the cores).",
        "",
        f"Epoch time over {args.rounds} interleaved rounds after a warm-up epoch (epoch = Keras's on_epoch_begin to "
        "on_epoch_end; CPU = process CPU seconds, all threads); ratios are per round, median [min-max]:",
        "",
        "| config | epoch wall (s) | x (a) wall | epoch CPU (s) | x (a) CPU |",
        "|---|---|---|---|---|",
    ]
    for name in times:
        wall, cpu = _ratios(times, name, "wall"), _ratios(times, name, "cpu")
        lines.append(f"| ({name}) {what[name]} | {median[name]['wall']:.3f} | {wall[0]:.2f} [{wall[1]:.2f}-{wall[2]:.2f}] | "
                     f"{median[name]['cpu']:.3f} | {cpu[0]:.2f} [{cpu[1]:.2f}-{cpu[2]:.2f}] |")
    wall, cpu = _ratios(times, "c", "wall"), _ratios(times, "c", "cpu")
    lines += [
        "",
        f"Target (c) <= 1.10 x (a): wall {wall[0]:.2f} (range {wall[1]:.2f}-{wall[2]:.2f}), CPU {cpu[0]:.2f} "
        f"(range {cpu[1]:.2f}-{cpu[2]:.2f}). Store pass: {store['pass_s']:.1f} s wall, {store['pass_cpu_s']:.1f} s CPU "
        f"for {data.size('train')} examples x {args.views} views; {store['bytes_per_example']:.0f} bytes per example "
        f"({store['bytes'] / 2**20:.2f} MiB on disk).",
        f"End to end for {args.epochs} epochs (median epochs): (b) {args.epochs * median['b']['wall']:.1f} s wall / "
        f"{args.epochs * median['b']['cpu']:.1f} s CPU vs store pass + (c) "
        f"{store['pass_s'] + args.epochs * median['c']['wall']:.1f} s wall / "
        f"{store['pass_cpu_s'] + args.epochs * median['c']['cpu']:.1f} s CPU; in CPU seconds the store pays for itself "
        f"after {store['pass_cpu_s'] / max(median['b']['cpu'] - median['c']['cpu'], 1e-9):.1f} epochs. "
        f"Whole fit calls of one epoch (with the iterator start; (b)/(c) without the collapse check), median: "
        + ", ".join(f"({n}) {median[n]['fit']:.2f} s" for n in times) + ".",
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


def _synthetic_folder(root, count, size, seed=0):
    """``count`` JPEGs of ``size`` px in 3 class folders: a noisy background with a bright
    disc, square or bar (the class) at a random place and scale."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for k in range(count):
        label = k % 3
        folder = os.path.join(root, ("disc", "square", "bar")[label])
        os.makedirs(folder, exist_ok=True)
        pixels = (rng.random((size, size, 3)) * 90 + rng.integers(0, 90, 3)).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        r = int(size * rng.uniform(0.15, 0.3))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        box = [cx - r, cy - r, cx + r, cy + r]
        if label == 0:
            draw.ellipse(box, fill=colour)
        elif label == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.rectangle([cx - r, cy - r // 4, cx + r, cy + r // 4], fill=colour)
        image.save(os.path.join(folder, f"{k}.jpg"), quality=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--image-size", type=int, default=0)
    parser.add_argument("--cache-dir", default="", help="image cache (needed for folders) and view stores")
    parser.add_argument("--teacher", default="teacher_cnn")
    parser.add_argument("--student", default="student_cnn")
    parser.add_argument("--augment", default="flip,crop")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--top-k", help="probabilities kept per view (default 5, or all of fewer classes)")
    parser.add_argument("--teacher-epochs", type=int, default=1, help="0: the teacher's random weights (timing only)")
    parser.add_argument("--epochs", type=int, default=12, help="distillation epochs of the accuracy runs (and the end-to-end line)")
    parser.add_argument("--labels", type=int, default=500, help="labels kept for the accuracy runs (0: all)")
    parser.add_argument("--seeds", type=int, default=0, help="accuracy runs (0: timing only)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--skip-keras-cv", action="store_true")
    parser.add_argument("--synthetic-folder", type=int, default=0, metavar="N",
                        help="write N synthetic JPEGs (--image-size px, 3 classes) to a temporary folder and use it")
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "view_store"))
    parser.add_argument("--name", help="file name of the results (default: view_store_timing, or view_store_<folder>)")
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="view-store-bench-")
    args.cache = args.cache_dir or os.path.join(scratch, "cache")
    started, load = time.perf_counter(), [os.getloadavg()[0]]
    try:
        if args.synthetic_folder:
            if not args.image_size:
                parser.error("--synthetic-folder needs --image-size")
            _synthetic_folder(os.path.join(scratch, "folder"), args.synthetic_folder, args.image_size)
            args.dataset = "folder:" + os.path.join(scratch, "folder")
        data, teacher, teacher_acc, labelled, steps, build = _setup(args)
        times, store = _timing(args, data, teacher, labelled, steps, build)
        rows = _accuracy_runs(args, data, teacher, steps, build) if args.seeds else []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load.append(os.getloadavg()[0])
    table, median = _table(args, data, teacher_acc, times, store, rows, load)
    print(table)
    from kdtf.io import write_text

    os.makedirs(args.output, exist_ok=True)
    default = "view_store_timing" if args.dataset == "mnist5k" else "view_store_" + (
        f"folder{args.image_size}_{args.teacher}" if args.synthetic_folder else
        "".join(c if c.isalnum() else "_" for c in args.dataset)[-30:])
    slug = args.name or default
    write_text(os.path.join(args.output, f"{slug}.md"), table)
    settings = {k: v for k, v in vars(args).items() if k != "cache"}
    write_text(os.path.join(args.output, f"{slug}.json"), json.dumps(
        {"settings": settings, "epoch_times_s": times, "median_epoch_s": median, "store": store, "accuracy": rows,
         "teacher_accuracy": teacher_acc, "cpus": os.cpu_count(), "load_average": load,
         "total_s": time.perf_counter() - started}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
