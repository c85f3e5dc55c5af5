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
from kdtf.cli import keras_verbosity, log
from kdtf.data import load
from kdtf.data.augment import byol_views
from kdtf.distiller import Distiller
from kdtf.io import atomic_path, check_writable_dir, gzip_size, write_text
from kdtf.models import ENCODERS
from kdtf.models.io import load_model, save_model
from kdtf.runstate import RunState, StepCheckpoint
from kdtf.ssl.byol import BYOL
from kdtf.ssl.probe import embed, few_labels, probe

__all__ = ["ByolConfig", "run", "render_markdown"]


@dataclasses.dataclass
class ByolConfig:
    """Settings of ``scripts/byol.py``; every field is a flag."""

    dataset: str = "mnist5k"
    seed: int = 0
    teacher: str = "teacher_encoder"
    student: str = "student_encoder"
    dim: int = 128
    pretrain_epochs: int = 30
    student_pretrain_epochs: int = 30
    distill_epochs: int = 20
    prune_epochs: int = 3
    qat_epochs: int = 2
    sparsity: float = 0.5
    qat: bool = True
    batch_size: int = 128
    learning_rate: float = 2e-3
    distill_learning_rate: float = 1e-3
    base_tau: float = 0.99
    crop_area: float = 0.5
    flip: bool = False
    labels_per_class: int = 20
    knn_k: int = 5
    latency_runs: int = 100
    output: str = ""
    verbose: int = -1

    def validate(self):
        for name in ("pretrain_epochs", "student_pretrain_epochs", "distill_epochs", "prune_epochs", "qat_epochs",
                     "batch_size", "dim", "labels_per_class", "knn_k", "latency_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
        for name in ("learning_rate", "distill_learning_rate"):
            if not isinstance(getattr(self, name), (int, float)) or not getattr(self, name) > 0:
                raise ValueError(f"Expected {name} > 0. Received: {name}={getattr(self, name)!r}")
        if not isinstance(self.base_tau, (int, float)) or not 0 <= self.base_tau <= 1:
            raise ValueError(f"Expected base_tau in [0, 1]. Received: base_tau={self.base_tau!r}")
        if not isinstance(self.crop_area, (int, float)) or not 0 < self.crop_area <= 1:
            raise ValueError(f"Expected crop_area in (0, 1]. Received: crop_area={self.crop_area!r}")
        if not isinstance(self.sparsity, (int, float)) or not 0 <= self.sparsity < 1:
            raise ValueError(f"Expected sparsity in [0, 1). Received: sparsity={self.sparsity!r}")
        for name in ("teacher", "student"):
            if getattr(self, name) not in ENCODERS:
                raise ValueError(f"Unknown {name} encoder {getattr(self, name)!r} (--{name}). Known: {', '.join(sorted(ENCODERS))}")
        from kdtf import data

        try:
            data.parse_spec(self.dataset)
        except ValueError:
            raise ValueError(f"Unknown data set spec {self.dataset!r} (--dataset). Known: {', '.join(data.specs())}") from None
        return self


def _encoder(config, name, input_shape, seed_offset):
    keras.utils.set_random_seed(config.seed + seed_offset)
    return ENCODERS[getattr(config, name)](input_shape, dim=config.dim, name=name)


def _pretrain(encoder, config, x, epochs, callbacks=None):
    byol = BYOL(encoder, base_tau=config.base_tau)
    byol.compile(keras.optimizers.Adam(config.learning_rate))
    views = byol_views(x, config.batch_size, seed=config.seed, crop_area=(config.crop_area, 1.0), flip=config.flip)
    history = byol.fit(views, epochs=epochs, verbose=keras_verbosity(config.verbose), callbacks=callbacks)
    return history.history["loss"]


def run(config, resume=False):
    """Runs the chain and writes ``config.output``; returns the report dict. With
    ``resume``, stages recorded in the folder's manifest are loaded, not redone, and a
    stage in progress continues from its last completed epoch."""
    config.validate()
    started = time.time()
    config.output = config.output or os.path.join("saved_models", f"byol-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    data = load(config.dataset, seed=config.seed)
    out = check_writable_dir(config.output, "--output")
    state = RunState(out, dataclasses.asdict(config), resume=resume)
    if resume:
        log(f"resuming {out}: completed stages {', '.join(state.data['stages']) or 'none'}")
    else:
        from kdtf.cli import save_args

        save_args(dataclasses.asdict(config), out)
    x = data.x_train  # labels are not used until the evaluation
    log(f"data {data.name}: {len(x)} unlabeled training images, {len(data.x_test)} test images, input {data.input_shape}")
    labelled = few_labels(data.y_train, config.labels_per_class, seed=config.seed)
    timings, encoders, losses = {}, {}, {}

    def evaluate(name, embed_fn, params, path, measured_on="keras"):
        result = probe(embed_fn(data.x_train[labelled]), data.y_train[labelled], embed_fn(data.x_test), data.y_test, config.knn_k)
        record = {"encoder": name, **result, "params": int(params), "measured_on": measured_on}
        if path:
            record.update(file=os.path.basename(path), size_bytes=os.path.getsize(path), gzip_bytes=gzip_size(path))
        encoders[name] = record
        log(f"eval {name}: linear probe {result['linear_probe']:.4f}, k-NN {result['knn']:.4f}")

    random_encoder = _encoder(config, "teacher", data.input_shape, 0)
    evaluate("random (teacher arch.)", lambda v: embed(random_encoder, v), random_encoder.count_params(), None)

    def stage(name, label, build, train, filename, seconds_key):
        """Loads a completed stage or trains it (resumable), evaluates and records it."""
        if state.done(name):
            record = state.record(name)
            model = load_model(os.path.join(out, filename))
            encoders[label], losses[name] = record["eval"], record["losses"]
            log(f"stage {name}: completed before, loaded from the run folder")
            return model
        t0 = time.time()
        model = build()
        losses[name] = train(model, state.callbacks(name))
        timings[seconds_key] = time.time() - t0
        path = save_model(model, os.path.join(out, filename))
        evaluate(label, lambda v: embed(model, v), model.count_params(), path)
        state.complete(name, {"eval": encoders[label], "losses": losses[name]}, [path])
        return model

    log(f"stage byol-teacher: BYOL pretraining of {config.teacher} for {config.pretrain_epochs} epochs")
    teacher = stage(  # same initial weights as the random row
        "byol-teacher", "byol teacher", lambda: _encoder(config, "teacher", data.input_shape, 0),
        lambda m, cb: _pretrain(m, config, x, config.pretrain_epochs, cb), "teacher_encoder.keras", "byol_teacher_s")
    log(f"stage byol-student: BYOL pretraining of {config.student} from scratch for {config.student_pretrain_epochs} epochs")
    stage("byol-student", "byol student (scratch)", lambda: _encoder(config, "student", data.input_shape, 1),
          lambda m, cb: _pretrain(m, config, x, config.student_pretrain_epochs, cb), "student_byol.keras", "byol_student_s")

    distiller_args = dict(alpha=0.0, distill="embedding")
    student_holder = {}

    def distil(model, callbacks):
        distiller = Distiller(model, teacher, name="distill", **distiller_args)
        distiller.compile(keras.optimizers.Adam(config.distill_learning_rate))
        student_holder["cached"] = distiller.cached_dataset(x, batch_size=config.batch_size, seed=config.seed)
        return distiller.fit(student_holder["cached"], epochs=config.distill_epochs, verbose=keras_verbosity(config.verbose), callbacks=callbacks).history["loss"]

    log(f"stage distilled: label-free embedding distillation for {config.distill_epochs} epochs (teacher outputs cached)")
    student = stage("distilled", "distilled student", lambda: _encoder(config, "student", data.input_shape, 1),  # as BYOL-from-scratch
                    distil, "student_encoder.keras", "distill_s")
    cached = student_holder.get("cached") or Distiller(student, teacher, **distiller_args).cached_dataset(x, batch_size=config.batch_size, seed=config.seed)

    t0 = time.time()
    steps = f"prune:{config.sparsity}" + (",qat" if config.qat else "")
    recipe = compress.Recipe.parse(steps)
    for step in recipe.steps:
        step.epochs = config.qat_epochs if isinstance(step, compress.QAT) else config.prune_epochs
    log(f"stage compress: {', '.join(s.name for s in recipe.steps)}, each fine-tuned by embedding distillation")
    compressed, compress_stages = recipe.run(
        student, teacher, cached, None, learning_rate=config.distill_learning_rate / 3, alpha=0.0,
        distill="embedding", steps_per_epoch=int(np.ceil(len(x) / config.batch_size)), verbose=keras_verbosity(config.verbose), log=log,
        callbacks=lambda index: state.callbacks(f"compress:{index}"), checkpoint=StepCheckpoint(state, out, save_model),
    )
    save_model(compressed, os.path.join(out, "student_compressed.keras"))
    timings["compress_s"] = time.time() - t0

    t0 = time.time()
    tflite_path = os.path.join(out, "student_encoder_int8.tflite")
    flatbuffer = export.to_tflite(
        compressed, "int8", output_type=tf.float32,
        representative_data=None if config.qat else [x[i:i + 32] for i in range(0, 320, 32)],
    )
    export.check_builtin_ops(flatbuffer)
    export.save_tflite(flatbuffer, tflite_path)
    verified = recipe.verify(tflite_path)
    keras_emb = embed(compressed, data.x_test)
    lite_emb = export.predict(tflite_path, data.x_test)
    cosine = np.sum(keras_emb * lite_emb, -1) / (np.linalg.norm(keras_emb, axis=-1) * np.linalg.norm(lite_emb, axis=-1) + 1e-12)
    agreement = {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}
    timing = export.latency(tflite_path, num_threads=1, runs=config.latency_runs)
    timings["export_s"] = time.time() - t0
    evaluate("compressed student (int8 TFLite)", lambda v: export.predict(tflite_path, v), compress_stages[-1]["params"], tflite_path, "litert")
    encoders["compressed student (int8 TFLite)"].update(
        sparsity=compress_stages[-1].get("sparsity"), latency_ms=timing["median_ms"], keras_agreement=agreement,
    )
    log(f"stage tflite-int8: LiteRT vs Keras embeddings: mean cosine {agreement['mean_cosine']:.4f} (min {agreement['min_cosine']:.4f}); {timing['median_ms']:.3f} ms/image; verified {verified}")

    timings["total_s"] = time.time() - started
    report = {
        "kdtf_version": __import__("kdtf").__version__,
        "config": dataclasses.asdict(config),
        "data": {"name": data.name, "unlabeled_train": len(x), "labelled_for_eval": int(len(labelled)), "test": len(data.x_test)},
        "encoders": list(encoders.values()),
        "byol_loss": losses,
        "compression_steps": compress_stages,
        "verified_in_tflite": verified,
        "tflite_keras_agreement": agreement,
        "timings": timings,
        "machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__},
    }
    write_text(os.path.join(out, "report.json"), json.dumps(report, indent=2))
    write_text(os.path.join(out, "report.md"), render_markdown(report))
    _render_plot(report, os.path.join(out, "plot.png"))
    state.complete("export", {"file": os.path.basename(tflite_path)}, [tflite_path, "report.json", "report.md", "plot.png"])
    state.finish()
    log(f"done in {timings['total_s']:.0f} s: {out}")
    return report


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
