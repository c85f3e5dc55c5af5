"""The end-to-end recipe behind ``scripts/distill.py``, as a list of stages.

    data -> teacher (trained, cached or the user's) -> scratch student (baseline)
         -> distilled student (same initial weights) -> compression, each step fine-tuned
            by the same distillation -> int8 TFLite verified on LiteRT -> report

Each stage is built by one function below (``_teacher_stage`` ... ``_export_stage``) and
run by :class:`kdtf.stages.StageRunner`, which skips what the run folder's manifest
marks complete (``--resume``), checkpoints each epoch, times, saves and records.
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
from kdtf.cli import keras_verbosity, log, save_args
from kdtf.config import DistillConfig, is_model_file
from kdtf.data import accuracy, keep_labels, load
from kdtf.data.augment import mixes_labels
from kdtf.distiller import Distiller
from kdtf.distribute import describe, make_strategy, several_workers, worker_scratch
from kdtf.finetune import fine_tune
from kdtf.io import check_free_space, check_writable_dir
from kdtf.models import build
from kdtf.models.transfer import is_backbone_classifier
from kdtf.optim import add_kernel_regularization, build_optimizer
from kdtf.progressive import progressive_distillation
from kdtf.report import per_image, report_header, stage_record, write_report
from kdtf.runstate import RunState, StepCheckpoint
from kdtf.saving import load_model, save_model
from kdtf.stages import Stage, StageRunner
from kdtf.training import FineTuner, cross_entropy_loss, fit

__all__ = ["DistillConfig", "run", "check", "recipe_for"]


@dataclasses.dataclass
class _Run:
    """What the stages of one run share."""

    config: DistillConfig
    spec: object
    data: object
    out: str
    runner: StageRunner
    steps: int
    labelled_ds: object
    train_ds: object
    val_ds: object
    recipe: object = None
    user_teacher: object = None
    distill_ds: object = None

    @property
    def verbose(self):
        return keras_verbosity(self.config.verbose)


def recipe_for(config, text=None):
    """The compression Recipe for ``text`` (default: the config's steps), with the run's
    step defaults (epochs, ``prune_min_weights``; :meth:`DistillConfig.step_defaults`)."""
    return compress.Recipe.parse(text or config.compression_steps(), config.step_defaults())


def check(config):
    """Everything the registries decide about ``config`` (compression step values, the
    distillation spec), after :meth:`DistillConfig.validate`; raises ValueError."""
    config.validate()
    recipe_for(config)
    return config.spec()


def run(config, strategy=None, resume=False):
    """Runs the whole chain and writes ``config.output``. Returns the report dict.

    Under ``--strategy`` every model is built and compiled in the strategy's scope and
    ``batch_size`` is the global batch. With several workers each runs the same chain
    (collective ops keep them in step); only the chief writes ``config.output``, the
    others write to a temporary folder that is removed.
    """
    spec = check(config)
    strategy = strategy or make_strategy(config.strategy)
    with worker_scratch(strategy) as scratch, strategy.scope():
        if scratch:
            config.output, config.cache_dir = os.path.join(scratch, "run"), os.path.join(scratch, "cache")
        return _run(config, spec, describe(strategy), resume)


def _run(config, spec, strategy_text, resume):
    started = time.time()
    ctx = _prepare(config, spec, strategy_text, resume)
    teacher = ctx.runner.run(_teacher_stage(ctx))
    _check_teacher(ctx, ctx.runner.records["teacher"]["val_accuracy"])
    ctx.runner.run(_scratch_stage(ctx))
    keras.utils.set_random_seed(config.seed + 1)  # same initial weights as scratch
    student = _build(ctx, "student", config.student, config.student_weights)
    ctx.distill_ds = _distillation_data(ctx, student, teacher)
    student = ctx.runner.run(_distill_stage(ctx, student, teacher))
    recipe = recipe_for(config)
    compressed = ctx.runner.run(_compress_stage(ctx, recipe, student, teacher))
    ctx.runner.run(_export_stage(ctx, recipe, compressed))
    ctx.runner.timings["total_s"] = time.time() - started
    report = run_report(config, ctx.data, ctx.runner, strategy_text)
    write_report(report, ctx.out)
    ctx.runner.state.finish()
    log(f"done in {ctx.runner.timings['total_s']:.0f} s: {ctx.out}")
    return report


def _load_data(config):
    data = load(config.dataset, seed=config.seed, image_size=config.image_size or None, data_dir=config.data_dir or None,
                cache_dir=config.cache_dir)
    skipped = f", {data.meta['skipped']} unreadable image(s) skipped" if data.meta.get("skipped") else ""
    log(f"data {data.name}: {data.size('train')} train / {data.size('val')} val / {data.size('test')} test, "
        f"input {data.input_shape}, {data.num_classes} classes{skipped}")
    cache = data.meta.get("image_cache")
    if cache and (cache.get("reused") or cache.get("decoded")):  # the bundled sets in memory have nothing to decode
        seconds = f" in {cache['decode_s']:.1f} s" if cache.get("decode_s") else ""
        log(f"image cache: {'reused' if cache.get('reused') else 'built'}, {cache.get('decoded', 0)} images decoded{seconds}")
    labels = config.labels_kept()
    data.meta["labelled"] = labels or data.size("train")
    if labels:
        data.y_train = keep_labels(data.y_train, labels, seed=config.seed)
        log(f"labels: keeping {labels} labelled training examples (stratified); the other "
            f"{data.size('train') - labels} are an unlabeled transfer set for distillation")
    data.meta.setdefault("transfer_set", 0)
    if config.transfer_set:
        added = data.add_unlabeled(config.transfer_set, data_dir=config.data_dir or None)
        log(f"transfer set {config.transfer_set}: {added} unlabeled images added for distillation")
    if config.augment:
        log(f"augmentation (keras-cv, in tf.data; the teacher sees the same augmented batch): {config.augment}")
    return data


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
    return teacher


def _check_models(config, spec, data):
    """Builds the student and the teacher (or loads the user's) and a Distiller with the
    run's terms, before anything is trained or written: a wrong layer name, a class-count
    mismatch or a corrupt teacher file stops the run here. Returns the user's teacher
    (loaded once, reused by the teacher stage) or ``None``."""
    user_teacher = _user_teacher(config, data) if is_model_file(config.teacher) else None
    teacher = user_teacher or build(config.teacher, data.input_shape, data.num_classes, name="teacher")
    student = build(config.student, data.input_shape, data.num_classes, name="student")
    Distiller(student, teacher, spec)
    return user_teacher


def _prepare(config, spec, strategy_text, resume):
    """Data first, then every check that needs it, and only then the first write: bad
    input leaves no files behind."""
    config.output = config.output or config.default_output()
    keras.utils.set_random_seed(config.seed)
    if config.strategy not in ("", "default"):
        log(f"strategy: {strategy_text}; global batch {config.batch_size}")
    check_writable_dir(config.cache_dir, "--cache-dir")  # the image cache is written while loading
    data = _load_data(config)
    user_teacher = _check_models(config, spec, data)
    keras.utils.set_random_seed(config.seed)  # the check drew initial weights
    out = check_writable_dir(config.output, "--output")
    check_free_space(out, "--output")
    state = RunState(out, dataclasses.asdict(config), resume=resume)
    if resume:
        log(f"resuming {out}: completed stages {', '.join(state.data['stages']) or 'none'}")
    else:
        save_args(dataclasses.asdict(config), out)
    steps = int(np.ceil(data.size("train") / config.batch_size))
    # Teacher and scratch see labelled examples only, with as many optimizer steps per
    # epoch as the Distiller, which sees every training example (unlabeled ones as -1).
    labelled_ds, train_ds = _training_pipelines(config, data)
    val_ds = data.dataset("val", config.batch_size)
    if mixes_labels(config.augment):  # training labels are one-hot rows: validate alike
        val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, data.num_classes)))
    runner = StageRunner(state, log)
    return _Run(config, spec, data, out, runner, steps, labelled_ds, train_ds, val_ds, config.training_recipe(), user_teacher)


def _training_pipelines(config, data):
    """The labelled-only and the whole training pipeline, repeated (fit runs ``steps``
    batches an epoch). Under several workers each reads only its share of the files
    (``Splits.distributed``), in per-replica batches of the global batch."""
    options = dict(shuffle=True, seed=config.seed, augment=config.augment, repeat=True)
    if several_workers():
        strategy = tf.distribute.get_strategy()
        return (data.distributed(strategy, "train", config.batch_size, labelled_only=True, **options),
                data.distributed(strategy, "train", config.batch_size, **options))
    whole = data.dataset("train", config.batch_size, shuffle=True, seed=config.seed, augment=config.augment).repeat()
    return data.dataset("train", config.batch_size, labelled_only=True, **options), whole


def _optimizer(ctx, learning_rate, warmup=True):
    """``(epochs, steps) -> optimizer`` of the run's training recipe at ``learning_rate``;
    fine-tuning phases and compression steps start without the warm-up."""
    recipe = ctx.recipe if warmup else dataclasses.replace(ctx.recipe, warmup_epochs=0)
    return lambda epochs, steps: build_optimizer(recipe, steps, epochs, learning_rate=learning_rate)


def _build(ctx, name, model_name, weights):
    """A zoo model or backbone classifier, with the recipe's kernel penalties (L1, L2)."""
    model = build(model_name, ctx.data.input_shape, ctx.data.num_classes, name=name, weights=weights or None)
    return add_kernel_regularization(model, *ctx.recipe.kernel_penalties)


def _train(ctx, model, weights, train_ds, epochs, callbacks, teacher=None):
    """Trains a zoo model, or fine-tunes a backbone in two phases when it has pretrained
    ``weights`` (a backbone without weights trains every layer, BatchNormalization in
    training mode: frozen random statistics would make it output ~0). With ``teacher``,
    through the Distiller (teacher-assisted fine-tuning)."""
    config = ctx.config
    loss = cross_entropy_loss(one_hot=mixes_labels(config.augment))
    fit_args = dict(steps_per_epoch=ctx.steps, verbose=ctx.verbose, teacher=teacher, spec=ctx.spec, loss=loss)
    if not (is_backbone_classifier(model) and weights):
        fit(model, train_ds, epochs=epochs, optimizer=_optimizer(ctx, config.learning_rate), validation_data=ctx.val_ds,
            callbacks=callbacks, name="distill", **fit_args)
        return model
    log(f"  two-phase fine-tuning of {model.name}: head only for {epochs} epochs, then the top "
        f"{config.unfreeze_layers} layers for {config.finetune_epochs} epochs (BatchNormalization frozen)")
    fine_tune(model, train_ds, ctx.val_ds, head_epochs=epochs, epochs=config.finetune_epochs,
              unfreeze_layers=config.unfreeze_layers, learning_rate=_optimizer(ctx, config.learning_rate),
              finetune_learning_rate=_optimizer(ctx, config.finetune_learning_rate, warmup=False), **fit_args)
    for layer in model.layers:  # compression fine-tunes every layer; BN stays frozen
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return model


def _measured(ctx, name, model, paths, params=None):
    """The report row of a Keras stage: accuracy, size, sparsity, LiteRT latency."""
    accuracy = _accuracy(model, ctx.data, "test", ctx.config.batch_size)
    runs = ctx.config.latency_runs
    timing = export.latency(export.to_tflite(model, "float32"), num_threads=1, runs=runs) if runs else None
    row = stage_record(name, accuracy, "keras", params if params is not None else model.count_params(), paths[0],
                       compress.kernel_sparsity(model)[1], timing, "litert, 1 thread, batch 1, TFLite export of this model")
    log(f"stage {name}: test accuracy {accuracy:.4f}, sparsity {row['sparsity']:.3f}, {per_image(timing)}")
    return row


def _accuracy(model, data, split, batch_size):
    """Accuracy on ``split`` in batches of the training batch size, so evaluation never
    needs more activation memory than training (a fixed 256 at 224 px did)."""
    return float(accuracy(model, data.dataset(split, batch_size)))


def _model_stage(ctx, name, filename, describe, train, timing=None, extra=None):
    """A stage whose product is one model saved as ``filename`` in the run folder;
    ``extra(model)`` adds to its record."""
    return Stage(
        name, describe, train,
        save=lambda model: [save_model(model, os.path.join(ctx.out, filename))],
        measure=lambda model, paths: {"row": _measured(ctx, name, model, paths), **(extra(model) if extra else {})},
        load=lambda record: load_model(os.path.join(ctx.out, record["row"]["file"])),
        timing=timing,
    )


def _file_digest(path):
    if not path:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _teacher_cache_path(config, data):
    """``<cache_dir>/teacher-<data>-<hash>.keras``: a teacher trained with the same data,
    model, seed and training settings is reused across runs."""
    fingerprint = hashlib.sha256(data.fingerprint("train").encode() + data.y_train.tobytes()).hexdigest()
    key = json.dumps(
        [config.teacher, data.name, data.input_shape, config.seed, config.teacher_epochs,
         config.batch_size, config.learning_rate, config.labels_kept(), keras.__version__, fingerprint,
         config.augment, _file_digest(config.teacher_weights), config.finetune_epochs,
         config.unfreeze_layers, config.finetune_learning_rate, dataclasses.asdict(config.training_recipe())],
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.name).strip("_")[-40:]
    return os.path.join(config.cache_dir, f"teacher-{slug}-{digest}.keras")


def _teacher_stage(ctx):
    config, data = ctx.config, ctx.data
    cache = {"path": config.teacher if ctx.user_teacher is not None else _teacher_cache_path(config, data), "reused": False}

    def train(callbacks):
        if ctx.user_teacher is not None:
            cache["reused"] = True
            return ctx.user_teacher
        if os.path.exists(cache["path"]) and not several_workers():  # workers must train in step
            log(f"stage teacher: reusing cached {cache['path']}")
            cache["reused"] = True
            return keras.models.load_model(cache["path"], compile=False)
        teacher = _build(ctx, "teacher", config.teacher, config.teacher_weights)
        _train(ctx, teacher, config.teacher_weights, ctx.labelled_ds, config.teacher_epochs, callbacks)
        save_model(teacher, cache["path"])
        return teacher

    source = "the user's model" if ctx.user_teacher is not None else f"{config.teacher}" + (
        f" from {config.teacher_weights}" if config.teacher_weights else "")
    return _model_stage(ctx, "teacher", "teacher.keras", f"{source}, {config.teacher_epochs} epochs on the labelled examples",
                        train, extra=lambda model: {"cache": dict(cache), "val_accuracy": _accuracy(model, data, "val", config.batch_size)})


def weak_teacher_threshold(num_classes):
    """The validation accuracy a teacher must exceed: chance plus a tenth of the way from
    chance to perfect (19 % for 10 classes, 55 % for 2, 10.9 % for 100)."""
    chance = 1.0 / num_classes
    return chance + 0.1 * (1.0 - chance)


def _check_teacher(ctx, accuracy):
    """Stops the run when the teacher has not learned the task: distilling from a
    chance-level teacher teaches noise (``--allow-weak-teacher`` goes on anyway)."""
    threshold = weak_teacher_threshold(ctx.data.num_classes)
    if accuracy >= threshold:
        return
    message = (
        f"The teacher reaches {accuracy:.1%} on the validation split, barely above chance "
        f"({1 / ctx.data.num_classes:.1%} for {ctx.data.num_classes} classes; needed {threshold:.1%}): it has not learned "
        "the task. Usual fixes: more --teacher-epochs, pretrained --teacher-weights, a larger --image-size, "
        "a higher or lower --lr; --allow-weak-teacher goes on anyway."
    )
    if not ctx.config.allow_weak_teacher:
        raise ValueError(message)
    log(f"warning: {message}")


def _scratch_stage(ctx):
    config, data = ctx.config, ctx.data

    def train(callbacks):
        keras.utils.set_random_seed(config.seed + 1)
        scratch = _build(ctx, "scratch", config.student, config.student_weights)
        return _train(ctx, scratch, config.student_weights, ctx.labelled_ds, config.epochs, callbacks)

    return _model_stage(ctx, "scratch", "scratch.keras",
                        f"{config.student} on the {data.meta['labelled']} labelled examples for {config.epochs} epochs", train)


def _distillation_data(ctx, student, teacher):
    """The distillation pipeline: with ``--cache-teacher`` (the default without
    augmentation) the teachers' outputs are computed once and travel with the data, so
    distillation and compression fine-tuning run no teacher forward pass."""
    config, data = ctx.config, ctx.data
    if not config.uses_teacher_cache() or ctx.runner.state.done("compress"):
        return ctx.train_ds
    if several_workers():  # each worker reads its own files; the teacher runs on them
        log("several workers: the teacher runs on each worker's share of the files (no teacher-output cache)")
        return ctx.train_ds
    distiller = Distiller(student, teacher, ctx.spec)
    ds = ctx.runner.time("teacher_cache_s", distiller.cached_dataset, data, batch_size=config.batch_size, seed=config.seed,
                         cache_dir=config.cache_dir)
    log(f"teacher outputs cached once for {data.size('train')} training images ({ctx.runner.timings['teacher_cache_s']:.1f} s); "
        "training reads them instead of running the teacher")
    return ds.repeat()


def _distill_stage(ctx, student, teacher):
    config = ctx.config

    def train(callbacks):
        if config.progressive_epochs:  # Transformer students: block by block first (not resumable mid-way)
            progressive_distillation(student, teacher, ctx.train_ds, epochs_per_block=config.progressive_epochs,
                                     optimizer=_optimizer(ctx, config.learning_rate, warmup=False), steps_per_epoch=ctx.steps,
                                     verbose=ctx.verbose, log=log)
        return _train(ctx, student, config.student_weights, ctx.distill_ds, config.epochs, callbacks, teacher)

    progressive = f"layer-wise for {config.progressive_epochs} epoch(s) per block, then " if config.progressive_epochs else ""
    return _model_stage(ctx, "distilled", "student.keras", f"{progressive}Distiller({ctx.spec.describe()}) for {config.epochs} epochs",
                        train, timing="distill_s")


def _compress_stage(ctx, recipe, student, teacher):
    config, name = ctx.config, recipe.short_name
    state = ctx.runner.state
    fine_tuner = FineTuner(teacher, ctx.distill_ds, spec=ctx.spec, optimizer=_optimizer(ctx, config.finetune_learning_rate, warmup=False),
                           validation_data=ctx.val_ds, steps_per_epoch=ctx.steps, verbose=ctx.verbose)
    results = compress.Results()

    def train(callbacks):
        model, results[:] = recipe.run(student, fine_tuner, epochs=config.prune_epochs, log=log,
                                       checkpoint=StepCheckpoint(state, ctx.out))
        return model

    def measure(model, paths):
        row = _measured(ctx, name, model, paths, params=results.params)  # low-rank changes the count
        return {"row": row, "compression_steps": results.records(), "compression": results.describe()}

    filename = f"student_{name.replace('+', '_').replace(':', '')}.keras"
    describe = f"{recipe.describe()}, each fine-tuned by distillation ({ctx.spec.describe()})"
    return Stage("compress", describe, train, lambda model: [save_model(model, os.path.join(ctx.out, filename))],
                 measure, lambda record: load_model(os.path.join(ctx.out, record["row"]["file"])), timing="compress_s")


def _post_training_quantized(ctx, model):
    """``--ptq MODE`` (with ``--no-qat``): the float export quantized by litert-quantizer,
    optionally with the most sensitive ops kept in float until the accuracy on the
    validation split is within ``--ptq-max-drop`` of float; plus the per-op error."""
    config, data = ctx.config, ctx.data
    float_file = export.to_tflite(model, "float32")
    calibration = data.sample("train", 256, seed=None)[0]
    x_val, y_val = data.sample("val", 2000, seed=0)
    extra = {"ptq": {"mode": config.ptq, "tool": "litert-quantizer", "kept_float": []}}
    if config.ptq_mixed:
        result = export.mixed_precision(float_file, x_val, y_val, config.ptq_max_drop, mode=config.ptq,
                                        representative_data=calibration)
        flatbuffer = result.model
        extra["ptq"].update(kept_float=result.kept, float_accuracy=result.float_accuracy, accuracy=result.accuracy,
                            reached=result.reached)
        log(f"stage export: mixed precision kept {len(result.kept)} op(s) in float ({result.accuracy:.4f} on val, float {result.float_accuracy:.4f})")
    else:
        flatbuffer = export.post_training_quantize(float_file, config.ptq, calibration)
    extra["layer_errors"] = export.layer_errors(float_file, flatbuffer, x_val[:256])
    return flatbuffer, extra


def _export_stage(ctx, recipe, compressed):
    mode = ctx.config.ptq or "int8"
    tflite_path = os.path.join(ctx.out, f"student_{mode}.tflite")
    extra = {}

    def results():  # what each compression step promised, from the compress stage's record
        return recipe.restore(ctx.runner.records["compress"]["compression_steps"])

    def train(callbacks):
        flatbuffer = None
        if ctx.config.ptq:
            flatbuffer, more = _post_training_quantized(ctx, compressed)
            extra.update(more)
        return export.export_for_android(
            compressed, tflite_path, splits=ctx.data, mode=f"litert-quantizer {mode}" if ctx.config.ptq else mode,
            flatbuffer=flatbuffer, source_stages=["teacher", "distilled"] + [result.step for result in results()],
        )

    def measure(card, paths):
        # int4 weights are not read by the flatbuffer checks: what the steps promised is checked on int8 files
        verified = results().verify(tflite_path) if mode != "int4w" else {"skipped": "int4 weights"}
        log(f"stage tflite-{mode}: verified in the flatbuffer: {verified}")
        result = card["metrics_on_litert"]
        runs = ctx.config.latency_runs
        timing = export.latency(tflite_path, num_threads=1, runs=runs) if runs else None
        row = stage_record(f"tflite-{mode}", result["accuracy"], "litert", results().params,
                           tflite_path, card["weight_sparsity"], timing, "litert, 1 thread, batch 1")
        row.update(agreement_with_keras=result["agreement"], ops=card["ops"])
        log(f"stage tflite-{mode}: LiteRT test accuracy {result['accuracy']:.4f} (agreement with Keras "
            f"{result['agreement']:.4f}), {per_image(timing)}")
        return {"row": row, "verified": verified, **extra}

    describe = (f"post-training {mode} quantization with litert-quantizer" if ctx.config.ptq
                else "full-integer int8 export (int8 input and output)") + ", evaluated on LiteRT"
    return Stage("export", describe, train, lambda card: [tflite_path], measure, load=lambda record: None, timing="export_s")

def run_report(config, data, runner, strategy_text):
    """The report dict of a finished run: the stage rows with how each was measured,
    the data, the compression steps, what the .tflite was verified to keep, timings."""
    records = runner.records
    return dict(
        report_header(config, strategy_text),
        data={
            "name": data.name, "train": data.size("train"), "labelled": data.meta["labelled"],
            "transfer_set": data.meta["transfer_set"], "augment": config.augment,
            "skipped_images": data.meta.get("skipped", 0), "val": data.size("val"), "test": data.size("test"),
            "image_cache": data.meta.get("image_cache"),
            "input_shape": list(data.input_shape), "normalization": data.normalization, "class_names": data.class_names,
        },
        teacher_cache=records["teacher"]["cache"],
        stages=[records[name]["row"] for name in ("teacher", "scratch", "distilled", "compress", "export")],
        compression_steps=records["compress"]["compression_steps"],
        compression=records["compress"]["compression"],
        verified_in_tflite=records["export"]["verified"],
        timings=runner.timings,
        **{key: records["export"][key] for key in ("ptq", "layer_errors") if key in records["export"]},
    )
