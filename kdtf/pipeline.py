"""The end-to-end recipe behind ``scripts/distill.py``.

data -> teacher (trained or cached) -> student from scratch (baseline) -> student by
distillation -> pruning while distilling -> sparsity-preserving QAT while distilling ->
int8 TFLite -> evaluation on LiteRT -> ``saved_models/<run>/`` with a report.
"""

import dataclasses
import hashlib
import json
import os
import re
import time

import numpy as np

from kdtf import compress, export
from kdtf._keras import keras, tf
from kdtf.cli import keras_verbosity, log
from kdtf.data import keep_labels, labelled_dataset, load, load_unlabeled
from kdtf.data.augment import mixes_labels
from kdtf.distiller import Distiller
from kdtf.finetune import fine_tune
from kdtf.io import check_free_space, check_writable_dir, gzip_size
from kdtf.models import build
from kdtf.models.io import load_model, save_model
from kdtf.runstate import RunState, StepCheckpoint

__all__ = ["DistillConfig", "run", "default_output", "compression_steps", "recipe_for"]


@dataclasses.dataclass
class DistillConfig:
    """Settings of a run. Every field is a flag of ``scripts/distill.py``."""

    dataset: str = "mnist5k"
    data_dir: str = ""
    image_size: int = 0
    augment: str = ""
    transfer_set: str = ""
    seed: int = 0
    teacher: str = "teacher_cnn"
    student: str = "student_cnn"
    teacher_weights: str = ""
    student_weights: str = ""
    unfreeze_layers: int = 30
    finetune_epochs: int = 3
    teacher_epochs: int = 12
    epochs: int = 20
    prune_epochs: int = 4
    qat_epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 3e-4
    temperature: float = 4.0
    alpha: float = 0.5
    sparsity: float = 0.75
    labels: int = 500
    distill: str = "kd"
    compress: str = ""
    prune_min_weights: int = 1000
    qat: bool = True
    cache_teacher: str = "auto"
    strategy: str = "default"
    unsafe_load: bool = False
    output: str = ""
    cache_dir: str = "saved_models/cache"
    latency_runs: int = 200
    verbose: int = -1

    def validate(self):
        """Raises ValueError naming the first bad setting."""
        for name in ("teacher_epochs", "epochs", "prune_epochs", "qat_epochs", "batch_size", "latency_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
        for name in ("learning_rate", "finetune_learning_rate", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Expected {name} > 0. Received: {name}={value!r}")
        if not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ValueError(f"Expected alpha in [0, 1]. Received: alpha={self.alpha!r}")
        for name in ("image_size", "unfreeze_layers", "finetune_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Expected {name} to be an integer >= 0. Received: {name}={value!r}")
        if 0 < self.image_size < 8:
            raise ValueError(f"Expected an image size of at least 8 pixels (or 0: the data set's own). Received: image_size={self.image_size}")
        if isinstance(self.labels, bool) or not isinstance(self.labels, int) or self.labels < 0:
            raise ValueError(f"Expected labels >= 0 (0 keeps every label). Received: labels={self.labels!r}")
        if not isinstance(self.sparsity, (int, float)) or not 0 <= self.sparsity < 1:
            raise ValueError(f"Expected sparsity in [0, 1). Received: sparsity={self.sparsity!r}")
        from kdtf import compress, models

        compress.Recipe.parse(compression_steps(self))  # raises on an unknown step
        from kdtf.terms import parse_terms

        parse_terms(self.distill)  # raises on an unknown or malformed term

        from kdtf.data.augment import parse_augment

        _check_spec(self.dataset, "--dataset", "Image folder")
        if self.transfer_set:
            _check_spec(self.transfer_set, "--transfer-set", "Transfer-set folder")
        parse_augment(self.augment)
        from kdtf.distribute import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r} (--strategy). Known: {', '.join(STRATEGIES)}")
        if self.cache_teacher not in ("auto", "on", "off"):
            raise ValueError(f"Expected cache_teacher 'auto', 'on' or 'off'. Received: cache_teacher={self.cache_teacher!r}")
        if self.cache_teacher == "on" and parse_augment(self.augment):
            raise ValueError(
                f"--cache-teacher on needs a deterministic input pipeline, but --augment {self.augment} is on: "
                "the teacher must run on each augmented batch. Use --cache-teacher auto/off or drop --augment."
            )
        if _is_model_file(self.teacher):
            if not os.path.isfile(self.teacher):
                raise ValueError(f"Teacher model file not found: {self.teacher!r} (--teacher).")
            if self.teacher_weights:
                raise ValueError("--teacher-weights is for backbone names; a --teacher model file already holds its weights.")
        for name in ("teacher", "student"):
            model = getattr(self, name)
            if name == "teacher" and _is_model_file(model):
                continue
            if model not in models.names():
                raise ValueError(f"Unknown {name} model {model!r} (--{name}). Known: {', '.join(models.names())}")
            weights = getattr(self, f"{name}_weights")
            if weights and not models.is_backbone(model):
                raise ValueError(
                    f"--{name}-weights is for backbones ({', '.join(n for n in models.names() if models.is_backbone(n))}); "
                    f"{model!r} trains from scratch. Received: {name}_weights={weights!r}"
                )
            if weights and not os.path.isfile(weights):
                raise ValueError(f"Weights file not found: {weights!r} (--{name}-weights).")
        return self


def _check_spec(spec, flag, what):
    """Raises ValueError for an unknown data set spec or a missing ``folder:`` path."""
    from kdtf import data

    try:
        kind, rest = data.parse_spec(spec)
    except ValueError:
        raise ValueError(f"Unknown data set spec {spec!r} ({flag}). Known: {', '.join(data.specs())}") from None
    if kind == "folder" and not os.path.isdir(rest):
        raise ValueError(f"{what} not found: {rest!r} ({flag} {spec}).")


def compression_steps(config):
    """The compression recipe string: ``--compress`` if given, else ``prune:S[,qat]``
    from ``--sparsity`` and ``--no-qat``."""
    if config.compress:
        return config.compress
    return f"prune:{config.sparsity}" + (",qat" if config.qat else "")


def recipe_for(config, text=None):
    """The compression Recipe for ``text`` (default: :func:`compression_steps`), with the
    run's epochs per step (``qat_epochs`` for QAT, ``prune_epochs`` otherwise) and its
    ``prune_min_weights``."""
    recipe = compress.Recipe.parse(text or compression_steps(config))
    for step in recipe.steps:
        step.epochs = step.epochs or (config.qat_epochs if isinstance(step, compress.QAT) else config.prune_epochs)
        if hasattr(step, "min_weights"):
            step.min_weights = config.prune_min_weights
    return recipe


def default_output(config):
    """``saved_models/<dataset>-<YYYYmmdd-HHMMSS>``: the run folder when none is given."""
    return os.path.join("saved_models", f"{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def _use_teacher_cache(config):
    return config.cache_teacher == "on" or (config.cache_teacher == "auto" and not config.augment)


def _ce(one_hot=False):
    if one_hot:  # mixup/cutmix turn labels into mixed one-hot rows
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _file_digest(path):
    if not path:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _teacher_cache_path(config, data):
    fingerprint = hashlib.sha256(data.x_train.tobytes() + data.y_train.tobytes()).hexdigest()
    key = json.dumps(
        [config.teacher, data.name, data.input_shape, config.seed, config.teacher_epochs,
         config.batch_size, config.learning_rate, config.labels, keras.__version__, fingerprint,
         config.augment, _file_digest(config.teacher_weights), config.finetune_epochs,
         config.unfreeze_layers, config.finetune_learning_rate],
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.name).strip("_")[-40:]
    return os.path.join(config.cache_dir, f"teacher-{slug}-{digest}.keras")


def _train(model, config, weights, train_ds, val_ds, steps, epochs, teacher=None, callbacks=None):
    """Trains a zoo model, or fine-tunes a backbone in two phases when it has pretrained
    ``weights`` (a backbone without weights trains every layer, BatchNormalization in
    training mode: frozen random statistics would make it output ~0). With ``teacher``,
    through the Distiller (teacher-assisted fine-tuning)."""
    from kdtf.models.transfer import is_backbone_classifier

    one_hot = mixes_labels(config.augment)
    fit_args = dict(steps_per_epoch=steps, verbose=keras_verbosity(config.verbose))
    distiller_args = dict(temperature=config.temperature, alpha=config.alpha, distill=config.distill)
    if is_backbone_classifier(model) and weights:
        log(
            f"  two-phase fine-tuning of {model.name}: head only for {epochs} epochs, then the top "
            f"{config.unfreeze_layers} layers for {config.finetune_epochs} epochs (BatchNormalization frozen)"
        )
        fine_tune(
            model, train_ds, val_ds, head_epochs=epochs, epochs=config.finetune_epochs,
            unfreeze_layers=config.unfreeze_layers, learning_rate=config.learning_rate,
            finetune_learning_rate=config.finetune_learning_rate, teacher=teacher,
            distiller_args=distiller_args, loss=_ce(one_hot), **fit_args,
        )
        for layer in model.layers:  # compression fine-tunes every layer; BN stays frozen
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        return model
    if teacher is not None:
        return _fit_distiller(model, teacher, config, train_ds, val_ds, epochs, config.learning_rate, "distill", steps, callbacks)
    model.compile(keras.optimizers.Adam(config.learning_rate), _ce(one_hot), ["accuracy"])
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, **fit_args)
    return model


def _user_teacher(config, data):
    """A teacher the user trained: ``--teacher PATH.keras`` (safe mode unless --unsafe-load)."""
    teacher = load_model(config.teacher, safe_mode=not config.unsafe_load)
    if tuple(teacher.input_shape[1:]) != tuple(data.input_shape):
        raise ValueError(
            f"Teacher {config.teacher!r} takes inputs of shape {tuple(teacher.input_shape[1:])}, but the data "
            f"set gives {tuple(data.input_shape)}; pass --image-size or a teacher for this data."
        )
    classes = int(teacher.output_shape[-1])
    if classes != data.num_classes:
        raise ValueError(
            f"Teacher {config.teacher!r} outputs {classes} classes, but {data.name} has {data.num_classes} "
            "(teacher/student class-count mismatch); use a teacher trained on this data set's classes."
        )
    log(f"stage teacher: using the user's model {config.teacher}")
    return teacher


def _check_models(config, data):
    """Builds the student and the teacher (or loads the user's teacher) and a Distiller
    with the run's terms, before anything is trained or written: a wrong layer name, a
    class-count mismatch or a corrupt teacher file stops the run here.

    Returns:
        The user's teacher (loaded once, reused by the teacher stage), or ``None``.
    """
    user_teacher = _user_teacher(config, data) if _is_model_file(config.teacher) else None
    teacher = user_teacher or build(config.teacher, data.input_shape, data.num_classes, name="teacher")
    student = build(config.student, data.input_shape, data.num_classes, name="student")
    Distiller(student, teacher, temperature=config.temperature, alpha=config.alpha, distill=config.distill)
    return user_teacher


def _is_model_file(name):
    return isinstance(name, str) and name.endswith((".keras", ".h5"))


def _train_teacher(config, data, labelled_ds, steps, val_ds, callbacks=None, user_teacher=None):
    if user_teacher is not None:
        return user_teacher, config.teacher, True
    path = _teacher_cache_path(config, data)
    several_workers = getattr(tf.distribute.get_strategy().extended, "_num_workers", 1) > 1
    if os.path.exists(path) and not several_workers:  # workers must train in step
        log(f"stage teacher: reusing cached {path}")
        return keras.models.load_model(path, compile=False), path, True
    source = f" from {config.teacher_weights}" if config.teacher_weights else ""
    log(f"stage teacher: training {config.teacher}{source} for {config.teacher_epochs} epochs")
    teacher = build(config.teacher, data.input_shape, data.num_classes, name="teacher", weights=config.teacher_weights or None)
    _train(teacher, config, config.teacher_weights, labelled_ds, val_ds, steps, config.teacher_epochs, callbacks=callbacks)
    save_model(teacher, path)
    return teacher, path, False


def _fit_distiller(student, teacher, config, train_ds, val_ds, epochs, lr, name, steps=None, callbacks=None):
    distiller = Distiller(student, teacher, temperature=config.temperature, alpha=config.alpha, distill=config.distill, name=name)
    distiller.compile(keras.optimizers.Adam(lr), metrics=["accuracy"])
    distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps, verbose=keras_verbosity(config.verbose), callbacks=callbacks)
    return distiller.student


def _accuracy(model, data):
    logits = model.predict(data.x_test, batch_size=256, verbose=0)
    return float(np.mean(logits.argmax(-1) == data.y_test))


def _stage(name, model, data, config, path, params=None):
    accuracy = _accuracy(model, data)
    _, sparsity = compress.kernel_sparsity(model)
    flatbuffer = export.to_tflite(model, "float32")
    timing = export.latency(flatbuffer, num_threads=1, runs=config.latency_runs)
    record = {
        "stage": name,
        "accuracy": accuracy,
        "accuracy_measured_on": "keras",
        "params": params if params is not None else model.count_params(),
        "file": os.path.basename(path),
        "size_bytes": os.path.getsize(path),
        "gzip_bytes": gzip_size(path),
        "sparsity": sparsity,
        "latency_ms": timing["median_ms"],
        "latency_p90_ms": timing["p90_ms"],
        "latency_measured_on": "litert, 1 thread, batch 1, TFLite export of this model",
    }
    log(f"stage {name}: test accuracy {accuracy:.4f}, sparsity {sparsity:.3f}, {timing['median_ms']:.3f} ms/image")
    return record


def is_chief(strategy):
    """False on the non-chief workers of a multi-worker strategy (they write no run folder)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def run(config, strategy=None, resume=False):
    """Runs the whole chain and writes ``config.output``. Returns the report dict.

    Under ``--strategy`` every model is built and compiled in the strategy's scope and
    ``batch_size`` is the global batch. With several workers each runs the same chain
    (collective ops keep them in step); only the chief writes ``config.output``, the
    others write to a temporary folder that is removed.
    """
    from kdtf.distribute import describe, make_strategy

    config.validate()
    strategy = strategy or make_strategy(config.strategy)
    if not is_chief(strategy):
        import shutil
        import tempfile

        scratch = tempfile.mkdtemp(prefix="kdtf-worker-")
        config.output, config.cache_dir = os.path.join(scratch, "run"), os.path.join(scratch, "cache")
        try:
            with strategy.scope():
                return _run(config, strategy, describe(strategy), resume)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    with strategy.scope():
        return _run(config, strategy, describe(strategy), resume)


def _run(config, strategy, strategy_text, resume=False):
    """Data first, then every check that needs it, and only then the first write: bad
    input leaves no files behind."""
    started = time.time()
    config.output = config.output or default_output(config)
    keras.utils.set_random_seed(config.seed)
    if config.strategy not in ("", "default"):
        log(f"strategy: {strategy_text}; global batch {config.batch_size}")

    data = load(config.dataset, seed=config.seed, image_size=config.image_size or None, data_dir=config.data_dir or None)
    log(
        f"data {data.name}: {len(data.x_train)} train / {len(data.x_val)} val / "
        f"{len(data.x_test)} test, input {data.input_shape}, {data.num_classes} classes"
        + (f", {data.meta['skipped']} unreadable image(s) skipped" if data.meta.get("skipped") else "")
    )
    labelled = config.labels or len(data.x_train)
    if config.labels:
        data.y_train = keep_labels(data.y_train, config.labels, seed=config.seed)
        log(
            f"labels: keeping {labelled} labelled training examples (stratified); the other "
            f"{len(data.x_train) - labelled} are an unlabeled transfer set for distillation"
        )
    transfer = 0
    if config.transfer_set:
        extra = load_unlabeled(
            config.transfer_set, image_size=data.input_shape[0], channels=data.input_shape[-1],
            data_dir=config.data_dir or None,
        )
        transfer = len(extra)
        data.x_train = np.concatenate([data.x_train, extra.astype(np.float32)])
        data.y_train = np.concatenate([data.y_train, np.full(transfer, -1, np.int32)])
        log(f"transfer set {config.transfer_set}: {transfer} unlabeled images added for distillation")
    if config.augment:
        log(f"augmentation (keras-cv, in tf.data; the teacher sees the same augmented batch): {config.augment}")
    user_teacher = _check_models(config, data)
    keras.utils.set_random_seed(config.seed)  # the check drew initial weights
    out = check_writable_dir(config.output, "--output")
    check_writable_dir(config.cache_dir, "--cache-dir")
    check_free_space(out, "--output")
    state = RunState(out, dataclasses.asdict(config), resume=resume)
    if resume:
        log(f"resuming {out}: completed stages {', '.join(state.data['stages']) or 'none'}")
    else:
        from kdtf.cli import save_args

        save_args(dataclasses.asdict(config), out)
    steps = int(np.ceil(len(data.x_train) / config.batch_size))
    # Teacher and scratch see labelled examples only, with as many optimizer steps per
    # epoch as the Distiller, which sees every training example (unlabeled ones as -1).
    labelled_ds, _ = labelled_dataset(
        data.x_train, data.y_train, config.batch_size, steps, seed=config.seed,
        augment=config.augment, num_classes=data.num_classes,
    )
    train_ds = data.dataset("train", config.batch_size, shuffle=True, seed=config.seed, augment=config.augment)
    train_ds = train_ds.repeat()  # with steps_per_epoch: every epoch has `steps` batches
    val_ds = data.dataset("val", config.batch_size)
    if mixes_labels(config.augment):  # training labels are one-hot rows: validate alike
        val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, data.num_classes)))
    timings = {}
    stages = []

    if state.done("teacher"):
        record = dict(state.record("teacher"))
        teacher = load_model(os.path.join(out, record["file"]))  # written by this run
        teacher_cache, cached = record.pop("cache", None), True
        log("stage teacher: completed before, loaded from the run folder")
    else:
        t0 = time.time()
        teacher, teacher_cache, cached = _train_teacher(
            config, data, labelled_ds, steps, val_ds, callbacks=state.callbacks("teacher"), user_teacher=user_teacher,
        )
        timings["teacher_s"] = time.time() - t0
        teacher_path = save_model(teacher, os.path.join(out, "teacher.keras"))
        record = _stage("teacher", teacher, data, config, teacher_path)
        state.complete("teacher", dict(record, cache=teacher_cache), [teacher_path])
    stages.append(record)

    if state.done("scratch"):
        stages.append(state.record("scratch"))
        log("stage scratch: completed before, skipped")
    else:
        t0 = time.time()
        log(f"stage scratch: training {config.student} on the {labelled} labelled examples for {config.epochs} epochs")
        keras.utils.set_random_seed(config.seed + 1)
        scratch = build(config.student, data.input_shape, data.num_classes, name="scratch", weights=config.student_weights or None)
        _train(scratch, config, config.student_weights, labelled_ds, val_ds, steps, config.epochs, callbacks=state.callbacks("scratch"))
        timings["scratch_s"] = time.time() - t0
        path = save_model(scratch, os.path.join(out, "scratch.keras"))
        stages.append(_stage("scratch", scratch, data, config, path))
        state.complete("scratch", stages[-1], [path])

    keras.utils.set_random_seed(config.seed + 1)  # same initial weights as scratch
    student = build(config.student, data.input_shape, data.num_classes, name="student", weights=config.student_weights or None)
    distill_ds = recipe_ds = train_ds
    if _use_teacher_cache(config) and not state.done("compress"):
        t1 = time.time()
        probe = Distiller(student, teacher, temperature=config.temperature, alpha=config.alpha, distill=config.distill)
        distill_ds = probe.cached_dataset(data.x_train, data.y_train, batch_size=config.batch_size, seed=config.seed).repeat()
        plain = Distiller(student, teacher)  # the compression steps distil logits only
        recipe_ds = distill_ds if plain._teacher_output_counts == probe._teacher_output_counts and len(probe.teachers) == 1 else (
            plain.cached_dataset(data.x_train, data.y_train, batch_size=config.batch_size, seed=config.seed).repeat()
        )
        timings["teacher_cache_s"] = time.time() - t1
        log(f"teacher outputs cached once for {len(data.x_train)} training images ({timings['teacher_cache_s']:.1f} s); training reads them instead of running the teacher")
    if state.done("distilled"):
        stages.append(state.record("distilled"))
        student = load_model(os.path.join(out, "student.keras"))
        log("stage distilled: completed before, loaded from the run folder")
    else:
        t0 = time.time()
        log(f"stage distilled: Distiller(T={config.temperature}, alpha={config.alpha}, distill={config.distill!r}) for {config.epochs} epochs")
        student = _train(student, config, config.student_weights, distill_ds, val_ds, steps, config.epochs, teacher=teacher,
                         callbacks=state.callbacks("distilled"))
        timings["distill_s"] = time.time() - t0
        path = save_model(student, os.path.join(out, "student.keras"))
        stages.append(_stage("distilled", student, data, config, path))
        state.complete("distilled", stages[-1], [path])

    recipe = recipe_for(config)
    name = recipe.short_name
    if state.done("compress"):
        record = state.record("compress")
        compressed = load_model(os.path.join(out, record["stage"]["file"]))
        compress_stages = record["compression_steps"]
        recipe.pruned_layers, recipe.clustered_layers = record["pruned"], record["clustered"]
        stages.append(record["stage"])
        log(f"stage {name}: completed before, loaded from the run folder")
    else:
        t0 = time.time()
        log(f"stage {name}: {', '.join(s.name for s in recipe.steps)}, each fine-tuned by distillation")
        compressed, compress_stages = recipe.run(
            student, teacher, recipe_ds, val_ds, epochs=config.prune_epochs, learning_rate=config.finetune_learning_rate,
            temperature=config.temperature, alpha=config.alpha, steps_per_epoch=steps, verbose=keras_verbosity(config.verbose), log=log,
            callbacks=lambda index: state.callbacks(f"compress:{index}"), checkpoint=StepCheckpoint(state, out, save_model),
        )
        timings["compress_s"] = time.time() - t0
        compressed_path = save_model(compressed, os.path.join(out, f"student_{name.replace('+', '_').replace(':', '')}.keras"))
        params = compress_stages[-1]["params"]  # low-rank changes it; the .tflite has the same
        stages.append(_stage(name, compressed, data, config, compressed_path, params=params))
        state.complete("compress", {
            "stage": stages[-1], "compression_steps": compress_stages,
            "pruned": recipe.pruned_layers, "clustered": recipe.clustered_layers,
        }, [compressed_path])
    params = compress_stages[-1]["params"]

    t0 = time.time()
    log("stage tflite-int8: full-integer int8 export (int8 input and output), evaluated on LiteRT")
    tflite_path = os.path.join(out, "student_int8.tflite")
    card = export.export_for_android(
        compressed, tflite_path, splits=data, mode="int8",
        source_stages=["teacher", "distilled"] + [step.name for step in recipe.steps],
    )
    verified = recipe.verify(tflite_path)
    log(f"stage tflite-int8: verified in the flatbuffer: {verified}")
    result = card["metrics_on_litert"]
    timing = export.latency(tflite_path, num_threads=1, runs=config.latency_runs)
    timings["export_s"] = time.time() - t0
    stages.append({
        "stage": "tflite-int8",
        "accuracy": result["accuracy"],
        "accuracy_measured_on": "litert",
        "agreement_with_keras": result["agreement"],
        "params": params,
        "file": os.path.basename(tflite_path),
        "size_bytes": card["size_bytes"],
        "gzip_bytes": card["gzip_bytes"],
        "sparsity": card["weight_sparsity"],
        "latency_ms": timing["median_ms"],
        "latency_p90_ms": timing["p90_ms"],
        "latency_measured_on": "litert, 1 thread, batch 1",
        "ops": card["ops"],
    })
    log(f"stage tflite-int8: LiteRT test accuracy {result['accuracy']:.4f} (agreement with Keras {result['agreement']:.4f}), {timing['median_ms']:.3f} ms/image")

    from kdtf.report import write_report

    timings["total_s"] = time.time() - started
    report = {
        "kdtf_version": __import__("kdtf").__version__,
        "config": dataclasses.asdict(config),
        "data": {
            "name": data.name, "train": len(data.x_train), "labelled": labelled,
            "transfer_set": transfer, "augment": config.augment, "skipped_images": data.meta.get("skipped", 0),
            "val": len(data.x_val), "test": len(data.x_test),
            "input_shape": list(data.input_shape), "normalization": data.normalization,
            "class_names": data.class_names,
        },
        "teacher_cache": {"path": teacher_cache, "reused": cached},
        "stages": stages,
        "compression_steps": compress_stages,
        "verified_in_tflite": verified,
        "timings": timings,
        "machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__, "strategy": strategy_text},
    }
    write_report(report, out)
    state.complete("export", stages[-1], [tflite_path, "report.json", "report.md", "plot.png"])
    state.finish()
    log(f"done in {timings['total_s']:.0f} s: {out}")
    return report
