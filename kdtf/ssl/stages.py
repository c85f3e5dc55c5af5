"""The stages of the BYOL chain (:mod:`kdtf.ssl.pipeline`), run by the same
:class:`kdtf.stages.StageRunner` as the distillation chain.

random encoder (evaluated only) -> BYOL teacher -> BYOL student from scratch (the
baseline) -> teacher embeddings stored with the data -> distilled student (label-free,
from the scratch student's initial weights) -> compression -> int8 TFLite embedding
model; every encoder is evaluated with few labels (linear probe and k-NN).
"""

import dataclasses
import os

import numpy as np

from kdtf import compress, export
from kdtf._keras import keras, tf
from kdtf.cli import keras_verbosity
from kdtf.data import outputs_and_labels
from kdtf.data.augment import byol_views
from kdtf.distiller import Distiller
from kdtf.io import gzip_size
from kdtf.models import ENCODERS
from kdtf.optim import add_kernel_regularization, build_optimizer
from kdtf.report import per_image
from kdtf.runstate import StepCheckpoint
from kdtf.saving import load_model, save_model
from kdtf.spec import DistillSpec
from kdtf.ssl.byol import BYOL
from kdtf.ssl.probe import embed, probe
from kdtf.stages import Record, Stage
from kdtf.stages.teacher_outputs import TeacherOutputsRecord
from kdtf.training import FineTuner

__all__ = ["SPEC", "ByolContext", "EncoderRecord", "RandomEncoderStage", "PretrainStage", "EmbeddingStoreStage",
           "EmbeddingDistillStage", "EncoderCompressStage", "EncoderExportStage"]

SPEC = DistillSpec(alpha=0.0, terms="embedding")  # label-free: match the teacher's embedding


@dataclasses.dataclass
class ByolContext:
    """What the stages of one BYOL run share: settings, data, run folder and state, the
    positions of the few labels of the evaluation, the log."""

    config: object
    data: object
    out: str
    state: object
    labelled: np.ndarray
    log: object = print

    @property
    def examples(self):  # training images (their labels are not used until the evaluation)
        return self.data.size("train")

    @property
    def steps(self):
        return int(np.ceil(self.examples / self.config.batch_size))

    @property
    def verbose(self):
        return keras_verbosity(self.config.verbose)

    def encoder(self, name, seed_offset):
        """The ``config.teacher`` or ``config.student`` encoder with the initial weights of
        seed + ``seed_offset``."""
        config = self.config
        keras.utils.set_random_seed(config.seed + seed_offset)
        encoder = ENCODERS[getattr(config, name)](self.data.input_shape, dim=config.dim, name=name)
        return add_kernel_regularization(encoder, *config.training_settings().kernel_penalties)

    def optimizer(self, epochs, steps, learning_rate, warmup=True):
        """An optimizer of the run's training recipe for ``epochs`` of ``steps`` batches."""
        training = self.config.training_settings()
        if not warmup:
            training = dataclasses.replace(training, warmup_epochs=0)
        return build_optimizer(training, steps, epochs, learning_rate=learning_rate)

    def evaluate(self, label, embed_fn, params, path=None, measured_on="keras", test=None):
        """Linear-probe and k-NN accuracy of an encoder with few labels, as its row of the
        report. ``test``: the test embeddings and labels when already computed."""
        data, batch = self.data, self.config.batch_size  # the training batch: no more activation memory than training
        train_emb, train_y = outputs_and_labels(embed_fn, data.dataset("train", batch, positions=self.labelled))
        test_emb, test_y = test if test is not None else outputs_and_labels(embed_fn, data.dataset("test", batch))
        result = probe(train_emb, train_y, test_emb, test_y, self.config.knn_k)
        row = {"encoder": label, **result, "params": int(params), "measured_on": measured_on}
        if path:
            row.update(file=os.path.basename(path), size_bytes=os.path.getsize(path), gzip_bytes=gzip_size(path))
        self.log(f"eval {label}: linear probe {result['linear_probe']:.4f}, k-NN {result['knn']:.4f}")
        return row


@dataclasses.dataclass
class EncoderRecord(Record):
    """An encoder's row of the report (``eval``) and, for a trained one, its loss per
    epoch under the stage's name."""

    eval: dict
    stage: str = ""
    losses: list = None

    def report_sections(self):
        sections = {"encoders": [self.eval]}
        if self.losses is not None:
            sections["byol_loss"] = {self.stage: self.losses}
        return sections


@dataclasses.dataclass
class RandomEncoderStage(Stage):
    """The teacher's architecture with random weights, evaluated: the floor."""

    ctx: ByolContext
    name = "random-encoder"
    timing = ""
    record_type = EncoderRecord

    def describe(self):
        return f"{self.ctx.config.teacher} with random weights, evaluated only"

    def train(self, callbacks):
        return self.ctx.encoder("teacher", 0)

    def measure(self, model, paths):
        return EncoderRecord(self.ctx.evaluate("random (teacher arch.)", lambda v: embed(model, v), model.count_params()))


class _EncoderStage(Stage):
    """A stage that trains one encoder (:meth:`fit`), saves it as :attr:`filename` and
    evaluates it with few labels under :attr:`label`."""

    record_type = EncoderRecord
    label = filename = ""

    def train(self, callbacks):
        model = self.build()
        self.losses = self.fit(model, callbacks)
        return model

    def save(self, model):
        return [save_model(model, os.path.join(self.ctx.out, self.filename))]

    def measure(self, model, paths):
        row = self.ctx.evaluate(self.label, lambda v: embed(model, v), model.count_params(), paths[0])
        return EncoderRecord(row, self.name, self.losses)

    def load(self, record):
        return load_model(os.path.join(self.ctx.out, self.filename))


@dataclasses.dataclass
class PretrainStage(_EncoderStage):
    """BYOL pretraining of the ``role`` (``"teacher"`` or ``"student"``) encoder from
    the initial weights of seed + ``seed_offset``, for ``epochs``; recorded as ``name``,
    evaluated as ``label``, saved as ``filename``, timed as ``timing``."""

    ctx: ByolContext
    role: str
    seed_offset: int
    epochs: int
    name: str = ""
    label: str = ""
    filename: str = ""
    timing: str = ""

    def describe(self):
        return f"BYOL pretraining of {getattr(self.ctx.config, self.role)} for {self.epochs} epochs"

    def build(self):
        return self.ctx.encoder(self.role, self.seed_offset)

    def fit(self, encoder, callbacks):
        ctx, config = self.ctx, self.ctx.config
        byol = BYOL(encoder, base_tau=config.base_tau)
        byol.compile(ctx.optimizer(self.epochs, max(1, ctx.examples // config.batch_size), config.learning_rate))  # full batches
        views = byol_views(ctx.data, config.batch_size, seed=config.seed, crop_area=(config.crop_area, 1.0), flip=config.flip)
        return byol.fit(views, epochs=self.epochs, verbose=ctx.verbose, callbacks=callbacks).history["loss"]


@dataclasses.dataclass
class EmbeddingStoreStage(Stage):
    """The teacher's embeddings computed once and stored with the (unaugmented) training
    data: the product is the label-free distillation pipeline."""

    ctx: ByolContext
    teacher: PretrainStage
    name = "teacher-outputs"
    timing = "teacher_cache_s"
    record_type = TeacherOutputsRecord

    def describe(self):
        return "the teacher's embeddings computed once and stored with the training data"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        distiller = Distiller(ctx.encoder("student", 1), self.teacher.product, SPEC)
        return distiller.cached_dataset(ctx.data, batch_size=config.batch_size, seed=config.seed, labels=False,
                                        cache_dir=config.cache_dir)

    def measure(self, product, paths):
        return TeacherOutputsRecord(stored=True, examples=self.ctx.examples)

    def load(self, record):
        return self.train(callbacks=None)  # read back from cache_dir


@dataclasses.dataclass
class EmbeddingDistillStage(_EncoderStage):
    """The student encoder, from the BYOL student's initial weights, distilled from
    the teacher's stored embeddings (``alpha=0``, ``terms="embedding"``)."""

    ctx: ByolContext
    teacher: PretrainStage
    outputs: EmbeddingStoreStage
    name = "distilled"
    label = "distilled student"
    filename = "student_encoder.keras"
    timing = "distill_s"

    def describe(self):
        return f"label-free embedding distillation for {self.ctx.config.distill_epochs} epochs (teacher outputs cached)"

    def build(self):
        return self.ctx.encoder("student", 1)

    def fit(self, student, callbacks):
        ctx, config = self.ctx, self.ctx.config
        distiller = Distiller(student, self.teacher.product, SPEC, name="distill")
        distiller.compile(ctx.optimizer(config.distill_epochs, ctx.steps, config.distill_learning_rate))
        return distiller.fit(self.outputs.product, epochs=config.distill_epochs, verbose=ctx.verbose,
                             callbacks=callbacks).history["loss"]


@dataclasses.dataclass
class EncoderCompressRecord(Record):
    """The compressed encoder's file, each step's result as a record
    (:meth:`kdtf.compress.Results.records`) and the line they describe themselves with."""

    file: str
    compression_steps: list
    compression: str

    def report_sections(self):
        return {"compression_steps": self.compression_steps, "compression": self.compression}


@dataclasses.dataclass
class EncoderCompressStage(Stage):
    """The distilled encoder pruned (and quantization-aware trained), each step
    fine-tuned by embedding distillation from the stored teacher embeddings."""

    ctx: ByolContext
    student: EmbeddingDistillStage
    teacher: PretrainStage
    outputs: EmbeddingStoreStage
    name = "compress"
    timing = "compress_s"
    record_type = EncoderCompressRecord

    def __post_init__(self):
        config = self.ctx.config
        self.recipe = compress.Recipe.parse(config.compression_steps(), config.step_defaults())
        self.step_results = None

    def describe(self):
        return f"{self.recipe.describe()}, each fine-tuned by embedding distillation"

    def results(self):
        """The steps' :class:`kdtf.compress.Results`, restored from the stage's record."""
        return self.recipe.restore(self.record.compression_steps)

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        fine_tuner = FineTuner(self.teacher.product, self.outputs.product, spec=SPEC,
                               optimizer=lambda epochs, steps: ctx.optimizer(epochs, steps, config.distill_learning_rate / 3, False),
                               steps_per_epoch=ctx.steps, verbose=ctx.verbose)
        model, self.step_results = self.recipe.run(self.student.product, fine_tuner, log=ctx.log,
                                                   checkpoint=StepCheckpoint(ctx.state, ctx.out))
        return model

    def save(self, model):
        return [save_model(model, os.path.join(self.ctx.out, "student_compressed.keras"))]

    def measure(self, model, paths):
        return EncoderCompressRecord(os.path.basename(paths[0]), self.step_results.records(), self.step_results.describe())

    def load(self, record):
        return load_model(os.path.join(self.ctx.out, record.file))


@dataclasses.dataclass
class EncoderExportRecord(EncoderRecord):
    """The int8 embedding model's row, what was verified in it and how its embeddings
    agree with the Keras model's (cosine)."""

    verified: dict = None
    agreement: dict = None

    def report_sections(self):
        return {**super().report_sections(), "verified_in_tflite": self.verified, "tflite_keras_agreement": self.agreement}


@dataclasses.dataclass
class EncoderExportStage(Stage):
    """The compressed encoder as an int8 TFLite embedding model (float output), its
    embeddings computed and evaluated on LiteRT."""

    ctx: ByolContext
    compressed: EncoderCompressStage
    name = "export"
    timing = "export_s"
    record_type = EncoderExportRecord

    def __post_init__(self):
        self.path = os.path.join(self.ctx.out, "student_encoder_int8.tflite")

    def describe(self):
        return "int8 TFLite embedding model, evaluated on LiteRT"

    def train(self, callbacks):
        compressed = self.compressed
        sources = [compressed.teacher.name, compressed.student.name] + [result.step for result in compressed.results()]
        return export.export_for_android(compressed.product, self.path, splits=self.ctx.data, mode="int8",
                                         output_type=tf.float32, source_stages=sources, output="embedding")

    def save(self, card):
        return [self.path]

    def measure(self, card, paths):
        ctx, config, data, compressed = self.ctx, self.ctx.config, self.ctx.data, self.compressed
        verified = compressed.results().verify(self.path)
        keras_emb, _ = outputs_and_labels(lambda x: embed(compressed.product, x), data.dataset("test", config.batch_size))
        lite_emb, lite_y = outputs_and_labels(lambda x: export.predict(self.path, x), data.dataset("test", config.batch_size))
        cosine = np.sum(keras_emb * lite_emb, -1) / (np.linalg.norm(keras_emb, axis=-1) * np.linalg.norm(lite_emb, axis=-1) + 1e-12)
        agreement = {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}
        timing = export.latency(self.path, num_threads=1, runs=config.latency_runs) if config.latency_runs else None
        last = compressed.record.compression_steps[-1]
        row = ctx.evaluate("compressed student (int8 TFLite)", lambda v: export.predict(self.path, v), last["params"],
                           self.path, "litert", test=(lite_emb, lite_y))
        row.update(sparsity=last.get("sparsity"), latency_ms=timing["median_ms"] if timing else None, keras_agreement=agreement)
        ctx.log(f"stage tflite-int8: LiteRT vs Keras embeddings: mean cosine {agreement['mean_cosine']:.4f} "
                f"(min {agreement['min_cosine']:.4f}); {per_image(timing)}; verified {verified}")
        return EncoderExportRecord(row, verified=verified, agreement=agreement)
