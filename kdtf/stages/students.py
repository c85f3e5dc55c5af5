"""The students before compression: the scratch baseline (labels only) and the
distilled student, both from the same initial weights (seed + 1)."""

import dataclasses

from kdtf._keras import keras
from kdtf.progressive import progressive_distillation
from kdtf.stages.context import ModelStage, RunContext
from kdtf.stages.teacher import TeacherStage
from kdtf.stages.teacher_outputs import TeacherOutputsStage

__all__ = ["ScratchStage", "DistilledStage"]


@dataclasses.dataclass
class ScratchStage(ModelStage):
    """The student trained on the labelled examples alone: the baseline distillation
    must beat."""

    ctx: RunContext
    name = "scratch"
    filename = "scratch.keras"

    def describe(self):
        config = self.ctx.config
        return f"{config.student} on the {self.ctx.data.meta['labelled']} labelled examples for {config.epochs} epochs"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        keras.utils.set_random_seed(config.seed + 1)
        scratch = ctx.build("scratch", config.student, config.student_weights)
        return ctx.train(scratch, config.student_weights, ctx.labelled_ds, config.epochs, callbacks)


@dataclasses.dataclass
class DistilledStage(ModelStage):
    """The student distilled from ``teacher`` on the pipeline of ``outputs`` (stored
    teacher outputs, or the plain training data), from the scratch student's initial
    weights; Transformer students first block by block (``--progressive-epochs``, not
    resumable mid-way)."""

    ctx: RunContext
    teacher: TeacherStage
    outputs: TeacherOutputsStage
    name = "distilled"
    filename = "student.keras"
    timing = "distill_s"

    def describe(self):
        config = self.ctx.config
        progressive = f"layer-wise for {config.progressive_epochs} epoch(s) per block, then " if config.progressive_epochs else ""
        return f"{progressive}Distiller({self.ctx.spec.describe()}) for {config.epochs} epochs"

    def train(self, callbacks):
        ctx, config, teacher = self.ctx, self.ctx.config, self.teacher.product
        keras.utils.set_random_seed(config.seed + 1)  # same initial weights as scratch
        student = ctx.build("student", config.student, config.student_weights)
        if config.progressive_epochs:
            progressive_distillation(student, teacher, ctx.train_ds, epochs_per_block=config.progressive_epochs,
                                     optimizer=ctx.optimizer(config.learning_rate, warmup=False), steps_per_epoch=ctx.steps,
                                     verbose=ctx.verbose, log=ctx.log)
        return ctx.train(student, config.student_weights, self.outputs.product, config.epochs, callbacks, teacher)
