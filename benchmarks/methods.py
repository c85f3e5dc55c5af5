#!/usr/bin/env python
"""Distillation methods side by side on the offline MNIST default.

    python benchmarks/methods.py                 # seeds 0 1 2
    python benchmarks/methods.py --seeds 0 --methods kd dkd

Regime: the main job's default, 500 training labels with the other 3,499 training images
unlabeled (the transfer set); the scratch student learns from the 500 labels alone, so
the student from scratch stays well below the teacher and distillation has room to
matter (see README, "When does distillation help?"). Same teacher (12 epochs on the
labels), same student, same initial weights, optimizer, 20 epochs and steps per epoch for
every method; alpha = 0.5, T = 4. Term weights were set once by one rule, not tuned:
weight ~ 1 / (the term's value for an untrained student against this teacher), so each
weighted term starts near 1, like the cross-entropy (kd and dkd keep their T^2 and paper
scaling). Measured start values: fitnets 0.083, at 0.68, rkd distance 0.034, rkd angle
0.035, sp 0.002.
Prints a Markdown table of test accuracy (mean ± std over seeds) and writes it, with
raw numbers, to --out.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

# name -> (distill spec, extra teacher?)   layers: student conv2 (14x14x16) / teacher conv4
# (14x14x64) for feature terms; fc1 (32 / 128 units) for relational ones.
METHODS = {
    "kd": ("kd", False),
    "dkd": ("dkd", False),
    "kd+standardize": ("kd:standardize", False),
    "dist": ("dist", False),
    "fitnets": ("fitnets:10@conv2/conv4", False),
    "at": ("at:1@conv2/conv4", False),
    "rkd": ("rkd_distance:25@fc1/fc1,rkd_angle:50@fc1/fc1", False),
    "sp": ("sp:500@fc1/fc1", False),
    "kd+fitnets": ("kd:1,fitnets:10@conv2/conv4", False),
    "multi-teacher kd": ("kd", True),
}


def one_seed(seed, methods, args):
    from kdtf import Distiller, keras

    from label_scarce import LabelScarce

    setup = LabelScarce(seed, args.labels)
    teachers = [setup.supervised("teacher_cnn", args.teacher_epochs, seed_offset=0)]
    result = {"teacher": setup.accuracy(teachers[0])}
    result["scratch"] = setup.accuracy(setup.supervised("student_cnn", args.epochs, seed_offset=1))
    for name in methods:
        spec, multi = METHODS[name]
        if multi and len(teachers) == 1:
            teachers.append(setup.supervised("teacher_cnn", args.teacher_epochs, seed_offset=100))
            result["second teacher"] = setup.accuracy(teachers[1])
        student = setup.build("student_cnn", seed_offset=1)  # same initial student as scratch
        distiller = Distiller(student, teachers if multi else teachers[0], temperature=4.0, alpha=0.5, distill=spec)
        distiller.compile(keras.optimizers.Adam(1e-3))
        distiller.fit(setup.train_ds, epochs=args.epochs, verbose=0)
        result[name] = setup.accuracy(student)
        print(f"seed {seed} {name}: {result[name]:.4f}", file=sys.stderr, flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/methods")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    runs = [dict(one_seed(seed, args.methods, args), seed=seed) for seed in args.seeds]
    rows = ["teacher"] + (["second teacher"] if "second teacher" in runs[0] else []) + ["scratch"] + args.methods
    scratch = np.array([r["scratch"] for r in runs])
    lines = ["| method | distill terms | test accuracy (%) | minus scratch (points) |", "|---|---|---|---|"]
    for row in rows:
        values = np.array([r[row] for r in runs])
        spec = METHODS[row][0] if row in METHODS else "—"
        gain = f"{100 * np.mean(values - scratch):+.2f} ± {100 * np.std(values - scratch):.2f}" if row in METHODS else "—"
        lines.append(f"| {row} | `{spec}` | {100 * values.mean():.2f} ± {100 * values.std():.2f} | {gain} |")
    table = "\n".join(lines) + f"\n\nMean ± std over {len(runs)} seed(s) ({', '.join(map(str, args.seeds))}); {args.labels} labels + the rest unlabeled; 500 test images.\n"
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), table)
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "runs": runs}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
