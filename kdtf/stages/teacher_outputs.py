"""The teacher-output store: with ``--cache-teacher`` (the default without augmentation)
the teacher runs once over the training data and its outputs travel with the data, so
distillation and compression fine-tuning run no teacher forward pass."""

import dataclasses
import time

from kdtf._keras import keras
from kdtf.distiller import Distiller
from kdtf.distribute import several_workers
from kdtf.stages.context import RunContext
from kdtf.stages.runner import Record, Stage
from kdtf.stages.teacher import TeacherStage

__all__ = ["TeacherOutputsStage", "TeacherOutputsRecord"]


@dataclasses.dataclass
class TeacherOutputsRecord(Record):
    """Whether the teacher's outputs travel with the data, and for how many examples."""

    stored: bool
    examples: int


@dataclasses.dataclass
class TeacherOutputsStage(Stage):
    """Its product is the distillation pipeline: batches
    ``({"x": x, "teacher_outputs": (logits, *tapped_features)}, y)`` read from the store
    (written once to ``cache_dir``, keyed by the data and the teacher), or the plain
    training pipeline when the teacher must run on every batch (augmentation,
    ``--cache-teacher off``, several workers reading their own files)."""

    ctx: RunContext
    teacher: TeacherStage
    name = "teacher-outputs"
    record_type = TeacherOutputsRecord

    @property
    def stores(self):
        return self.ctx.config.uses_teacher_cache() and not several_workers()

    @property
    def timing(self):
        return "teacher_cache_s" if self.stores else ""

    def describe(self):
        if self.stores:
            return "the teacher's outputs computed once and stored with the training data"
        return "none stored: the teacher runs on every training batch"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        if not self.stores:
            if config.uses_teacher_cache():  # each worker reads its own files; the teacher runs on them
                ctx.log("several workers: the teacher runs on each worker's share of the files (no teacher-output cache)")
            return ctx.train_ds
        started = time.time()
        keras.utils.set_random_seed(config.seed + 1)  # the student only names the layers the terms tap
        student = ctx.build("student", config.student, config.student_weights)
        distiller = Distiller(student, self.teacher.product, ctx.spec)
        ds = distiller.cached_dataset(ctx.data, batch_size=config.batch_size, seed=config.seed, cache_dir=config.cache_dir)
        ctx.log(f"teacher outputs cached once for {ctx.data.size('train')} training images ({time.time() - started:.1f} s); "
                "training reads them instead of running the teacher")
        return ds.repeat()

    def measure(self, product, paths):
        return TeacherOutputsRecord(stored=self.stores, examples=self.ctx.data.size("train"))

    def load(self, record):
        return self.train(callbacks=None)  # the stored outputs are read back from cache_dir
