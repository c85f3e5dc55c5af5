"""The end-to-end recipe behind ``scripts/distill.py``, as a list of stage objects.

    data -> teacher (trained, cached or the user's) -> scratch student (baseline)
         -> teacher outputs stored with the data -> distilled student (same initial
            weights as scratch) -> compression, each step fine-tuned by the same
            distillation -> int8 TFLite verified on LiteRT -> report

:func:`distillation_stages` lists the stages (one module each under
:mod:`kdtf.stages`); :class:`kdtf.stages.StageRunner` runs them, skipping what the run
folder's manifest marks complete (``--resume``), checkpointing each epoch, timing,
saving and recording; the report is built from their records.
"""

import dataclasses
import os
import time

import numpy as np

from kdtf import compress
from kdtf._keras import keras
from kdtf.cli import log, save_args
from kdtf.config import DistillConfig, is_model_file
from kdtf.defaults import resolve_models
from kdtf.distiller import Distiller
from kdtf.distribute import describe, make_strategy, worker_scratch
from kdtf.export.profile import slower_line
from kdtf.io import check_free_space, check_writable_dir
from kdtf.models import build
from kdtf.report import run_report, write_report
from kdtf.runstate import RunState
from kdtf.stages import StageRunner
from kdtf.stages.compression import CompressStage
from kdtf.stages.context import RunContext
from kdtf.stages.data import data_section, load_run_data, training_pipelines, validation_pipeline
from kdtf.stages.export import ExportStage
from kdtf.stages.mutual import MutualStage
from kdtf.stages.students import DistilledStage, ScratchStage
from kdtf.stages.teacher import TeacherStage, load_user_teacher
from kdtf.stages.teacher_outputs import TeacherOutputsStage
from kdtf.stages.view_store import ViewStoreStage, check_view_store, uses_view_store
from kdtf.teacher_defaults import resolve_teacher_training

__all__ = ["DistillConfig", "run", "check", "recipe_for", "distillation_stages"]


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


def distillation_stages(ctx, user_teacher=None):
    """The stages of a distillation run, in order; each reads the stages it needs."""
    teacher = TeacherStage(ctx, user_teacher)
    outputs = (ViewStoreStage if uses_view_store(ctx.config) else TeacherOutputsStage)(ctx, teacher)  # issue 25
    distilled = DistilledStage(ctx, teacher, outputs)
    compressed = CompressStage(ctx, recipe_for(ctx.config), distilled, teacher, outputs)
    mutual = [MutualStage(ctx, teacher, outputs)] if ctx.config.mutual else []  # --mutual N
    return [teacher, ScratchStage(ctx), outputs, distilled, *mutual, compressed, ExportStage(ctx, compressed)]


def run(config, strategy=None, resume=False, stages=distillation_stages):
    """Runs the whole chain and writes ``config.output``. Returns the report dict.

    Under ``--strategy`` every model is built and compiled in the strategy's scope and
    ``batch_size`` is the global batch. With several workers each runs the same chain
    (collective ops keep them in step); only the chief writes ``config.output``, the
    others write to a temporary folder that is removed.

    Args:
        config: the :class:`DistillConfig`.
        strategy: a ``tf.distribute`` strategy (default: from ``config.strategy``).
        resume: continue the run folder's manifest.
        stages: ``stages(ctx, user_teacher) -> [Stage]`` (default
            :func:`distillation_stages`); a caller may add its own stages to the list.
    """
    spec = check(config)
    strategy = strategy or make_strategy(config.strategy)
    with worker_scratch(strategy) as scratch, strategy.scope():
        if scratch:
            config.output, config.cache_dir = os.path.join(scratch, "run"), os.path.join(scratch, "cache")
        return _run(config, spec, describe(strategy), resume, stages)


def _run(config, spec, strategy_text, resume, stages):
    started = time.time()
    ctx, user_teacher = _prepare(config, spec, strategy_text, resume)
    runner = StageRunner(ctx.state, log)
    runner.run_all(stages(ctx, user_teacher))
    runner.timings["total_s"] = time.time() - started
    report = run_report(config, data_section(config, ctx.data), runner.records, runner.timings, strategy_text)
    write_report(report, ctx.out)
    ctx.state.finish()
    log(f"done in {runner.timings['total_s']:.0f} s: {ctx.out}")
    if slower_line(report.get("latency_profile")):  # int8 slower than float32 on this machine
        log(slower_line(report["latency_profile"]))
    return report


def _check_models(config, spec, data):
    """Builds the student and the teacher (or loads the user's) and a Distiller with the
    run's terms, before anything is trained or written: a wrong layer name, a class-count
    mismatch or a corrupt teacher file stops the run here. Returns the user's teacher
    (loaded once, reused by the teacher stage) or ``None``."""
    user_teacher = load_user_teacher(config, data) if is_model_file(config.teacher) else None
    check_view_store(config, data)  # issue 25
    teacher = user_teacher or build(config.teacher, data.input_shape, data.num_classes, name="teacher")
    student = build(config.student, data.input_shape, data.num_classes, name="student")
    Distiller(student, teacher, spec)
    return user_teacher


def _prepare(config, spec, strategy_text, resume):
    """Data first, then every check that needs it, and only then the first write: bad
    input leaves no files behind. Returns the :class:`RunContext` and the user's teacher."""
    config.output = config.output or config.default_output()
    keras.utils.set_random_seed(config.seed)
    if config.strategy not in ("", "default"):
        log(f"strategy: {strategy_text}; global batch {config.batch_size}")
    check_writable_dir(config.cache_dir, "--cache-dir")  # the image cache is written while loading
    data = load_run_data(config, log)
    resolve_models(config, data.input_shape, log)  # --teacher/--student auto: by image size
    steps = int(np.ceil(data.size("train") / config.batch_size))
    data.meta["teacher_defaults"] = resolve_teacher_training(config, data.input_shape, steps, log)  # photos: issue 26
    user_teacher = _check_models(config, spec, data)
    keras.utils.set_random_seed(config.seed)  # the check drew initial weights
    out = check_writable_dir(config.output, "--output")
    check_free_space(out, "--output")
    state = RunState(out, dataclasses.asdict(config), resume=resume)
    if resume:
        log(f"resuming {out}: completed stages {', '.join(state.data['stages']) or 'none'}")
    else:
        save_args(dataclasses.asdict(config), out)
    # Teacher and scratch see labelled examples only, with as many optimizer steps per
    # epoch as the Distiller, which sees every training example (unlabeled ones as -1).
    labelled_ds, train_ds = training_pipelines(config, data)
    ctx = RunContext(config, spec, data, out, state, steps, labelled_ds, train_ds, validation_pipeline(config, data),
                     config.training_settings(), log)
    return ctx, user_teacher
