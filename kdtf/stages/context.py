"""What the stages of one distillation run share (:class:`RunContext`), and the base of
every stage whose product is one model saved in the run folder (:class:`ModelStage`)."""

import dataclasses
import os

from kdtf import compress, export
from kdtf._keras import keras
from kdtf.cli import keras_verbosity
from kdtf.collapse import check_collapse
from kdtf.data import accuracy
from kdtf.data.augment import mixes_labels
from kdtf.finetune import fine_tune
from kdtf.models import build
from kdtf.models.transfer import is_backbone_classifier
from kdtf.optim import add_kernel_regularization, build_optimizer
from kdtf.report import per_image, stage_record
from kdtf.saving import load_model, save_model
from kdtf.stages.runner import Record, Stage
from kdtf.training import cross_entropy_loss, fit

__all__ = ["RunContext", "ModelRecord", "ModelStage"]


@dataclasses.dataclass
class RunContext:
    """The run's settings, data and pipelines, and how every stage builds, trains and
    measures a model.

    Attributes:
        config: the :class:`kdtf.config.DistillConfig`.
        spec: its :class:`kdtf.spec.DistillSpec`.
        data: the :class:`kdtf.data.Splits`.
        out: the run folder.
        state: its :class:`kdtf.runstate.RunState`.
        steps: optimizer steps per epoch (every training example, labelled or not).
        labelled_ds, train_ds, val_ds: the repeated labelled-only and whole training
            pipelines, and the validation pipeline.
        training: the :class:`kdtf.spec.TrainingSettings` (optimizer, schedule, penalties).
        log: the progress-line function.
    """

    config: object
    spec: object
    data: object
    out: str
    state: object
    steps: int
    labelled_ds: object
    train_ds: object
    val_ds: object
    training: object
    log: object = print

    @property
    def verbose(self):
        return keras_verbosity(self.config.verbose)

    def optimizer(self, learning_rate, warmup=True):
        """``(epochs, steps) -> optimizer`` of the run's training recipe at
        ``learning_rate``; fine-tuning phases and compression steps start without the
        warm-up."""
        training = self.training if warmup else dataclasses.replace(self.training, warmup_epochs=0)
        return lambda epochs, steps: build_optimizer(training, steps, epochs, learning_rate=learning_rate)

    def build(self, name, model_name, weights):
        """A zoo model or backbone classifier, with the recipe's kernel penalties (L1, L2)."""
        model = build(model_name, self.data.input_shape, self.data.num_classes, name=name, weights=weights or None)
        return add_kernel_regularization(model, *self.training.kernel_penalties)

    def train(self, model, weights, train_ds, epochs, callbacks, teacher=None):
        """Trains a zoo model, or fine-tunes a backbone in two phases when it has
        pretrained ``weights`` (a backbone without weights trains every layer,
        BatchNormalization in training mode: frozen random statistics would make it
        output ~0). With ``teacher``, through the Distiller (teacher-assisted fine-tuning)."""
        config = self.config
        loss = cross_entropy_loss(one_hot=mixes_labels(config.augment))
        fit_args = dict(steps_per_epoch=self.steps, verbose=self.verbose, teacher=teacher, spec=self.spec, loss=loss)
        if not (is_backbone_classifier(model) and weights):
            fit(model, train_ds, epochs=epochs, optimizer=self.optimizer(config.learning_rate), validation_data=self.val_ds,
                callbacks=callbacks, name="distill", **fit_args)
            return model
        self.log(f"  two-phase fine-tuning of {model.name}: head only for {epochs} epochs, then the top "
                 f"{config.unfreeze_layers} layers for {config.finetune_epochs} epochs (BatchNormalization frozen)")
        fine_tune(model, train_ds, self.val_ds, head_epochs=epochs, epochs=config.finetune_epochs,
                  unfreeze_layers=config.unfreeze_layers, learning_rate=self.optimizer(config.learning_rate),
                  finetune_learning_rate=self.optimizer(config.finetune_learning_rate, warmup=False), **fit_args)
        for layer in model.layers:  # compression fine-tunes every layer; BN stays frozen
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        return model

    def accuracy(self, model, split):
        """Accuracy on ``split`` in batches of the training batch size, so evaluation
        never needs more activation memory than training (a fixed 256 at 224 px did)."""
        return float(accuracy(model, self.data.dataset(split, self.config.batch_size)))

    def measured(self, name, model, paths, params=None):
        """The report row of a Keras stage: accuracy, size, sparsity, LiteRT latency.
        A trained student at chance or predicting one class stops the run here
        (:mod:`kdtf.collapse`; ``--allow-collapse`` warns instead); the teacher has its own gate."""
        if name != "teacher":
            allowed = self.config.allow_collapse
            check_collapse(model, self.val_ds, stage=f"stage {name}", action="warn" if allowed else "raise",
                           hint="" if allowed else " --allow-collapse goes on anyway.")
        test_accuracy = self.accuracy(model, "test")
        runs = self.config.latency_runs
        timing = export.latency(export.to_tflite(model, "float32"), num_threads=1, runs=runs) if runs else None
        row = stage_record(name, test_accuracy, "keras", params if params is not None else model.count_params(), paths[0],
                           compress.kernel_sparsity(model)[1], timing, "litert, 1 thread, batch 1, TFLite export of this model")
        self.log(f"stage {name}: test accuracy {test_accuracy:.4f}, sparsity {row['sparsity']:.3f}, {per_image(timing)}")
        return row


@dataclasses.dataclass
class ModelRecord(Record):
    """The record of a model stage: its row of the stage table."""

    row: dict

    def report_sections(self):
        return {"stages": [self.row]}


class ModelStage(Stage):
    """A stage whose product is one model saved as :attr:`filename` in the run folder and
    measured on the test split (:meth:`RunContext.measured`). Subclasses give
    ``ctx`` (the :class:`RunContext`) and implement :meth:`describe` and :meth:`train`;
    :meth:`extra` adds fields of a :class:`ModelRecord` subclass."""

    record_type = ModelRecord
    filename = ""

    def save(self, model):
        return [save_model(model, os.path.join(self.ctx.out, self.filename))]

    def measure(self, model, paths):
        return self.record_type(row=self.ctx.measured(self.name, model, paths), **self.extra(model))

    def extra(self, model):
        """Fields of :attr:`record_type` beyond ``row``."""
        return {}

    def load(self, record):
        return load_model(os.path.join(self.ctx.out, record.row["file"]))
