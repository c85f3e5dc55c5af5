"""The compression stage: the distilled student through the run's
:class:`kdtf.compress.Recipe`, each step fine-tuned by the same distillation (the
teacher's stored outputs when there are), a killed run resuming after its last finished
step (:class:`kdtf.runstate.StepCheckpoint`)."""

import dataclasses
import os

from kdtf.runstate import StepCheckpoint
from kdtf.saving import load_model, save_model
from kdtf.stages.context import ModelRecord, ModelStage, RunContext
from kdtf.stages.students import DistilledStage
from kdtf.stages.teacher import TeacherStage
from kdtf.stages.teacher_outputs import TeacherOutputsStage
from kdtf.training import FineTuner

__all__ = ["CompressStage", "CompressRecord"]


@dataclasses.dataclass
class CompressRecord(ModelRecord):
    """The compressed student's row, each step's result as a record
    (:meth:`kdtf.compress.Results.records`: what it did and what its ``verify`` checks in
    the ``.tflite`` later) and the line the results describe themselves with."""

    compression_steps: list
    compression: str

    def report_sections(self):
        return {**super().report_sections(), "compression_steps": self.compression_steps, "compression": self.compression}


@dataclasses.dataclass
class CompressStage(ModelStage):
    """Runs ``recipe`` on the product of ``student``, fine-tuning each step by
    distillation from ``teacher`` on the pipeline of ``outputs``."""

    ctx: RunContext
    recipe: object
    student: DistilledStage
    teacher: TeacherStage
    outputs: TeacherOutputsStage
    name = "compress"
    timing = "compress_s"
    record_type = CompressRecord

    def __post_init__(self):
        self.filename = f"student_{self.recipe.short_name.replace('+', '_').replace(':', '')}.keras"
        self.step_results = None

    def describe(self):
        return f"{self.recipe.describe()}, each fine-tuned by distillation ({self.ctx.spec.describe()})"

    def results(self):
        """The steps' :class:`kdtf.compress.Results`, restored from the stage's record."""
        return self.recipe.restore(self.record.compression_steps)

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        fine_tuner = FineTuner(self.teacher.product, self.outputs.product, spec=ctx.spec,
                               optimizer=ctx.optimizer(config.finetune_learning_rate, warmup=False),
                               validation_data=ctx.val_ds, steps_per_epoch=ctx.steps, verbose=ctx.verbose)
        model, self.step_results = self.recipe.run(self.student.product, fine_tuner, epochs=config.prune_epochs, log=ctx.log,
                                                   checkpoint=StepCheckpoint(ctx.state, ctx.out))
        return model

    def save(self, model):
        return [save_model(model, os.path.join(self.ctx.out, self.filename))]

    def measure(self, model, paths):
        results = self.step_results  # low-rank changes the parameter count: the last step's count
        row = self.ctx.measured(self.recipe.short_name, model, paths, params=results.params)
        return CompressRecord(row=row, compression_steps=results.records(), compression=results.describe())

    def load(self, record):
        return load_model(os.path.join(self.ctx.out, record.row["file"]))
