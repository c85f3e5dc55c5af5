#!/usr/bin/env python
"""Mutual learning and adversarial distillation on the offline MNIST default (mnist5k).

    python benchmarks/mutual_adversarial.py                   # seeds 0 1 2, all labels and 500
    python benchmarks/mutual_adversarial.py --seeds 0 --epochs 2 --out /tmp/try

(a) Deep Mutual Learning: two ``student_cnn`` trained together by
    :class:`kdtf.MutualDistiller` (T = 1, peer weight 1, the paper's) on the same labelled
    batches as the same two networks (same initial weights) each trained alone by
    cross-entropy; with 500 labels also mutual learning over every training image, the
    unlabeled ones through the peer term alone.
(b) MEAL V2-style adversarial term: :class:`kdtf.AdversarialDistiller` (Hinton KD, T = 4,
    alpha = 0.5, plus lambda * L_adv) against the :class:`kdtf.Distiller` with KD alone,
    same student initial weights, same teacher.

Both at two label counts: every training label, and 500 labels kept (stratified) with
the other training images unlabeled; the models trained alone and the teacher see the
labelled images only, the distilled students (and the "+ unlabeled rest" peers) also
the unlabeled rest. Every model gets the same optimizer
steps per epoch (Adam 1e-3, batch 64). Teacher and distillers read cached teacher
outputs. Writes table.md and raw.json to --out.
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


def mutual_rows(setup, args, unlabeled):
    """Two student_cnn alone (seed offsets 1 and 2) and the same two (same initial weights)
    trained mutually on the same labelled batches; with ``unlabeled`` also on every
    training image (the unlabeled ones through the peer term)."""
    from kdtf import MutualDistiller, keras

    row = {}
    for k in (0, 1):
        setup.refresh_datasets()
        row[f"alone{k}"] = setup.accuracy(setup.supervised("student_cnn", args.epochs, seed_offset=1 + k))
    for key, use_all in (("mutual", False), ("mutual_unlabeled", True)):
        if use_all and not unlabeled:
            continue
        peers = [setup.build("student_cnn", seed_offset=1 + k) for k in (0, 1)]
        setup.refresh_datasets()
        mutual = MutualDistiller(peers, temperature=1.0, peer_weight=1.0)
        mutual.compile(keras.optimizers.Adam(1e-3))
        if use_all:
            mutual.fit(setup.train_ds, epochs=args.epochs, verbose=0)
        else:
            mutual.fit(setup.labelled_ds, steps_per_epoch=setup.steps, epochs=args.epochs, verbose=0)
        for k in (0, 1):
            row[f"{key}{k}"] = setup.accuracy(peers[k])
    return row


def adversarial_rows(setup, teacher, args):
    """KD alone and KD + adversarial term, same student initial weights, cached teacher outputs."""
    from kdtf import AdversarialDistiller, Distiller, keras

    row = {"teacher": setup.accuracy(teacher)}
    for key in ("kd", "kd+adv"):
        student = setup.build("student_cnn", seed_offset=1)
        if key == "kd":
            distiller = Distiller(student, teacher, temperature=args.temperature, alpha=args.alpha)
        else:
            distiller = AdversarialDistiller(student, teacher, temperature=args.temperature, alpha=args.alpha,
                                             adversarial_weight=args.adversarial_weight)
        distiller.compile(keras.optimizers.Adam(1e-3))
        data = distiller.cached_dataset(setup.data.x_train, setup.data.y_train, batch_size=args.batch_size, seed=setup.seed)
        history = distiller.fit(data, epochs=args.epochs, verbose=0)
        row[key] = setup.accuracy(student)
        if key == "kd+adv":
            row["discriminator_accuracy_last_epoch"] = float(history.history["discriminator_accuracy"][-1])
    return row


def one_run(labels, seed, args):
    from label_scarce import LabelScarce

    setup = LabelScarce(seed, None if labels == "all" else int(labels), args.batch_size)
    started = time.time()
    row = mutual_rows(setup, args, unlabeled=labels != "all")
    setup.refresh_datasets()
    teacher = setup.supervised("teacher_cnn", args.teacher_epochs, seed_offset=0)
    row.update(adversarial_rows(setup, teacher, args))
    row["seconds"] = time.time() - started
    return row


def _cell(values):
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def table(raw, seeds, args):
    lines = [
        "**(a) Deep Mutual Learning**, two `student_cnn` (26.7k parameters each): test accuracy (%), "
        "mean ± std over seeds and over the two networks",
        "",
        "| training labels | each alone (CE) | mutual, same labelled batches | mutual - alone (paired) "
        "| mutual + unlabeled rest | (+ unlabeled) - alone (paired) |",
        "|---|---|---|---|---|---|",
    ]
    for labels, runs in raw.items():
        cells = [_cell([r[f"alone{k}"] for r in runs for k in (0, 1)])]
        for key in ("mutual", "mutual_unlabeled"):
            if f"{key}0" not in runs[0]:
                cells += ["—", "—"]
                continue
            gain = [r[f"{key}{k}"] - r[f"alone{k}"] for r in runs for k in (0, 1)]
            cells += [_cell([r[f"{key}{k}"] for r in runs for k in (0, 1)]), f"{100 * np.mean(gain):+.2f} ± {100 * np.std(gain):.2f}"]
        lines.append(f"| {labels} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**(b) Adversarial term** (lambda = {args.adversarial_weight:g}) added to Hinton KD "
        f"(T = {args.temperature:g}, alpha = {args.alpha:g}): test accuracy (%), mean ± std over seeds",
        "",
        "| training labels | teacher | KD | KD + adversarial | (KD + adv) - KD (paired) | D accuracy, last epoch |",
        "|---|---|---|---|---|---|",
    ]
    for labels, runs in raw.items():
        gain = [r["kd+adv"] - r["kd"] for r in runs]
        d_acc = [r["discriminator_accuracy_last_epoch"] for r in runs]
        lines.append(
            f"| {labels} | {_cell([r['teacher'] for r in runs])} | {_cell([r['kd'] for r in runs])} | "
            f"{_cell([r['kd+adv'] for r in runs])} | {100 * np.mean(gain):+.2f} ± {100 * np.std(gain):.2f} | "
            f"{_cell(d_acc)} |"
        )
    lines += [
        "",
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); students {args.epochs} epochs, teacher "
        f"{args.teacher_epochs} epochs, Adam 1e-3, batch {args.batch_size}, 63 steps per epoch for every model; "
        "mnist5k (3,999 training, 500 test images).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["all", "500"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--adversarial-weight", type=float, default=1.0)
    parser.add_argument("--out", default="benchmarks/results/mutual_adversarial")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    raw, started = {}, time.time()
    for labels in args.labels:
        for seed in args.seeds:
            raw.setdefault(labels, []).append(dict(one_run(labels, seed, args), seed=seed))
            print(f"labels={labels} seed={seed}: {raw[labels][-1]}", file=sys.stderr, flush=True)
    text = table(raw, args.seeds, args) + f"Whole benchmark: {time.time() - started:.0f} s.\n"
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), text)
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "runs": raw}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
