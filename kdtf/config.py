"""The settings of ``scripts/distill.py``: one dataclass, checked once before TensorFlow
loads.

Every field is a flag (``--teacher-epochs`` for ``teacher_epochs``) and a YAML key.
:meth:`DistillConfig.validate` checks values, names (against :mod:`kdtf.catalog`) and
files in pure Python, the compression steps through their own registry
(:func:`kdtf.compress.forms.parse_steps`, pure Python too); what needs TensorFlow (whether
a term fits the models, the data) is checked by the pipeline before its first write.
"""

import dataclasses
import os
import time

from kdtf import catalog, validation
from kdtf.compress.base import StepDefaults
from kdtf.compress.forms import parse_steps
from kdtf.defaults import AUTO, DEFAULT_TEACHER_EPOCHS
from kdtf.spec import DistillSpec, TrainingSettings
from kdtf.view_options import check_views_option, is_views_option

__all__ = ["RunConfig", "DistillConfig", "ByolConfig", "is_model_file", "run_slug", "DEMO_LABELS"]

DEMO_LABELS = 500  # labels kept on the bundled demo sets unless --labels says otherwise


def run_slug(dataset):
    """A data set spec as a folder name: ``folder:/data/photos`` -> ``folder-photos``,
    ``tfds:cifar10:3.0.2`` -> ``tfds-cifar10-3.0.2``; no colon, slash or space."""
    kind, _, rest = dataset.partition(":")
    if kind == "folder":
        rest = os.path.basename(os.path.normpath(os.path.expanduser(rest))) or "root"
    text = f"{kind}-{rest}" if rest else kind
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)
    return "-".join(part for part in slug.split("-") if part) or "data"


def is_model_file(name):
    """True for a model file path (``.keras`` or ``.h5``) rather than a zoo name."""
    return isinstance(name, str) and name.endswith((".keras", ".h5"))


def _check_data_spec(spec, flag, what):
    prefix, sep, rest = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if spec in catalog.DATASETS:
        return
    if not (sep and prefix in catalog.DATA_PREFIXES and rest):
        raise ValueError(f"Unknown data set spec {spec!r} ({flag}). Known: {', '.join(catalog.data_specs())}")
    if prefix == "folder" and not os.path.isdir(rest):
        raise ValueError(f"{what} not found: {rest!r} ({flag} {spec}).")


@dataclasses.dataclass
class RunConfig:
    """What both pipelines' settings share (``scripts/distill.py``, ``scripts/byol.py``).

    Subclasses list their own fields, and extend :attr:`POSITIVE`, :attr:`NON_NEGATIVE`
    and :attr:`RATES` with the names :meth:`validate` checks as such.
    """

    POSITIVE = ("prune_epochs", "qat_epochs", "batch_size")
    NON_NEGATIVE = ("latency_runs",)  # 0: no latency timing (and no TFLite export of Keras stages for it)
    RATES = ("learning_rate",)

    dataset: str = "mnist5k"
    seed: int = 0
    prune_epochs: int = 4
    qat_epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    l1: float = 0.0
    clip_norm: float = None
    sparsity: float = 0.75
    qat: bool = True
    output: str = ""
    cache_dir: str = "saved_models/cache"
    latency_runs: int = 200
    verbose: int = -1

    def compression_steps(self):
        """The compression steps, as a ``--compress`` string: ``--compress`` itself, else
        its default ``prune:<--sparsity>[,qat]`` (``qat`` unless ``--no-qat``). The two
        shortcuts only shape that default: :meth:`validate` refuses them beside
        ``--compress``, naming the equivalent string."""
        if self.compress:
            return self.compress
        return f"prune:{self.sparsity}" + (",qat" if self.qat else "")

    def step_defaults(self):
        """What the steps' strings leave open: :class:`kdtf.compress.base.StepDefaults`
        (``--prune-epochs``, ``--qat-epochs``, ``--prune-min-weights``)."""
        return StepDefaults(epochs=self.prune_epochs, qat_epochs=self.qat_epochs, min_weights=self.prune_min_weights)

    def _check_compression(self):
        """``--compress`` against its shortcuts, then every step's value and place."""
        default_sparsity = type(self).__dataclass_fields__["sparsity"].default
        if self.compress and (self.sparsity != default_sparsity or not self.qat):
            parts = [p.strip() for p in self.compress.split(",") if self.qat or p.strip() != "qat"]
            if self.sparsity != default_sparsity:
                pruning = [i for i, p in enumerate(parts) if p.partition(":")[0] == "prune"]
                if pruning:
                    parts[pruning[0]] = f"prune:{self.sparsity}"
                else:
                    parts.insert(len(parts) - (parts[-1:] == ["qat"]), f"prune:{self.sparsity}")
            given = " and ".join(flag for flag, on in (
                (f"--sparsity {self.sparsity}", self.sparsity != default_sparsity), ("--no-qat", not self.qat)) if on)
            raise ValueError(f"{given} only set{'s' if ' and ' not in given else ''} the default steps; with --compress {self.compress!r} they would be "
                             f"ignored. Say it in the steps instead: --compress {','.join(parts)!r}")
        validation.integer("prune_min_weights", self.prune_min_weights, 0, what="an integer >= 0")
        return parse_steps(self.compression_steps())

    def training_settings(self):
        """The :class:`kdtf.spec.TrainingSettings` every stage builds its optimizer from."""
        return TrainingSettings.from_config(self)

    def validate(self):
        """Raises ValueError naming the first bad setting; returns ``self``."""
        for name in self.POSITIVE:
            validation.integer(name, getattr(self, name), 1, what="a positive integer")
        for name in self.NON_NEGATIVE:
            validation.integer(name, getattr(self, name), 0, what="an integer >= 0")
        for name in self.RATES:
            validation.number(name, getattr(self, name), 0, low_open=True)
        validation.number("sparsity", self.sparsity, 0, 1, high_open=True)
        recipe = self.training_settings()
        for flag, epochs in self.warmed_up_epochs().items():
            recipe.check_epochs(epochs, flag)
        _check_data_spec(self.dataset, "--dataset", "Image folder")
        self._check_compression()
        return self

    def warmed_up_epochs(self):
        """``{flag: epochs}`` of the stages that start with the warm-up (each must be
        longer than it)."""
        return {}


@dataclasses.dataclass
class DistillConfig(RunConfig):
    """Settings of a distillation run. Every field is a flag of ``scripts/distill.py``."""

    POSITIVE = RunConfig.POSITIVE + ("epochs",)
    NON_NEGATIVE = RunConfig.NON_NEGATIVE + ("teacher_epochs", "image_size", "unfreeze_layers", "finetune_epochs", "progressive_epochs", "mutual")
    RATES = ("learning_rate", "finetune_learning_rate")
    # Fields added after run folders were first written: resuming a folder whose args.yaml
    # lacks one gives it the value that keeps the behaviour it was started with.
    FIELDS_ADDED = {"teacher_augment": lambda saved: saved.get("augment", "")}  # the teacher saw --augment

    data_dir: str = ""
    image_size: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    augment: str = ""
    teacher_augment: str = AUTO  # kdtf.teacher_defaults: flip,crop for a teacher trained from scratch above 28 px
    transfer_set: str = ""
    target_set: str = ""
    teacher: str = AUTO  # kdtf.defaults: teacher_cnn/student_cnn up to 28 px, photo_teacher/photo_student above
    student: str = AUTO
    teacher_weights: str = ""
    student_weights: str = ""
    unfreeze_layers: int = 30
    finetune_epochs: int = 3
    teacher_epochs: int = 0  # auto (kdtf.teacher_defaults): 12, or at least 480 optimizer steps on photos
    epochs: int = 20
    finetune_learning_rate: float = 3e-4
    temperature: float = 4.0
    alpha: float = 0.5
    labels: int = None
    distill: str = "kd"
    compress: str = ""
    prune_min_weights: int = 1000
    cache_teacher: str = "auto"
    strategy: str = "default"
    unsafe_load: bool = False
    allow_weak_teacher: bool = False
    allow_collapse: bool = False
    progressive_epochs: int = 0
    ptq: str = ""
    ptq_mixed: bool = False
    ptq_max_drop: float = 0.01
    mutual: int = 0
    mutual_teacher: bool = False

    def warmed_up_epochs(self):
        return {"--teacher-epochs": self.teacher_epochs or DEFAULT_TEACHER_EPOCHS, "--epochs": self.epochs}

    def validate(self):
        """Raises ValueError naming the first bad setting; returns ``self``."""
        super().validate()
        if self.labels is not None:
            validation.integer("labels", self.labels, 0, what="an integer >= 0 (0 keeps every label)")
        for name in ("val_fraction", "test_fraction"):  # where the split is drawn from the data (no val/test folder)
            validation.number(name, getattr(self, name), 0, 0.5, low_open=True, high_open=True)
        if 0 < self.image_size < 8:
            raise ValueError(f"Expected an image size of at least 8 pixels (or 0: the data set's own). Received: image_size={self.image_size}")
        spec = self.spec()
        unknown = [t.loss for t in spec.terms if t.loss not in catalog.TERMS]
        if unknown:
            raise ValueError(f"Unknown distillation term {unknown[0]!r} (--distill). Known: {', '.join(catalog.TERMS)}")
        if self.transfer_set:
            _check_data_spec(self.transfer_set, "--transfer-set", "Transfer-set folder")
        if self.target_set:
            _check_data_spec(self.target_set, "--target-set", "Target-set folder")
        if any(t.loss in ("mmd", "coral") for t in spec.terms) != bool(self.target_set):
            raise ValueError("The alignment terms (mmd, coral) and --target-set go together: pass both or neither. "
                             f"Received: --distill {self.distill!r}, --target-set {self.target_set!r}")
        if self.target_set and {"mixup", "cutmix"} & set(catalog.parse_augment(self.augment)):
            raise ValueError(f"--target-set marks target images by their sparse label, which --augment {self.augment} "
                             "turns into mixed one-hot rows: drop mixup/cutmix.")
        self._validate_pipeline()
        self._validate_models()
        if self.mutual == 1 or (self.mutual_teacher and not self.mutual):
            raise ValueError(f"Expected --mutual 0 (off) or at least 2 peers (--mutual-teacher needs it). Received: --mutual {self.mutual}")
        return self

    def _validate_pipeline(self):
        augment = catalog.parse_augment(self.augment)
        if self.teacher_augment != AUTO:  # the teacher's loss and validation labels follow --augment's
            mixing = {"mixup", "cutmix"}
            if bool(mixing & set(catalog.parse_augment(self.teacher_augment))) != bool(mixing & set(augment)):
                raise ValueError(f"--teacher-augment {self.teacher_augment!r} and --augment {self.augment!r} must both mix labels "
                                 "(mixup, cutmix) or neither: the teacher's loss and validation labels follow --augment.")
        if self.strategy not in catalog.STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r} (--strategy). Known: {', '.join(catalog.STRATEGIES)}")
        if is_views_option(self.cache_teacher):  # issue 25: a view store (kdtf/view_options.py)
            check_views_option(self.cache_teacher, self.augment)
        else:
            validation.one_of("cache_teacher (--cache-teacher)", self.cache_teacher, ("auto", "on", "off", "views:K[:TOPK]"))
        if self.ptq:
            validation.one_of("post-training quantization (--ptq)", self.ptq, catalog.PTQ_MODES)
            steps = self.compression_steps()
            if any(step.learns_int8_ranges for step in parse_steps(steps)):
                fix = "add --no-qat" if not self.compress else "--compress " + repr(",".join(
                    p.strip() for p in steps.split(",") if p.strip() != "qat"))
                raise ValueError(f"--ptq {self.ptq} quantizes the float model after training, but the steps {steps!r} "
                                 f"end in quantization-aware training: {fix}.")
        validation.number("ptq_max_drop", self.ptq_max_drop, 0, 1)
        if self.cache_teacher == "on" and augment:
            raise ValueError(
                f"--cache-teacher on needs a deterministic input pipeline, but --augment {self.augment} is on: "
                "the teacher must run on each augmented batch. Use --cache-teacher auto/off or drop --augment."
            )

    def _validate_models(self):
        known = catalog.MODELS + catalog.BACKBONES
        if is_model_file(self.teacher):
            if not os.path.isfile(self.teacher):
                raise ValueError(f"Teacher model file not found: {self.teacher!r} (--teacher).")
            if self.teacher_weights:
                raise ValueError("--teacher-weights is for backbone names; a --teacher model file already holds its weights.")
        for name in ("teacher", "student"):
            model, weights = getattr(self, name), getattr(self, f"{name}_weights")
            if name == "teacher" and is_model_file(model):
                continue
            if model == AUTO and weights:
                raise ValueError(f"--{name}-weights is for backbones ({', '.join(catalog.BACKBONES)}): name one with --{name} "
                                 f"(the default {name} trains from scratch). Received: {name}_weights={weights!r}")
            if model == AUTO:
                continue
            if model not in known:
                raise ValueError(f"Unknown {name} model {model!r} (--{name}). Known: {', '.join(known)}")
            if weights and model not in catalog.BACKBONES:
                raise ValueError(
                    f"--{name}-weights is for backbones ({', '.join(catalog.BACKBONES)}); "
                    f"{model!r} trains from scratch. Received: {name}_weights={weights!r}"
                )
            if weights and not os.path.isfile(weights):
                raise ValueError(f"Weights file not found: {weights!r} (--{name}-weights).")

    def labels_kept(self):
        """Training labels to keep: ``--labels`` if given; otherwise 500 on the bundled
        demo sets (the label-scarce regime where a teacher pays) and every label (0) on
        a user's own data."""
        if self.labels is not None:
            return self.labels
        return DEMO_LABELS if self.dataset in catalog.DATASETS else 0

    def spec(self):
        """The run's :class:`kdtf.spec.DistillSpec` (temperature, alpha, terms)."""
        return DistillSpec(temperature=self.temperature, alpha=self.alpha, terms=self.distill)

    def uses_teacher_cache(self):
        """Whether the teachers' outputs are computed once (``--cache-teacher``)."""
        return self.cache_teacher == "on" or (self.cache_teacher == "auto" and not self.augment)

    def default_output(self):
        """``saved_models/<dataset>-<YYYYmmdd-HHMMSS>``: the run folder when none is given."""
        return os.path.join("saved_models", f"{run_slug(self.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")


@dataclasses.dataclass
class ByolConfig(RunConfig):
    """Settings of ``scripts/byol.py``; every field is a flag."""

    POSITIVE = RunConfig.POSITIVE + ("pretrain_epochs", "student_pretrain_epochs", "distill_epochs", "dim",
                                     "labels_per_class", "knn_k")
    RATES = ("learning_rate", "distill_learning_rate")

    teacher: str = "teacher_encoder"
    student: str = "student_encoder"
    dim: int = 128
    pretrain_epochs: int = 30
    student_pretrain_epochs: int = 30
    distill_epochs: int = 20
    prune_epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 2e-3
    distill_learning_rate: float = 1e-3
    sparsity: float = 0.5
    compress: str = ""
    prune_min_weights: int = 1000
    base_tau: float = 0.99
    crop_area: float = 0.5
    flip: bool = False
    labels_per_class: int = 20
    knn_k: int = 5
    latency_runs: int = 100

    def warmed_up_epochs(self):
        return {"--pretrain-epochs": self.pretrain_epochs, "--distill-epochs": self.distill_epochs}

    def validate(self):
        """Raises ValueError naming the first bad setting; returns ``self``."""
        super().validate()
        validation.number("base_tau", self.base_tau, 0, 1)
        validation.number("crop_area", self.crop_area, 0, 1, low_open=True)
        for name in ("teacher", "student"):
            if getattr(self, name) not in catalog.ENCODERS:
                raise ValueError(f"Unknown {name} encoder {getattr(self, name)!r} (--{name}). Known: {', '.join(catalog.ENCODERS)}")
        return self

    def default_output(self):
        """``saved_models/byol-<dataset>-<YYYYmmdd-HHMMSS>``."""
        return os.path.join("saved_models", f"byol-{run_slug(self.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
