#!/usr/bin/env python
"""Does distillation pay with every label? Scratch vs KD, KD + logit standardization,
DIST and function matching, on mnist5k and on the cluttered 64 x 64 digits.

    python benchmarks/full_labels.py --dataset mnist5k            # seeds 0 1 2
    python benchmarks/full_labels.py --dataset cluttered --seeds 0 --epochs 10

Every label is kept. Per seed one teacher (trained on the labels, no augmentation, the
same for every row); then every student row starts from the same initial weights and
gets the same augmentation (``--augment``, mixup by default: function matching needs it
and the scratch student gets it too), the same epochs, the same optimizer (Adam 1e-3,
cosine to 0) and the same optimizer steps per epoch. The distilled rows run the teacher
on every augmented batch (consistent views). Rows:

* ``scratch``: cross-entropy on the (mixed) labels.
* ``kd``: ``alpha = 0.5``, ``kd`` at T = 4 (kdtf's default).
* ``kd+standardize``: the same on z-scored logits (Sun et al., CVPR 2024).
* ``dist``: ``alpha = 0.5``, ``dist`` (beta = gamma = 1) at T = 4 (Huang et al., 2022).
* ``function matching``: ``alpha = 0``, ``kd`` at T = 1 (Beyer et al., 2022), same
  epochs as scratch (not the paper's long schedule: the point here is equal cost).

Models: on mnist5k the zoo's ``teacher_cnn`` and ``student_cnn`` (28 px). On
``cluttered`` the teacher is ``capable_teacher`` below (a BatchNormalization CNN with
global max pooling, so it finds a digit anywhere, run at 32 px behind an area resize to
keep it cheap) and the student is the zoo's ``student_cnn`` at 64 px (flatten, no
BatchNormalization: translation has to be learned position by position).

Writes ``table.md`` and ``raw.json`` under ``--out/<dataset>`` after every seed (a
stopped run keeps the seeds it finished) and prints the table.
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

ROWS = {  # name -> (temperature, alpha, terms); None: scratch
    "scratch": None,
    "kd": (4.0, 0.5, "kd"),
    "kd+standardize": (4.0, 0.5, "kd:standardize"),
    "dist": (4.0, 0.5, "dist"),
    "function matching": (1.0, 0.0, "kd"),
}


def capable_teacher(input_shape, num_classes, size=32):
    """conv-BN-ReLU 32, 32, pool, 64, 64, pool, 128, global max pooling, Dense: the max
    over positions makes it translation invariant; built at ``size`` px behind an area
    resize of the inputs."""
    from kdtf import keras

    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Resizing(size, size, interpolation="area")(inputs)
    for i, filters in enumerate((32, 32, "pool", 64, 64, "pool", 128)):
        if filters == "pool":
            x = layers.MaxPooling2D()(x)
            continue
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="capable_teacher")


def one_seed(seed, args):
    from kdtf import Distiller, keras
    from kdtf.data import load
    from kdtf.data.augment import augment_dataset
    from kdtf.models import build
    from kdtf.optim import TrainingSettings, build_optimizer

    data = load(args.dataset, seed=seed)
    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    classes = data.num_classes

    def stream(augment):
        ds = data.dataset("train", args.batch_size, shuffle=True, seed=seed).repeat()
        return augment_dataset(ds, augment, data.input_shape, classes, seed) if augment else ds

    def accuracy(model):
        return float(np.mean(model.predict(data.x_test, batch_size=256, verbose=0).argmax(-1) == data.y_test))

    recipe = TrainingSettings(lr_schedule="cosine")
    out, timing = {"seed": seed, "train": len(data.x_train), "test": len(data.x_test)}, {}
    started = time.time()
    keras.utils.set_random_seed(seed)
    teacher = capable_teacher(data.input_shape, classes) if args.dataset == "cluttered" else build("teacher_cnn", data.input_shape, classes)
    teacher.compile(build_optimizer(recipe, steps, args.teacher_epochs), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(stream(""), steps_per_epoch=steps, epochs=args.teacher_epochs, verbose=0)
    out["teacher"], timing["teacher"] = accuracy(teacher), time.time() - started
    print(f"seed {seed} teacher: {out['teacher']:.4f} ({timing['teacher']:.0f} s)", file=sys.stderr, flush=True)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)  # mixup makes one-hot rows
    for name in args.rows:
        started = time.time()
        keras.utils.set_random_seed(seed + 1)  # the same initial student for every row
        student = build("student_cnn", data.input_shape, classes)
        optimizer = build_optimizer(recipe, steps, args.epochs)
        if ROWS[name] is None:
            student.compile(optimizer, loss if args.augment else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            student.fit(stream(args.augment), steps_per_epoch=steps, epochs=args.epochs, verbose=0)
        else:
            temperature, alpha, terms = ROWS[name]
            distiller = Distiller(student, teacher, temperature=temperature, alpha=alpha, distill=terms)
            distiller.compile(optimizer)
            distiller.fit(stream(args.augment), steps_per_epoch=steps, epochs=args.epochs, verbose=0)
        out[name], timing[name] = accuracy(student), time.time() - started
        print(f"seed {seed} {name}: {out[name]:.4f} ({timing[name]:.0f} s)", file=sys.stderr, flush=True)
    out["seconds"] = timing
    return out


def table(runs, args):
    def cell(values):
        return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"

    scratch = np.array([r["scratch"] for r in runs]) if "scratch" in runs[0] else None
    teacher = np.array([r["teacher"] for r in runs])
    lines = ["| row | test accuracy (%) | minus scratch (points) | teacher - scratch gap closed | epochs | wall time per seed (s) |",
             "|---|---|---|---|---|---|",
             f"| teacher | {cell(teacher)} | — | — | {args.teacher_epochs} | {np.mean([r['seconds']['teacher'] for r in runs]):.0f} |"]
    for name in args.rows:
        values = np.array([r[name] for r in runs])
        gain = closed = "—"
        if scratch is not None and name != "scratch":
            gain = f"{100 * np.mean(values - scratch):+.2f} ± {100 * np.std(values - scratch):.2f}"
            gap = np.mean(teacher - scratch)
            closed = f"{100 * np.mean(values - scratch) / gap:.0f} %" if gap > 0 else "no gap"
        lines.append(f"| {name} | {cell(values)} | {gain} | {closed} | {args.epochs} | {np.mean([r['seconds'][name] for r in runs]):.0f} |")
    return "\n".join(lines) + (
        f"\n\n{args.dataset}, every label ({runs[0]['train']} training images), {runs[0]['test']} test images; mean ± std over "
        f"{len(runs)} seed(s) ({', '.join(str(r['seed']) for r in runs)}). Every student row: the same initial weights, "
        f"augmentation `{args.augment or 'none'}` (scratch too), {args.epochs} epochs of {runs[0]['train'] // args.batch_size + 1} "
        "steps, Adam 1e-3 cosine; the teacher runs on every augmented batch. Machine shared with other jobs: times are indicative.\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "cluttered"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="mixup")
    parser.add_argument("--out", default="benchmarks/results/full_labels")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    out = os.path.join(args.out, args.dataset)
    os.makedirs(out, exist_ok=True)
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(seed, args))
        text = table(runs, args)
        write_text(os.path.join(out, "table.md"), text)
        write_text(os.path.join(out, "raw.json"), json.dumps({"args": vars(args), "runs": runs}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
