#!/usr/bin/env python
"""Domain adaptation while distilling: target accuracy of the distilled student with and
without an alignment term (MMD, CORAL), and of the teacher on the target.

    python benchmarks/domain_adaptation.py                        # clutter shift, seeds 0 1 2
    python benchmarks/domain_adaptation.py --shift invert --seeds 0

Data: the bundled MNIST digits (mnist5k, split and shuffled by ``seed``). The training
split is cut in two disjoint halves: the first half is the labelled *source*; the second
half, shifted (``clutter``: digits on uniform noise, ``invert``: 1 - x), is the unlabeled
*target* set. Target labels are used only for testing: every model is scored on the test
split as is (source) and shifted (target).

Per seed: a ``teacher_cnn`` trained on the source; then ``student_cnn`` students (same
initial weights) distilled with Hinton KD (T = 4, alpha = 0.5, Adam 1e-3), all seeing
the same number of optimizer steps per epoch:

* ``kd, target weight 0``: source and target rows in every batch, target rows with
  sample weight 0 (they reach no term): the control for the two below;
* ``kd + mmd`` / ``kd + coral``: the same batches; the alignment term (on the logits,
  weight ``--align-weight``) compares the student on the target rows with the teacher
  on the source rows;
* ``kd on target``: target rows get KD from the teacher (the target set used as a
  transfer set, what ``--target-set`` does from the command line);
* ``kd on target + mmd``: both (the command line with ``--distill kd,mmd``).

Prints a Markdown table (mean +- std over seeds) and writes it with the raw numbers to
``--out``.
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

VARIANTS = ("kd, target weight 0", "kd + mmd", "kd + coral", "kd on target", "kd on target + mmd")


def _shift(name, x, seed):
    from kdtf.data.target_set import clutter, invert

    return invert(x) if name == "invert" else clutter(x, seed=seed)


def one_seed(seed, args):
    from kdtf import Distiller, keras
    from kdtf._keras import tf
    from kdtf.data import load
    from kdtf.data.target_set import with_target
    from kdtf.models import build
    from kdtf.spec import TermSpec

    data = load("mnist5k", seed=seed)
    x, y = data.x_train, data.y_train
    half = len(x) // 2
    x_source, y_source = x[:half], y[:half]
    x_target = _shift(args.shift, x[half:], seed + 100)
    x_test, y_test = data.x_test, data.y_test
    x_test_target = _shift(args.shift, x_test, seed + 200)
    steps = int(np.ceil(len(x) / args.batch_size))

    def pipeline(*arrays):
        ds = tf.data.Dataset.from_tensor_slices(arrays).shuffle(len(arrays[0]), seed=seed, reshuffle_each_iteration=True)
        return ds.repeat().batch(args.batch_size)

    def scores(model):
        def acc(inputs):
            return float(np.mean(model.predict(inputs, batch_size=256, verbose=0).argmax(-1) == y_test))

        return {"source": acc(x_test), "target": acc(x_test_target)}

    started = time.time()
    keras.utils.set_random_seed(seed)
    teacher = build("teacher_cnn", data.input_shape, data.num_classes, name="teacher")
    teacher.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(pipeline(x_source, y_source), steps_per_epoch=steps, epochs=args.teacher_epochs, verbose=0)
    results = {"teacher": scores(teacher)}
    print(f"seed {seed} teacher {results['teacher']} ({time.time() - started:.0f} s)", flush=True)

    weighted = with_target(x_source, y_source, x_target, target_weight=0.0)
    plain = with_target(x_source, y_source, x_target)
    align = {"mmd": TermSpec("mmd", args.mmd_weight), "coral": TermSpec("coral", args.coral_weight)}
    setups = {
        "kd, target weight 0": (weighted, ["kd"]),
        "kd + mmd": (weighted, ["kd", align["mmd"]]),
        "kd + coral": (weighted, ["kd", align["coral"]]),
        "kd on target": (plain, ["kd"]),
        "kd on target + mmd": (plain, ["kd", align["mmd"]]),
    }
    for name in args.variants:
        arrays, terms = setups[name]
        started = time.time()
        keras.utils.set_random_seed(seed + 1)  # the same initial student every time
        student = build("student_cnn", data.input_shape, data.num_classes, name="student")
        distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5, distill=terms)
        distiller.compile(keras.optimizers.Adam(1e-3))
        distiller.fit(pipeline(*arrays), steps_per_epoch=steps, epochs=args.epochs, verbose=0)
        results[name] = scores(student)
        print(f"seed {seed} {name}: {results[name]} ({time.time() - started:.0f} s)", flush=True)
    return results


def table(raw):
    rows = ["| model | target accuracy (%) | source accuracy (%) |", "|---|---|---|"]
    for name in raw[0]:
        cells = []
        for domain in ("target", "source"):
            values = 100 * np.array([r[name][domain] for r in raw])
            cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shift", choices=("clutter", "invert"), default="clutter")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mmd-weight", type=float, default=10.0)
    parser.add_argument("--coral-weight", type=float, default=0.1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or os.path.join("benchmarks", "results", "domain_adaptation", args.shift)
    started = time.time()
    raw = [one_seed(seed, args) for seed in args.seeds]
    text = table(raw)
    settings = (f"shift {args.shift}, seeds {args.seeds}, teacher {args.teacher_epochs} epochs, students {args.epochs} epochs, "
                f"alignment on the logits, weights mmd {args.mmd_weight} / coral {args.coral_weight}, {time.time() - started:.0f} s on {os.cpu_count()} CPUs")
    print(text + "\n\n" + settings)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n\n" + settings + "\n")
    with open(os.path.join(out, "raw.json"), "w") as f:
        json.dump({"settings": vars(args), "seeds": raw}, f, indent=1)


if __name__ == "__main__":
    main()
