"""The chain behind ``scripts/byol.py``: BYOL pretraining -> label-free distillation ->
compression -> int8 embedding model -> evaluation with few labels.

1. BYOL pretrains the teacher encoder on the training images (no labels).
2. BYOL pretrains the student encoder from scratch the same way (the baseline).
3. The student encoder, from the same initial weights, learns the teacher's embedding
   by label-free distillation (``Distiller(..., alpha=0, distill="embedding")``,
   teacher outputs cached: the inputs are not augmented).
4. It is pruned and quantization-aware trained while distilling, and exported to an
   int8 TFLite embedding model (float output), whose embeddings are computed on LiteRT.
5. Linear-probe and k-NN accuracy with ``labels_per_class`` labels per class, for the
   random encoder, the BYOL teacher, BYOL-from-scratch student, distilled student and
   compressed student (LiteRT).
"""

import dataclasses
import json
import os
import time

import numpy as np

from kdtf.cli import log, save_args
from kdtf.config import ByolConfig
from kdtf.data import load
from kdtf.io import atomic_path, check_writable_dir, write_text
from kdtf.report import run_report
from kdtf.runstate import RunState
from kdtf.ssl.probe import few_labels
from kdtf.ssl.stages import (
    ByolContext,
    EmbeddingDistillStage,
    EmbeddingStoreStage,
    EncoderCompressStage,
    EncoderExportStage,
    PretrainStage,
    RandomEncoderStage,
)
from kdtf.stages import StageRunner

__all__ = ["ByolConfig", "run", "byol_stages", "render_markdown"]


def byol_stages(ctx):
    """The stages of a BYOL run, in order; each reads the stages it needs."""
    config = ctx.config
    teacher = PretrainStage(ctx, "teacher", 0, config.pretrain_epochs, name="byol-teacher", label="byol teacher",  # as the random row
                            filename="teacher_encoder.keras", timing="byol_teacher_s")
    scratch = PretrainStage(ctx, "student", 1, config.student_pretrain_epochs, name="byol-student", label="byol student (scratch)",
                            filename="student_byol.keras", timing="byol_student_s")
    outputs = EmbeddingStoreStage(ctx, teacher)
    distilled = EmbeddingDistillStage(ctx, teacher, outputs)  # same initial weights as BYOL-from-scratch
    compressed = EncoderCompressStage(ctx, distilled, teacher, outputs)
    return [RandomEncoderStage(ctx), teacher, scratch, outputs, distilled, compressed, EncoderExportStage(ctx, compressed)]


def _prepare(config, resume):
    config.output = config.output or config.default_output()
    data = load(config.dataset, seed=config.seed, cache_dir=config.cache_dir)
    out = check_writable_dir(config.output, "--output")
    state = RunState(out, dataclasses.asdict(config), resume=resume)
    if resume:
        log(f"resuming {out}: completed stages {', '.join(state.data['stages']) or 'none'}")
    else:
        save_args(dataclasses.asdict(config), out)
    log(f"data {data.name}: {data.size('train')} unlabeled training images, {data.size('test')} test images, input {data.input_shape}")
    labelled = few_labels(data.y_train, config.labels_per_class, seed=config.seed)
    return ByolContext(config, data, out, state, labelled, log)


def run(config, resume=False):
    """Runs the chain and writes ``config.output``; returns the report dict. With
    ``resume``, stages recorded in the folder's manifest are loaded, not redone, and a
    stage in progress continues from its last completed epoch."""
    config.validate()
    started = time.time()
    ctx = _prepare(config, resume)
    runner = StageRunner(ctx.state, log)
    runner.run_all(byol_stages(ctx))
    runner.timings["total_s"] = time.time() - started
    data = {"name": ctx.data.name, "unlabeled_train": ctx.examples, "labelled_for_eval": int(len(ctx.labelled)),
            "test": ctx.data.size("test")}
    report = run_report(config, data, runner.records, runner.timings)
    _write(report, ctx.out)
    ctx.state.finish()
    log(f"done in {runner.timings['total_s']:.0f} s: {ctx.out}")
    return report


def _write(report, out):
    write_text(os.path.join(out, "report.json"), json.dumps(report, indent=2))
    write_text(os.path.join(out, "report.md"), render_markdown(report))
    _render_plot(report, os.path.join(out, "plot.png"))


def render_markdown(report):
    config = report["config"]
    lines = [
        f"# BYOL run on {report['data']['name']}",
        "",
        f"BYOL on {report['data']['unlabeled_train']} unlabeled training images; evaluation with "
        f"{config['labels_per_class']} labels per class ({report['data']['labelled_for_eval']} labels), "
        f"{report['data']['test']} test images; linear probe = logistic regression on frozen embeddings, "
        f"k-NN = {config['knn_k']} nearest by cosine.",
        "",
        "| encoder | linear probe | k-NN | params | file | size (KB) | measured on |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in report["encoders"]:
        size = f"{e['size_bytes'] / 1024:.1f}" if "size_bytes" in e else "-"
        lines.append(
            f"| {e['encoder']} | {100 * e['linear_probe']:.2f} % | {100 * e['knn']:.2f} % | {e['params']:,} | "
            f"{e.get('file', '-')} | {size} | {e['measured_on']} |"
        )
    a = report["tflite_keras_agreement"]
    t = {k: 0.0 for k in ("byol_teacher_s", "byol_student_s", "distill_s", "compress_s", "export_s")}
    t.update(report["timings"])  # a resumed run times only what it ran
    lines += [
        "",
        f"Compression (each step fine-tuned by embedding distillation): {report.get('compression', 'not recorded')}.",
        f"int8 TFLite embeddings vs the Keras compressed student: mean cosine {a['mean_cosine']:.4f} (min {a['min_cosine']:.4f}).",
        f"Wall time {t['total_s']:.0f} s on {report['machine']['cpus']} CPUs (BYOL teacher {t['byol_teacher_s']:.0f} s, "
        f"BYOL student {t['byol_student_s']:.0f} s, distill {t['distill_s']:.0f} s, compress {t['compress_s']:.0f} s, export {t['export_s']:.0f} s).",
        "",
    ]
    return "\n".join(lines)


def _render_plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e["encoder"] for e in report["encoders"]]
    positions = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(positions - 0.2, [100 * e["linear_probe"] for e in report["encoders"]], 0.4, label="linear probe")
    ax.bar(positions + 0.2, [100 * e["knn"] for e in report["encoders"]], 0.4, label="k-NN")
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Encoders on {report['data']['name']}, {report['config']['labels_per_class']} labels per class")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
