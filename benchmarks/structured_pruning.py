#!/usr/bin/env python
"""Structured (filter) pruning of a distilled student, recovered by distillation and by
cross-entropy, measured as int8 TFLite files on LiteRT.

    python benchmarks/structured_pruning.py --models student_cnn   # seeds 0 1 2
    python benchmarks/structured_pruning.py --models mobilenet_v2 --epochs 8 --prune-epochs 3 --qat-epochs 1
    python benchmarks/structured_pruning.py --models student_cnn --seeds 0 --epochs 1 \\
        --teacher-epochs 1 --prune-epochs 1 --qat-epochs 1 --rounds 1 --fractions 0.5 --runs 20   # smoke run

Regime: the main job's default (see label_scarce.py): mnist5k, 500 training labels and
the other training images unlabeled; a teacher trained on the labels, a student distilled
from it (T = 4, alpha = 0.5). Models: the default ``student_cnn`` (28 px, teacher
``teacher_cnn``) and MobileNetV2 alpha 1.0 or 0.35 (``mobilenet_v2``, ``mobilenet_v2_035``,
random init, images resized to ``--mobilenet-size`` px; the teacher is ``teacher_cnn``
at the digits' own 28 px behind an area resize, so that it costs what it costs in the
default run instead of 10x that at 96 px).

For every fraction of filters removed (25/50/75 %) the distilled student is pruned in
``--rounds`` rounds (:class:`kdtf.compress.filter_rounds.FilterPrune`), each round
fine-tuned, then quantized (QAT fine-tuned the same way, or post-training int8) twice:
by the Distiller (every training image; the filter step's recovery loss, by default
logit KL at T = 1 without labels, ``--recovery terms`` for Hinton KD with ``--temperature``
and ``--alpha``) and by cross-entropy alone (the labelled images, repeated to the same
steps per epoch), so both get the same optimizer steps. The unpruned
row gets the same int8 treatment (QAT by distillation). Each row: parameters, MACs
counted from the .tflite, file size, LiteRT latency at 1 thread (median of ``--runs``
runs, default 300) and LiteRT test accuracy; mean ± std over seeds. Latencies are only
comparable within one quiet machine. Writes ``--out``/raw.json (after every seed; each
row also holds the float accuracy of its model before int8) and table.md;
``--save-files`` keeps every int8 file in ``--out``/files. Every training step builds its
datasets anew from the seed, so a row does not depend on which rows ran before it.

Seeds may run as separate processes and be joined afterwards, with every saved file
timed again side by side on a quiet machine:

    python benchmarks/structured_pruning.py --models mobilenet_v2_035 --seeds 0 --save-files --out OUT/seed0
    python benchmarks/structured_pruning.py --combine OUT/seed0 OUT/seed1 OUT/seed2 --retime --out OUT
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

MODELS = {"student_cnn": ("student_cnn", "teacher_cnn"), "mobilenet_v2_035": ("mobilenet_v2_035", "teacher_cnn"),
          "mobilenet_v2": ("mobilenet_v2", "teacher_cnn")}
RECOVERIES = ("distillation", "cross-entropy")


def recovery(setup, teacher, mode, args):
    """The fine-tuning context of a FilterPrune step: distillation from ``teacher`` on
    every training image, or cross-entropy on the labelled ones, for ``setup.steps`` steps
    per epoch either way (kdtf.FineTuner behind the recipe's step protocol). Its datasets
    are built anew from the seed, so every recovery sees the same data order whatever ran
    before it in the process."""
    from kdtf import DistillSpec, FineTuner
    from kdtf.compress import StepContext

    setup.refresh_datasets()
    data = setup.train_ds if mode == "distillation" else setup.labelled_ds
    tuner = FineTuner(teacher if mode == "distillation" else None, data, spec=DistillSpec(temperature=args.temperature, alpha=args.alpha),
                      optimizer=args.finetune_learning_rate, steps_per_epoch=setup.steps)
    return StepContext(tuner, args.prune_epochs, setup.steps, log=lambda line: print(f"  {mode}: {line}", file=sys.stderr, flush=True),
                       train_data=data)


def to_int8(model, context, setup, args):
    """int8 flatbuffer of ``model``: QAT fine-tuned by ``context``, or post-training."""
    from kdtf import compress, export

    if args.int8 == "ptq":
        return export.to_tflite(model, "int8", representative_data=setup.data.x_train[:256])
    float_layers = [layer.name for layer in model.layers if layer.name.startswith("preprocess_")]
    qat = compress.quantize(model, skip=float_layers)
    return export.to_tflite(context.fine_tune(qat, args.qat_epochs), "int8")


def measure(flatbuffer, model, setup):
    """Size, MACs and LiteRT accuracy of one int8 file (latency is timed later, side by side)."""
    from kdtf import compress, export
    from kdtf.export.macs import count_macs

    compress.verify_filters(flatbuffer, compress.count_filters(model))
    return dict(params=int(model.count_params()), macs=count_macs(flatbuffer)["total"], size_bytes=len(flatbuffer),
                accuracy=export.evaluate(flatbuffer, setup.data.x_test, setup.data.y_test)["accuracy"])


def one_seed(seed, track, args):
    """Train, prune, recover and quantize for one seed; ``(result, {key: int8 flatbuffer})``."""
    from kdtf import Distiller, keras
    from kdtf.compress import FilterPrune, clone_with_weights

    from label_scarce import LabelScarce

    student_name, teacher_name = MODELS[track]
    size = args.mobilenet_size if track.startswith("mobilenet") else None
    setup = LabelScarce(seed, args.labels, image_size=size)
    teacher = setup.supervised(teacher_name, args.teacher_epochs, seed_offset=0, native_size=28 if size else None)
    student = setup.build(student_name, seed_offset=1)
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5)
    distiller.compile(keras.optimizers.Adam(args.learning_rate))
    distiller.fit(setup.train_ds, epochs=args.epochs, verbose=0)
    result = {"seed": seed, "model": track, "float_accuracy": setup.accuracy(student)}
    keras.utils.set_random_seed(seed)
    files = {"unpruned": to_int8(clone_with_weights(student), recovery(setup, teacher, "distillation", args), setup, args)}
    result["unpruned"] = measure(files["unpruned"], student, setup)
    for fraction in args.fractions:
        for mode in RECOVERIES:
            keras.utils.set_random_seed(seed)
            context = recovery(setup, teacher, mode, args)
            step = FilterPrune(fraction, criterion=args.criterion, scope=args.scope, rounds=args.rounds,
                               self_distill=args.self_distill and mode == "distillation", recovery=args.recovery)
            pruned, record = step.run(clone_with_weights(student), context)
            key = f"{fraction:g} {mode}"
            files[key] = to_int8(clone_with_weights(pruned), context, setup, args)
            result[key] = dict(measure(files[key], pruned, setup), float_accuracy=setup.accuracy(pruned), filters=record["filters"],
                               removed=record["removed"])
            print(f"{track} seed {seed} {fraction:.0%} {mode}: accuracy {result[key]['accuracy']:.4f}", file=sys.stderr, flush=True)
    time_files(result, files, args.runs)
    return result, files


def time_files(result, files, runs):
    """LiteRT latency of one seed's files, timed in turns so that a busy spell of the
    machine hits them alike (``result[key]["latency_ms"]``, median)."""
    from kdtf import export

    for key, timing in export.latency_side_by_side(files, num_threads=1, runs=runs).items():
        result[key]["latency_ms"] = timing["median_ms"]


def save_files(result, files, out):
    """Write one seed's int8 files under ``out``/files and record their paths."""
    from kdtf.io import write_bytes

    for key, flatbuffer in files.items():
        path = os.path.join(out, "files", f"{result['model']}-seed{result['seed']}-{key.replace(' ', '-')}.tflite")
        write_bytes(path, flatbuffer)
        result[key]["file"] = os.path.relpath(path, out)


def combine(directories, retime, runs):
    """The runs of several ``--out`` folders, their saved files timed again if ``retime``."""
    merged, first_args = [], None
    for directory in directories:
        path = os.path.join(directory, "raw.json")
        if not os.path.isfile(path):
            raise SystemExit(f"--combine: {path} does not exist; pass folders written by this benchmark.")
        with open(path) as handle:
            raw = json.load(handle)
        first_args = first_args or raw["args"]
        for run in raw["runs"]:
            if retime:
                keys = [key for key, value in run.items() if isinstance(value, dict)]
                missing = [key for key in keys if "file" not in run[key]]
                if missing:
                    raise SystemExit(f"--retime: {path} has no saved file for {missing}; run it with --save-files.")
                time_files(run, {key: os.path.join(directory, run[key]["file"]) for key in keys}, runs)
            merged.append(run)
    return merged, first_args


def _stat(values, scale=1.0, digits=2):
    values = np.asarray(values, dtype=np.float64) * scale
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def _float_lines(runs, args):
    """The float accuracy of every row before int8, when the runs recorded it."""
    text = ""
    for track in [model for model in MODELS if any(r["model"] == model for r in runs)]:
        mine = [r for r in runs if r["model"] == track]
        rows = [r[f"{f:g} {mode}"] for r in mine for f in args.fractions for mode in RECOVERIES]
        if not all("float_accuracy" in row for row in rows):
            continue
        parts = [f"unpruned {_stat([r['float_accuracy'] for r in mine], 100)}"]
        for fraction in args.fractions:
            dist = [r[f"{fraction:g} distillation"]["float_accuracy"] for r in mine]
            ce = [r[f"{fraction:g} cross-entropy"]["float_accuracy"] for r in mine]
            drop = [d - r["float_accuracy"] for d, r in zip(dist, mine)]
            parts.append(f"{fraction:.0%} distillation {_stat(dist, 100)} (vs unpruned {_stat(drop, 100)} points), cross-entropy {_stat(ce, 100)}")
        text += f"\n\n{track}, float accuracy before int8 (%): " + "; ".join(parts) + "."
    return text


def table(runs, args):
    lines = [
        "| model | filters removed | params | MACs | size (KB) | latency 1 thread (ms) | speed-up | "
        "accuracy, distillation (%) | accuracy, cross-entropy (%) | distillation − CE (points) | distillation − unpruned (points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    seeds = sorted({r["seed"] for r in runs})
    for track in [model for model in MODELS if any(r["model"] == model for r in runs)]:
        mine = [r for r in runs if r["model"] == track]
        base = [r["unpruned"] for r in mine]
        lines.append(f"| {track} | 0% | {base[0]['params']:,} | {base[0]['macs']:,} | {base[0]['size_bytes'] / 1024:.1f} | "
                     f"{_stat([b['latency_ms'] for b in base], digits=3)} | 1.00x | {_stat([b['accuracy'] for b in base], 100)} | — | — | — |")
        for fraction in args.fractions:
            dist = [r[f"{fraction:g} distillation"] for r in mine]
            ce = [r[f"{fraction:g} cross-entropy"] for r in mine]
            speed = np.mean([b["latency_ms"] for b in base]) / np.mean([d["latency_ms"] for d in dist])
            gap = [d["accuracy"] - c["accuracy"] for d, c in zip(dist, ce)]
            drop = [d["accuracy"] - b["accuracy"] for d, b in zip(dist, base)]
            lines.append(
                f"| {track} | {fraction:.0%} | {dist[0]['params']:,} | {dist[0]['macs']:,} | {dist[0]['size_bytes'] / 1024:.1f} | "
                f"{_stat([d['latency_ms'] for d in dist], digits=3)} | {speed:.2f}x | {_stat([d['accuracy'] for d in dist], 100)} | "
                f"{_stat([c['accuracy'] for c in ce], 100)} | {_stat(gap, 100)} | {_stat(drop, 100)} |"
            )
    return "\n".join(lines) + _float_lines(runs, args) + (
        f"\n\nint8 TFLite ({'QAT' if args.int8 == 'qat' else 'post-training'}) on LiteRT; mean ± std over "
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); {args.labels} labels + the rest unlabeled; "
        f"filters removed in {args.rounds} round(s) by {args.criterion} ({args.scope}), {args.prune_epochs} fine-tuning "
        f"epochs per step, {args.qat_epochs} QAT epochs; distillation recovery "
        f"{'logit KL at T = 1 without labels (the default of filters:F)' if getattr(args, 'recovery', 'terms') == 'logits' else f'T = {args.temperature:g}, alpha = {args.alpha:g}'}"
        f"{' from the unpruned student' if args.self_distill else ''}; latency: median of {args.runs} batch-1 runs, 1 thread, every file of a seed timed in turns (10 rounds). "
        "Params, MACs and size of the distillation-recovered file.\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["student_cnn", "mobilenet_v2"], choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20, help="distillation epochs of the unpruned student")
    parser.add_argument("--prune-epochs", type=int, default=4, help="fine-tuning epochs of the filter step (split over rounds)")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune-learning-rate", type=float, default=3e-4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--criterion", default="l1", choices=["l1", "l2", "bn", "taylor"])
    parser.add_argument("--scope", default="uniform", choices=["uniform", "global"])
    parser.add_argument("--self-distill", action="store_true", help="distillation recovery from the unpruned student")
    parser.add_argument("--temperature", type=float, default=4.0, help="T of the distillation recovery (with --recovery terms)")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the labels' cross-entropy in the distillation recovery (with --recovery terms)")
    parser.add_argument("--recovery", default="logits", choices=["logits", "terms"],
                        help="distillation recovery of the filter step: logits (its default: logit KL at T = 1, no labels) "
                             "or terms (Hinton KD with --temperature and --alpha)")
    parser.add_argument("--int8", default="qat", choices=["qat", "ptq"])
    parser.add_argument("--mobilenet-size", type=int, default=96)
    parser.add_argument("--runs", type=int, default=300, help="LiteRT latency runs (median)")
    parser.add_argument("--out", default="benchmarks/results/structured_pruning")
    parser.add_argument("--save-files", action="store_true", help="keep every int8 file in OUT/files")
    parser.add_argument("--combine", nargs="+", metavar="DIR", help="join the raw.json of these --out folders (no training)")
    parser.add_argument("--retime", action="store_true", help="with --combine: time every saved file again, seed by seed")
    args = parser.parse_args(argv)

    from kdtf.compress.filters import check_fraction

    if args.retime and not args.combine:
        parser.error("--retime goes with --combine")
    if args.combine:
        runs, saved = combine(args.combine, args.retime, args.runs)
        args = argparse.Namespace(**dict(saved, runs=args.runs if args.retime else saved["runs"], out=args.out))
        write_results(runs, args)
        return 0
    for fraction in args.fractions:
        check_fraction(fraction, "--fractions")
    runs = []
    for track in args.models:
        for seed in args.seeds:
            result, files = one_seed(seed, track, args)
            if args.save_files:
                save_files(result, files, args.out)
            runs.append(result)
            write_results(runs, args)
    return 0


def write_results(runs, args):
    """raw.json and table.md in ``args.out`` (rewritten after every seed)."""
    from kdtf.io import write_text

    text = table(runs, args)
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), text)
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "runs": runs}, indent=2) + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
