#!/usr/bin/env python
"""Compression variants of a run's distilled student, each fine-tuned with and without
distillation, measured as int8 TFLite files on LiteRT.

    python benchmarks/compression.py saved_models/readme-default

Starts from the run's ``student.keras`` and ``teacher.keras`` with the run's data, labels
and seed. Every variant is fine-tuned for the same number of steps twice: by the
Distiller (all training images; cross-entropy where labelled) and by cross-entropy alone
(the labelled images, repeated to the same steps per epoch). Rows: float32 (no
fine-tuning), post-training int8, QAT, pruning 50/75/90 % + PQAT, 2:4 + PQAT, 16 clusters +
CQAT, low-rank at two ranks + QAT. Each row: TFLite size and gzip size of the int8 file
(float32 for the first row), parameters, and LiteRT test accuracy. Prints Markdown and
writes it to RUN_DIR/compression.md, raw numbers to RUN_DIR/compression.json.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

VARIANTS = [
    ("QAT", "qat"),
    ("prune 50 % + PQAT", "prune:0.5,qat"),
    ("prune 75 % + PQAT", "prune:0.75,qat"),
    ("prune 90 % + PQAT", "prune:0.9,qat"),
    ("2:4 + PQAT", "2:4,qat"),
    ("16 clusters + CQAT", "cluster:16,qat"),
    ("low-rank r=8 + QAT", "lowrank:8,qat"),
    ("low-rank r=4 + QAT", "lowrank:4,qat"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--only", nargs="*", help="variant recipes to run (default: all)")
    args = parser.parse_args(argv)

    from kdtf import export, keras
    from kdtf.data import keep_labels, labelled_dataset, load
    from kdtf.io import gzip_size, write_text
    from kdtf.pipeline import DistillConfig, recipe_for
    from kdtf.report import load_report
    from kdtf.saving import load_model

    report = load_report(args.run_dir)
    config = report["config"]
    run_config = DistillConfig(**config)
    data = load(config["dataset"], seed=config["seed"])
    if config.get("labels"):
        data.y_train = keep_labels(data.y_train, config["labels"], seed=config["seed"])
    steps = int(np.ceil(len(data.x_train) / config["batch_size"]))
    train_ds = data.dataset("train", config["batch_size"], shuffle=True, seed=config["seed"])
    labelled_ds, _ = labelled_dataset(data.x_train, data.y_train, config["batch_size"], steps, seed=config["seed"])
    val_ds = data.dataset("val", config["batch_size"])
    teacher = load_model(os.path.join(args.run_dir, "teacher.keras"))
    student = load_model(os.path.join(args.run_dir, "student.keras"))
    representative = [data.x_train[:256]]

    def measure(flatbuffer):
        accuracy = export.evaluate(flatbuffer, data.x_test, data.y_test)["accuracy"]
        return {"size_bytes": len(flatbuffer), "gzip_bytes": gzip_size(flatbuffer), "accuracy": accuracy}

    rows = [dict(name="float32 (no fine-tuning)", params=student.count_params(), **measure(export.to_tflite(student)))]
    rows.append(dict(name="int8 post-training (no fine-tuning)", params=student.count_params(),
                     **measure(export.to_tflite(student, "int8", representative_data=representative))))
    for name, text in VARIANTS:
        if args.only and text not in args.only:
            continue
        row = {"name": name, "recipe": text}
        for mode, teacher_or_none, ds in (("distilled", teacher, train_ds), ("cross-entropy", None, labelled_ds)):
            keras.utils.set_random_seed(config["seed"])
            recipe = recipe_for(run_config, text)
            model, results = recipe.run(
                student, teacher_or_none, ds, val_ds, learning_rate=config["finetune_learning_rate"],
                temperature=config["temperature"], alpha=config["alpha"], steps_per_epoch=steps,
            )
            flatbuffer = export.to_tflite(model, "int8", representative_data=representative)
            row["verified"] = results.verify(flatbuffer)
            row["params"] = results.params
            row[mode] = measure(flatbuffer)
            print(f"{name} ({mode}): {row[mode]['accuracy']:.4f}", file=sys.stderr, flush=True)
        rows.append(row)

    lines = [
        "| variant (int8 TFLite unless noted) | params | size (KB) | gzip (KB) | accuracy, distillation fine-tuning | accuracy, cross-entropy fine-tuning |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row.get("distilled", row)
        dist = f"{100 * row['distilled']['accuracy']:.2f} %" if "distilled" in row else f"{100 * row['accuracy']:.2f} % (no fine-tuning)"
        ce = f"{100 * row['cross-entropy']['accuracy']:.2f} %" if "cross-entropy" in row else "—"
        lines.append(f"| {row['name']} | {row['params']:,} | {size['size_bytes'] / 1024:.1f} | {size['gzip_bytes'] / 1024:.1f} | {dist} | {ce} |")
    labels = config.get("labels") or len(data.x_train)
    table = "\n".join(lines) + (
        f"\n\nLiteRT test accuracy on {len(data.x_test)} images, seed {config['seed']}, {labels} training labels; "
        f"fine-tuning {config['prune_epochs']} epochs per compression step and {config['qat_epochs']} for QAT, "
        f"{steps} steps per epoch in both columns. Size and gzip of the distillation-fine-tuned file.\n"
    )
    write_text(os.path.join(args.run_dir, "compression.md"), table)
    write_text(os.path.join(args.run_dir, "compression.json"), json.dumps(rows, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
