#!/usr/bin/env python
"""When does distillation help? Teacher, scratch and distilled student against the number
of training labels, on the offline MNIST default.

    python benchmarks/labels_sweep.py                      # labels 100 250 500 1000 all, seeds 0 1 2
    python benchmarks/labels_sweep.py --labels 500 --seeds 0

For each seed and label count, with the settings of scripts/distill.py (teacher 12 epochs,
students 20 epochs, Adam 1e-3, T = 4, alpha = 0.5): the teacher and the scratch student
learn from the labelled examples only; the distilled student (same initial weights as
scratch) also sees every other training example without its label. Every model gets
the same number of optimizer steps per epoch. Prints a Markdown table of test accuracy
(mean +- std over seeds) and writes it, with the raw numbers, to --out.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402


def one_run(labels, seed, args):
    from kdtf import Distiller, keras

    from label_scarce import LabelScarce

    setup = LabelScarce(seed, None if labels == "all" else int(labels), args.batch_size)
    teacher = setup.supervised("teacher_cnn", args.teacher_epochs, seed_offset=0)
    scratch = setup.supervised("student_cnn", args.epochs, seed_offset=1)
    student = setup.build("student_cnn", seed_offset=1)  # same initial weights as scratch
    distiller = Distiller(student, teacher, temperature=args.temperature, alpha=args.alpha)
    distiller.compile(keras.optimizers.Adam(1e-3))
    distiller.fit(setup.train_ds, epochs=args.epochs, verbose=0)
    return {"teacher": setup.accuracy(teacher), "scratch": setup.accuracy(scratch), "distilled": setup.accuracy(student)}


def plot(raw, path, seeds):
    """Test accuracy against the number of labels (log scale), mean and std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kdtf.io import atomic_path

    total = 3999  # mnist5k training split
    xs = [total if k == "all" else int(k) for k in raw]
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for key, label, style in (("teacher", "teacher (468k params)", "s--"), ("distilled", "distilled student (+ unlabeled rest)", "o-"), ("scratch", "student from scratch", "^-")):
        mean = [100 * np.mean([r[key] for r in runs]) for runs in raw.values()]
        std = [100 * np.std([r[key] for r in runs]) for runs in raw.values()]
        ax.errorbar(xs, mean, yerr=std, fmt=style, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(k) for k in raw])
    ax.set_xlabel("training labels (log scale; the rest of the 3,999 training images unlabeled)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"mnist5k: where distillation pays (mean ± std over {seeds} seeds)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["100", "250", "500", "1000", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--out", default="benchmarks/results/labels_sweep")
    parser.add_argument("--from-raw", help="re-render table and plot from a raw.json instead of training")
    args = parser.parse_args(argv)

    from kdtf.io import write_text

    if args.from_raw:
        with open(args.from_raw) as f:
            stored = json.load(f)
        raw, args.seeds = stored["runs"], stored["args"]["seeds"]
    else:
        raw = {}
        for labels in args.labels:
            for seed in args.seeds:
                raw.setdefault(labels, []).append(dict(one_run(labels, seed, args), seed=seed))
                print(f"labels={labels} seed={seed}: {raw[labels][-1]}", file=sys.stderr, flush=True)
    n = len(args.seeds)
    lines = [
        "| training labels | teacher | scratch | distilled (+ unlabeled rest) | distilled - scratch |",
        "|---|---|---|---|---|",
    ]
    for labels, runs in raw.items():
        cell = lambda key, runs=runs: f"{100 * np.mean([r[key] for r in runs]):.2f} ± {100 * np.std([r[key] for r in runs]):.2f}"
        gain = [r["distilled"] - r["scratch"] for r in runs]
        lines.append(f"| {labels} | {cell('teacher')} | {cell('scratch')} | {cell('distilled')} | {100 * np.mean(gain):+.2f} ± {100 * np.std(gain):.2f} |")
    table = "\n".join(lines) + f"\n\nTest accuracy (%), mean ± std over {n} seed(s) ({', '.join(map(str, args.seeds))}); 500 test images.\n"
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), table)
    if not args.from_raw:
        write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "runs": raw}, indent=2) + "\n")
    plot(raw, os.path.join(args.out, "accuracy_vs_labels.png"), n)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
