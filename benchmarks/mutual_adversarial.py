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
    alpha = 0.5, plus lambda * L_adv, at each --adversarial-weights) against the
    :class:`kdtf.Distiller` with KD alone, same student initial weights, same teacher and
    data order; also how often the two students agree on the test images.

Both at two label counts: every training label, and 500 labels kept (stratified) with
the other training images unlabeled; the models trained alone and the teacher see the
labelled images only, the distilled students (and the "+ unlabeled rest" peers) also
the unlabeled rest. Every model gets the same optimizer
steps per epoch (Adam 1e-3, batch 64). Teacher and distillers read cached teacher
outputs. Writes mutual.json and/or adversarial.json (--parts) and table.md (from the
parts' files present) to --out.
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
    """KD alone and KD + adversarial term at each lambda: same student initial weights,
    same data order, cached teacher outputs. Also how often each KD + adv student predicts
    the KD student's class on the test images, and how far its logits are."""
    from kdtf import AdversarialDistiller, Distiller, keras

    row = {"teacher": setup.accuracy(teacher)}
    logits = {}
    for weight in [None] + list(args.adversarial_weights):
        key = "kd" if weight is None else f"kd+adv{weight:g}"
        student = setup.build("student_cnn", seed_offset=1)
        if weight is None:
            distiller = Distiller(student, teacher, temperature=args.temperature, alpha=args.alpha)
        else:
            distiller = AdversarialDistiller(student, teacher, temperature=args.temperature, alpha=args.alpha,
                                             adversarial_weight=weight)
        distiller.compile(keras.optimizers.Adam(1e-3))
        data = distiller.cached_dataset(setup.data.x_train, setup.data.y_train, batch_size=args.batch_size, seed=setup.seed)
        history = distiller.fit(data, epochs=args.epochs, verbose=0)
        row[key] = setup.accuracy(student)
        logits[key] = student.predict(setup.data.x_test, batch_size=256, verbose=0)
        if weight is not None:
            row[f"{key}_d_accuracy"] = float(history.history["discriminator_accuracy"][-1])
            row[f"{key}_agreement"] = float(np.mean(logits[key].argmax(-1) == logits["kd"].argmax(-1)))
            row[f"{key}_logit_diff"] = float(np.mean(np.abs(logits[key] - logits["kd"])))
    return row


def one_run(labels, seed, args):
    from label_scarce import LabelScarce

    setup = LabelScarce(seed, None if labels == "all" else int(labels), args.batch_size)
    started, row = time.time(), {}
    if "mutual" in args.parts:
        row.update(mutual_rows(setup, args, unlabeled=labels != "all"))
    if "adversarial" in args.parts:
        setup.refresh_datasets()
        teacher = setup.supervised("teacher_cnn", args.teacher_epochs, seed_offset=0)
        row.update(adversarial_rows(setup, teacher, args))
    row["seconds"] = time.time() - started
    return row


def _cell(values):
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def _paired(values):
    return f"{100 * np.mean(values):+.2f} ± {100 * np.std(values):.2f}"


def mutual_table(stored):
    raw, args = stored["runs"], stored["args"]
    lines = [
        "**(a) Deep Mutual Learning**, two `student_cnn` (26.7k parameters each), T = 1, peer weight 1: "
        "test accuracy (%), mean ± std over seeds and the two networks",
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
            cells += [_cell([r[f"{key}{k}"] for r in runs for k in (0, 1)]),
                      _paired([r[f"{key}{k}"] - r[f"alone{k}"] for r in runs for k in (0, 1)])]
        lines.append(f"| {labels} | " + " | ".join(cells) + " |")
    return lines + ["", _footer(args, teacher=False)]


def adversarial_table(stored):
    raw, args = stored["runs"], stored["args"]
    lines = [
        f"**(b) Adversarial term** added to Hinton KD (T = {args['temperature']:g}, alpha = {args['alpha']:g}): "
        "test accuracy (%), mean ± std over seeds; agreement: test images where the KD + adv student predicts "
        "the KD student's class; D accuracy: the discriminator's, last epoch",
        "",
        "| training labels | teacher | KD | lambda | KD + adversarial | (KD + adv) - KD (paired) | agreement with KD | "
        "mean abs logit difference | D accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for labels, runs in raw.items():
        for weight in args["adversarial_weights"]:
            key = f"kd+adv{weight:g}"
            diff = np.mean([r[f"{key}_logit_diff"] for r in runs])
            lines.append(
                f"| {labels} | {_cell([r['teacher'] for r in runs])} | {_cell([r['kd'] for r in runs])} | {weight:g} | "
                f"{_cell([r[key] for r in runs])} | {_paired([r[key] - r['kd'] for r in runs])} | "
                f"{_cell([r[f'{key}_agreement'] for r in runs])} | {diff:.3f} | {_cell([r[f'{key}_d_accuracy'] for r in runs])} |"
            )
    return lines + ["", _footer(args, teacher=True)]


def _footer(args, teacher):
    seeds = args["seeds"]
    text = (f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); students {args['epochs']} epochs"
            + (f", teacher {args['teacher_epochs']} epochs" if teacher else "")
            + f", Adam 1e-3, batch {args['batch_size']}, 63 steps per epoch for every model; mnist5k (3,999 training, "
            "500 test images).")
    return text


def render(out):
    """table.md from the parts' results files in ``out`` (mutual.json, adversarial.json)."""
    lines = []
    for part, render_part in (("mutual", mutual_table), ("adversarial", adversarial_table)):
        path = os.path.join(out, f"{part}.json")
        if os.path.isfile(path):
            with open(path) as f:
                stored = json.load(f)
            parts = " and ".join(stored["args"]["parts"])
            lines += render_part(stored) + [
                f"From `{part}.json`, written by a {stored['seconds'] / 60:.0f}-minute run of the script ({parts}; "
                "machine shared with other jobs).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["mutual", "adversarial"], choices=["mutual", "adversarial"])
    parser.add_argument("--labels", nargs="+", default=["all", "500"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--adversarial-weights", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument("--out", default="benchmarks/results/mutual_adversarial")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    raw, started = {}, time.time()
    for labels in args.labels:
        for seed in args.seeds:
            raw.setdefault(labels, []).append(dict(one_run(labels, seed, args), seed=seed))
            print(f"labels={labels} seed={seed}: {raw[labels][-1]}", file=sys.stderr, flush=True)
    os.makedirs(args.out, exist_ok=True)
    seconds = time.time() - started
    for part in args.parts:
        write_text(os.path.join(args.out, f"{part}.json"),
                   json.dumps({"args": vars(args), "seconds": seconds, "runs": raw}, indent=2) + "\n")
    text = render(args.out)
    write_text(os.path.join(args.out, "table.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
