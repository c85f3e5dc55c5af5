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

from kdtf import compress, export
from kdtf._keras import keras, tf
from kdtf.cli import keras_verbosity, log, save_args
from kdtf.config import ByolConfig
from kdtf.data import load, outputs_and_labels
from kdtf.data.augment import byol_views
from kdtf.distiller import Distiller
from kdtf.io import atomic_path, check_writable_dir, gzip_size, write_text
from kdtf.models import ENCODERS
from kdtf.optim import add_kernel_regularization, build_optimizer
from kdtf.report import per_image, report_header
from kdtf.runstate import RunState, StepCheckpoint
from kdtf.saving import load_model, save_model
from kdtf.spec import DistillSpec
from kdtf.ssl.byol import BYOL
from kdtf.ssl.probe import embed, few_labels, probe
from kdtf.stages import Stage, StageRunner
from kdtf.training import FineTuner

__all__ = ["ByolConfig", "run", "render_markdown"]

SPEC = DistillSpec(alpha=0.0, terms="embedding")  # label-free: match the teacher's embedding


@dataclasses.dataclass
class _Run:
    """What the stages of one BYOL run share."""

    config: ByolConfig
    data: object
    out: str
    runner: StageRunner
    labelled: np.ndarray
    encoders: dict = dataclasses.field(default_factory=dict)
    losses: dict = dataclasses.field(default_factory=dict)
    recipe: object = None

    @property
    def examples(self):  # training images (their labels are not used until the evaluation)
        return self.data.size("train")

    @property
    def verbose(self):
        return keras_verbosity(self.config.verbose)


def _encoder(config, name, input_shape, seed_offset):
    keras.utils.set_random_seed(config.seed + seed_offset)
    encoder = ENCODERS[getattr(config, name)](input_shape, dim=config.dim, name=name)
    return add_kernel_regularization(encoder, *config.training_recipe().kernel_penalties)


def _optimizer(ctx, epochs, steps, learning_rate, warmup=True):
    """An optimizer of the run's training recipe for ``epochs`` of ``steps`` batches."""
    recipe = ctx.config.training_recipe()
    if not warmup:
        recipe = dataclasses.replace(recipe, warmup_epochs=0)
    return build_optimizer(recipe, steps, epochs, learning_rate=learning_rate)


def _evaluate(ctx, name, embed_fn, params, path=None, measured_on="keras", test=None):
    """Linear-probe and k-NN accuracy of an encoder with few labels; recorded under ``name``.
    ``test``: the test embeddings and labels when the caller has computed them already."""
    data, batch = ctx.data, ctx.config.batch_size  # the training batch size: no more activation memory than training
    train_emb, train_y = outputs_and_labels(embed_fn, data.dataset("train", batch, positions=ctx.labelled))
    test_emb, test_y = test if test is not None else outputs_and_labels(embed_fn, data.dataset("test", batch))
    result = probe(train_emb, train_y, test_emb, test_y, ctx.config.knn_k)
    record = {"encoder": name, **result, "params": int(params), "measured_on": measured_on}
    if path:
        record.update(file=os.path.basename(path), size_bytes=os.path.getsize(path), gzip_bytes=gzip_size(path))
    ctx.encoders[name] = record
    log(f"eval {name}: linear probe {result['linear_probe']:.4f}, k-NN {result['knn']:.4f}")
    return record


def _encoder_stage(ctx, name, label, describe, build, train, filename, timing):
    """A stage that trains one encoder, saves it and evaluates it with few labels."""
    def fit(callbacks):
        model = build()
        ctx.losses[name] = train(model, callbacks)
        return model

    def measure(model, paths):
        record = _evaluate(ctx, label, lambda v: embed(model, v), model.count_params(), paths[0])
        return {"eval": record, "losses": ctx.losses[name]}

    def load(record):
        ctx.encoders[label] = record["eval"]
        ctx.losses[name] = record["losses"]
        return load_model(os.path.join(ctx.out, filename))

    return Stage(name, describe, fit, lambda model: [save_model(model, os.path.join(ctx.out, filename))], measure, load, timing)


def _pretrain(ctx, encoder, epochs, callbacks):
    config = ctx.config
    byol = BYOL(encoder, base_tau=config.base_tau)
    byol.compile(_optimizer(ctx, epochs, max(1, ctx.examples // config.batch_size), config.learning_rate))  # full batches
    views = byol_views(ctx.data, config.batch_size, seed=config.seed, crop_area=(config.crop_area, 1.0), flip=config.flip)
    return byol.fit(views, epochs=epochs, verbose=ctx.verbose, callbacks=callbacks).history["loss"]


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
    return _Run(config, data, out, StageRunner(state, log), labelled)


def run(config, resume=False):
    """Runs the chain and writes ``config.output``; returns the report dict. With
    ``resume``, stages recorded in the folder's manifest are loaded, not redone, and a
    stage in progress continues from its last completed epoch."""
    config.validate()
    started = time.time()
    ctx = _prepare(config, resume)
    shape, runner = ctx.data.input_shape, ctx.runner
    random_encoder = _encoder(config, "teacher", shape, 0)
    _evaluate(ctx, "random (teacher arch.)", lambda v: embed(random_encoder, v), random_encoder.count_params())
    teacher = runner.run(_encoder_stage(  # same initial weights as the random row
        ctx, "byol-teacher", "byol teacher", f"BYOL pretraining of {config.teacher} for {config.pretrain_epochs} epochs",
        lambda: _encoder(config, "teacher", shape, 0), lambda m, cb: _pretrain(ctx, m, config.pretrain_epochs, cb),
        "teacher_encoder.keras", "byol_teacher_s"))
    runner.run(_encoder_stage(
        ctx, "byol-student", "byol student (scratch)",
        f"BYOL pretraining of {config.student} from scratch for {config.student_pretrain_epochs} epochs",
        lambda: _encoder(config, "student", shape, 1), lambda m, cb: _pretrain(ctx, m, config.student_pretrain_epochs, cb),
        "student_byol.keras", "byol_student_s"))
    cached = Distiller(_encoder(config, "student", shape, 1), teacher, SPEC).cached_dataset(
        ctx.data, batch_size=config.batch_size, seed=config.seed, labels=False, cache_dir=config.cache_dir)
    student = runner.run(_encoder_stage(  # same initial weights as BYOL-from-scratch
        ctx, "distilled", "distilled student",
        f"label-free embedding distillation for {config.distill_epochs} epochs (teacher outputs cached)",
        lambda: _encoder(config, "student", shape, 1), lambda m, cb: _distil(ctx, m, teacher, cached, cb),
        "student_encoder.keras", "distill_s"))
    compressed = runner.run(_compress_stage(ctx, student, teacher, cached))
    runner.run(_export_stage(ctx, compressed))
    runner.timings["total_s"] = time.time() - started
    report = _report(ctx)
    _write(report, ctx.out)
    runner.state.finish()
    log(f"done in {runner.timings['total_s']:.0f} s: {ctx.out}")
    return report


def _distil(ctx, student, teacher, cached, callbacks):
    distiller = Distiller(student, teacher, SPEC, name="distill")
    steps = int(np.ceil(ctx.examples / ctx.config.batch_size))
    distiller.compile(_optimizer(ctx, ctx.config.distill_epochs, steps, ctx.config.distill_learning_rate))
    return distiller.fit(cached, epochs=ctx.config.distill_epochs, verbose=ctx.verbose, callbacks=callbacks).history["loss"]


def _compress_stage(ctx, student, teacher, cached):
    config = ctx.config
    recipe = compress.Recipe.parse(config.compression_steps(), config.step_defaults())
    fine_tuner = FineTuner(teacher, cached, spec=SPEC, optimizer=lambda epochs, steps: _optimizer(ctx, epochs, steps, config.distill_learning_rate / 3, False),
                           steps_per_epoch=int(np.ceil(ctx.examples / config.batch_size)), verbose=ctx.verbose)
    results = compress.Results()

    def train(callbacks):
        model, results[:] = recipe.run(student, fine_tuner, log=log, checkpoint=StepCheckpoint(ctx.runner.state, ctx.out))
        return model

    ctx.recipe = recipe
    return Stage(
        "compress", f"{recipe.describe()}, each fine-tuned by embedding distillation", train,
        lambda model: [save_model(model, os.path.join(ctx.out, "student_compressed.keras"))],
        lambda model, paths: {"file": os.path.basename(paths[0]), "compression_steps": results.records(),
                              "compression": results.describe()},
        lambda record: load_model(os.path.join(ctx.out, record["file"])), timing="compress_s")


def _export_stage(ctx, compressed):
    config, data = ctx.config, ctx.data
    tflite_path = os.path.join(ctx.out, "student_encoder_int8.tflite")

    def train(callbacks):
        steps = ctx.runner.records["compress"]["compression_steps"]
        return export.export_for_android(compressed, tflite_path, splits=data, mode="int8", output_type=tf.float32,
                                         source_stages=["byol-teacher", "distilled"] + [step["step"] for step in steps],
                                         output="embedding")

    def measure(card, paths):
        verified = ctx.recipe.restore(ctx.runner.records["compress"]["compression_steps"]).verify(tflite_path)
        keras_emb, _ = outputs_and_labels(lambda x: embed(compressed, x), data.dataset("test", config.batch_size))
        lite_emb, lite_y = outputs_and_labels(lambda x: export.predict(tflite_path, x), data.dataset("test", config.batch_size))
        cosine = np.sum(keras_emb * lite_emb, -1) / (np.linalg.norm(keras_emb, axis=-1) * np.linalg.norm(lite_emb, axis=-1) + 1e-12)
        agreement = {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}
        timing = export.latency(tflite_path, num_threads=1, runs=config.latency_runs) if config.latency_runs else None
        steps = ctx.runner.records["compress"]["compression_steps"]
        record = _evaluate(ctx, "compressed student (int8 TFLite)", lambda v: export.predict(tflite_path, v),
                           steps[-1]["params"], tflite_path, "litert", test=(lite_emb, lite_y))
        record.update(sparsity=steps[-1].get("sparsity"), latency_ms=timing["median_ms"] if timing else None, keras_agreement=agreement)
        log(f"stage tflite-int8: LiteRT vs Keras embeddings: mean cosine {agreement['mean_cosine']:.4f} "
            f"(min {agreement['min_cosine']:.4f}); {per_image(timing)}; verified {verified}")
        return {"file": os.path.basename(tflite_path), "verified": verified, "agreement": agreement}

    return Stage("export", "int8 TFLite embedding model, evaluated on LiteRT", train, lambda card: [tflite_path], measure,
                 lambda record: None, timing="export_s")


def _report(ctx):
    records, data = ctx.runner.records, ctx.data
    return dict(
        report_header(ctx.config),
        data={"name": data.name, "unlabeled_train": ctx.examples, "labelled_for_eval": int(len(ctx.labelled)), "test": data.size("test")},
        encoders=list(ctx.encoders.values()),
        byol_loss=ctx.losses,
        compression_steps=records["compress"]["compression_steps"],
        compression=records["compress"]["compression"],
        verified_in_tflite=records["export"]["verified"],
        tflite_keras_agreement=records["export"]["agreement"],
        timings=ctx.runner.timings,
    )


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
