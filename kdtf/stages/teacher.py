"""The teacher stage: the user's trained model, a cached teacher, or one trained here;
its cache key, the checks of a user's teacher file and the weak-teacher gate.

A trained teacher is cached in ``<cache_dir>/teacher-<data>-<key>.keras``. The key is
derived from every setting of the run except :data:`TEACHER_NEUTRAL` (the short list
of settings that cannot change the teacher), plus the data's fingerprint and labels and
the source of the module that builds the teacher's architecture: a new setting is part
of the key by default, so it can never reuse a stale teacher.
"""

import dataclasses
import hashlib
import inspect
import json
import os
import re

from kdtf._keras import keras
from kdtf.defaults import AUTO, default_models
from kdtf.distribute import several_workers
from kdtf.models import builder
from kdtf.saving import load_model, save_model
from kdtf.stages.context import ModelRecord, ModelStage, RunContext
from kdtf.stages.data import labelled_pipeline

__all__ = ["TeacherStage", "TeacherRecord", "TEACHER_NEUTRAL", "teacher_cache_key", "teacher_cache_path",
           "load_user_teacher", "weak_teacher_threshold", "check_teacher"]

TEACHER_NEUTRAL = frozenset({
    # where the run is written and what it shows
    "output", "cache_dir", "verbose", "latency_runs",
    # what comes after the teacher: students, distillation, compression, export
    "student", "student_weights", "epochs", "temperature", "alpha", "distill", "progressive_epochs", "cache_teacher",
    "compress", "sparsity", "qat", "prune_epochs", "qat_epochs", "prune_min_weights", "ptq", "ptq_mixed", "ptq_max_drop",
    # checks of a teacher, not its training
    "allow_weak_teacher", "unsafe_load",
})
"""Settings that cannot change a trained teacher; every other setting is in its key."""


def _file_digest(path):
    if not path:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _teacher_settings(config):
    """Every setting but :data:`TEACHER_NEUTRAL`, with the label count resolved and the
    weights file by its content (not its path)."""
    settings = {name: value for name, value in dataclasses.asdict(config).items() if name not in TEACHER_NEUTRAL}
    settings.update(labels=config.labels_kept(), teacher_weights=_file_digest(config.teacher_weights))
    return settings


def teacher_cache_key(config, data):
    """A hex digest of everything that can change the teacher ``config`` trains on
    ``data``: its settings (:func:`_teacher_settings`), the training inputs and labels,
    the Keras version and the source of the module of the teacher's builder."""
    name = default_models(data.input_shape)["teacher"] if config.teacher == AUTO else config.teacher  # a run resolves it first
    source = inspect.getsource(inspect.getmodule(builder(name)))
    material = {
        "settings": _teacher_settings(config),
        "data": [data.name, list(data.input_shape), data.fingerprint("train"),
                 hashlib.sha256(data.y_train.tobytes()).hexdigest()],
        "builder": hashlib.sha256(source.encode()).hexdigest(),
        "keras": keras.__version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def teacher_cache_path(config, data):
    """``<cache_dir>/teacher-<data>-<key>.keras`` (see :func:`teacher_cache_key`)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.name).strip("_")[-40:]
    return os.path.join(config.cache_dir, f"teacher-{slug}-{teacher_cache_key(config, data)[:10]}.keras")


def _input_mismatch(path, wanted, given):
    """The one line for a teacher whose input does not fit the data, with the fix that can work."""
    line = f"Teacher {path!r} takes inputs of shape {wanted}, but the data set gives {given}"
    if len(wanted) == 3 and len(given) == 3 and wanted[-1] != given[-1]:
        kinds = {1: "grey (1 channel)", 3: "colour (3 channels)"}
        return (f"{line}: it was trained on {kinds.get(wanted[-1], f'{wanted[-1]}-channel')} images and the data is "
                f"{kinds.get(given[-1], f'{given[-1]}-channel')}; --image-size cannot change channels. Use a teacher "
                f"trained on {given[-1]}-channel images (or save yours behind a first layer that converts them).")
    return f"{line}; pass --image-size {wanted[0]} (the teacher's input size) or a teacher for this data."


def load_user_teacher(config, data):
    """A teacher the user trained: ``--teacher PATH.keras`` (safe mode unless
    ``--unsafe-load``), checked against the data's input shape and class count."""
    teacher = load_model(config.teacher, safe_mode=not config.unsafe_load)
    if tuple(teacher.input_shape[1:]) != tuple(data.input_shape):
        raise ValueError(_input_mismatch(config.teacher, tuple(teacher.input_shape[1:]), tuple(data.input_shape)))
    classes = int(teacher.output_shape[-1])
    if classes != data.num_classes:
        raise ValueError(
            f"Teacher {config.teacher!r} outputs {classes} classes, but {data.name} has {data.num_classes} "
            "(teacher/student class-count mismatch); use a teacher trained on this data set's classes."
        )
    return teacher


def weak_teacher_threshold(num_classes):
    """The validation accuracy a teacher must exceed: chance plus a tenth of the way from
    chance to perfect (19 % for 10 classes, 55 % for 2, 10.9 % for 100)."""
    chance = 1.0 / num_classes
    return chance + 0.1 * (1.0 - chance)


def check_teacher(accuracy, num_classes, allow_weak=False, log=print):
    """Stops the run when the teacher has not learned the task: distilling from a
    chance-level teacher teaches noise (``allow_weak``, ``--allow-weak-teacher``, goes
    on with a warning)."""
    threshold = weak_teacher_threshold(num_classes)
    if accuracy >= threshold:
        return
    message = (
        f"The teacher reaches {accuracy:.1%} on the validation split, barely above chance "
        f"({1 / num_classes:.1%} for {num_classes} classes; needed {threshold:.1%}): it has not learned "
        "the task. Usual fixes: more --teacher-epochs, pretrained --teacher-weights, a larger --image-size, "
        "a higher or lower --lr; --allow-weak-teacher goes on anyway."
    )
    if not allow_weak:
        raise ValueError(message)
    log(f"warning: {message}")


@dataclasses.dataclass
class TeacherRecord(ModelRecord):
    """The teacher's row, its validation accuracy (the weak-teacher gate reads it),
    where it came from (``cache``: ``{"path", "reused"}``) and the photo defaults its
    training got (``defaults``: the logged line, :mod:`kdtf.teacher_defaults`)."""

    val_accuracy: float
    cache: dict
    defaults: str = ""

    def report_sections(self):
        return {**super().report_sections(), "teacher_cache": self.cache, "teacher_defaults": self.defaults}


@dataclasses.dataclass
class TeacherStage(ModelStage):
    """The teacher: ``user_teacher`` when given (loaded by :func:`load_user_teacher`),
    else a cached teacher of the same key, else one trained on the labelled examples and
    cached."""

    ctx: RunContext
    user_teacher: object = None
    name = "teacher"
    filename = "teacher.keras"
    record_type = TeacherRecord

    def __post_init__(self):
        config = self.ctx.config
        self.cache_path = config.teacher if self.user_teacher is not None else teacher_cache_path(config, self.ctx.data)
        self.reused = False

    def describe(self):
        config = self.ctx.config
        source = "the user's model" if self.user_teacher is not None else config.teacher + (
            f" from {config.teacher_weights}" if config.teacher_weights else "")
        augment = f", augmented {config.teacher_augment}" if config.teacher_augment else ""
        return f"{source}, {config.teacher_epochs} epochs on the labelled examples{augment}"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        if self.user_teacher is not None:
            self.reused = True
            return self.user_teacher
        if os.path.exists(self.cache_path) and not several_workers():  # workers must train in step
            ctx.log(f"stage teacher: reusing cached {self.cache_path}")
            self.reused = True
            return keras.models.load_model(self.cache_path, compile=False)
        teacher = ctx.build("teacher", config.teacher, config.teacher_weights)
        same = config.teacher_augment == config.augment  # else its own pipeline (kdtf.teacher_defaults)
        pipeline = ctx.labelled_ds if same else labelled_pipeline(config, ctx.data, config.teacher_augment)
        ctx.train(teacher, config.teacher_weights, pipeline, config.teacher_epochs, callbacks)
        save_model(teacher, self.cache_path)
        return teacher

    def extra(self, model):
        return {"val_accuracy": self.ctx.accuracy(model, "val"), "cache": {"path": self.cache_path, "reused": self.reused},
                "defaults": self.ctx.data.meta.get("teacher_defaults", "")}

    def accept(self, record):
        config = self.ctx.config
        check_teacher(record.val_accuracy, self.ctx.data.num_classes, config.allow_weak_teacher, self.ctx.log)
