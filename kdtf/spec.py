"""The specs a run settles once: what the teacher teaches (:class:`DistillSpec`:
temperature, alpha, terms, teacher weights) and how every stage trains
(:class:`TrainingSettings`: optimizer, schedule, weight decay, L1).

A :class:`DistillSpec` is built where settings enter kdtf (a config file, the command
line, the arguments of :class:`kdtf.Distiller`) and travels whole to the Distiller,
two-phase fine-tuning and every compression fine-tune; the code behind it trusts it.

Term strings (``--distill`` or YAML): ``"kd:1.0,fitnets:0.5@conv2/conv4"`` means Hinton
KD with weight 1 and a FitNets hint with weight 0.5 from the student's ``conv2`` to the
teacher's ``conv4``: ``name:weight@student_layer/teacher_layer#teacher_index``, every
part after the name optional. Options of the loss follow the name after more colons:
``kd:standardize`` (a flag: ``standardize=True``), ``dkd:1:standardize:beta=4``. YAML may also give a list of mappings with the fields of
:class:`TermSpec`.

Terms may also be :class:`kdtf.Term` instances (a user's own term, no registry): they
travel in the spec as they are.

Pure Python: whether a term name exists, and what it needs, is checked when the term is
built (:func:`kdtf.terms.build_terms`), where the registry lives.
"""

import dataclasses

from kdtf import validation

__all__ = ["DistillSpec", "TermSpec", "parse_terms", "TrainingSettings", "TrainingRecipe", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("sgd", "adam", "adamw")
FLAGS = ("standardize",)  # term options written as a bare word: "kd:standardize"
SCHEDULES = ("constant", "cosine", "step")


@dataclasses.dataclass(frozen=True)
class TermSpec:
    """One distillation term as written by the user.

    Attributes:
        loss: a registered term name (``kdtf.terms.names()``).
        weight: its weight in the distillation sum, >= 0.
        student_layer, teacher_layer: layers the term reads (default: the models'
            outputs; feature terms need names, block terms map blocks themselves).
        teacher: index of the teacher it reads, for several teachers.
        options: constructor arguments of the loss (e.g. ``{"alpha": 1, "beta": 8}``).
    """

    loss: str
    weight: float = 1.0
    student_layer: str = None
    teacher_layer: str = None
    teacher: int = 0
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.loss, str) or not self.loss:
            raise ValueError(f"Expected a distillation term name. Received: loss={self.loss!r}")
        validation.number(f"the weight of '{self.loss}'", self.weight, 0)
        validation.integer(f"the teacher index of '{self.loss}'", self.teacher, 0)
        if not isinstance(self.options, dict):
            raise ValueError(f"Expected options of '{self.loss}' as a mapping. Received: options={self.options!r}")


def _option(part, text):
    """``"standardize"`` -> ``("standardize", True)``; ``"beta=2"`` -> ``("beta", 2.0)``."""
    key, sep, value = part.partition("=")
    if not key.isidentifier() or (not sep and key not in FLAGS):
        raise ValueError(f"Bad distillation term {text!r}: expected name:weight:option@student_layer/teacher_layer#teacher "
                         f"(flags: {', '.join(FLAGS)}; other options as key=value)")
    if not sep:
        return key, True
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        return key, float(value)
    except ValueError:
        raise ValueError(f"Bad option {part!r} in distillation term {text!r}: expected a number, true or false") from None


def _parse_one(text):
    text = text.strip()
    head, _, teacher = text.partition("#")
    head, _, layers = head.partition("@")
    name, *parts = head.split(":")  # parts: a weight and/or options ("kd:0.5:standardize")
    student_layer, _, teacher_layer = layers.partition("/")
    weight, options = 1.0, {}
    try:
        for part in (p.strip() for p in parts if p.strip()):
            if part[0].isdigit() or part[0] in ".-+":
                weight = float(part)
            else:
                options.update([_option(part, text)])
        teacher = int(teacher) if teacher else 0
    except ValueError as error:
        if str(error).startswith(("Bad option", "Bad distillation term")):
            raise
        raise ValueError(f"Bad distillation term {text!r}: expected name:weight@student_layer/teacher_layer#teacher") from None
    return TermSpec(name.strip(), weight, student_layer or None, teacher_layer or None, teacher, options)


def _is_term_object(item):
    """A :class:`kdtf.Term` instance (checked by what it does: this module loads no
    TensorFlow, so it cannot import the class)."""
    return callable(getattr(item, "values", None)) and callable(getattr(item, "check", None)) and hasattr(item, "weight")


def _from_item(item):
    if isinstance(item, TermSpec) or _is_term_object(item):
        return [item]
    if isinstance(item, str):
        if not item.strip():
            raise ValueError("Expected distillation terms like 'kd:1.0,fitnets:0.5@conv2/conv4'. Received an empty string.")
        return [_parse_one(part) for part in item.split(",")]
    if isinstance(item, dict):
        fields = {f.name for f in dataclasses.fields(TermSpec)}
        unknown = sorted(set(item) - fields)
        if unknown:
            raise ValueError(f"Unknown field(s) {unknown} in distillation term {item}; fields: {', '.join(sorted(fields))}")
        return [TermSpec(**item)]
    raise ValueError(f"Expected a distillation term (string, dict, TermSpec or kdtf.Term instance). Received: {item!r}")


def parse_terms(spec):
    """Terms from a spec string, a list of strings/dicts/TermSpecs, or None (Hinton KD)."""
    if spec is None:
        return (TermSpec("kd"),)
    items = [spec] if isinstance(spec, (str, TermSpec, dict)) or _is_term_object(spec) else list(spec)
    terms = tuple(term for item in items for term in _from_item(item))
    if not terms:
        raise ValueError("Expected at least one distillation term.")
    return terms


def _term_name(term):
    return term.loss if isinstance(term, TermSpec) else term.name


def _term_config(term):
    """A TermSpec's fields; a Term object's class and ``get_config()`` (Keras's layout)."""
    if isinstance(term, TermSpec):
        return dataclasses.asdict(term)
    return {"module": type(term).__module__, "class_name": type(term).__qualname__, "config": term.get_config()}


@dataclasses.dataclass(frozen=True)
class DistillSpec:
    """What the teacher teaches and how strongly.

    ``loss = alpha * CE(y, student) + (1 - alpha) * sum_i w_i L_i(teacher, student)``;
    response terms (``kd``, ``dkd``) use ``temperature`` unless their options set one.

    Attributes:
        temperature: softening temperature ``T > 0``.
        alpha: weight of the student's cross-entropy, in ``[0, 1]``.
        terms: the distillation terms (spec string, list, or parsed :class:`TermSpec`s).
        teacher_weights: one non-negative weight per teacher, or ``None`` (equal).
    """

    temperature: float = 4.0
    alpha: float = 0.5
    terms: tuple = "kd"
    teacher_weights: tuple = None

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "temperature", validation.number("temperature", self.temperature, 0, low_open=True))
        set_(self, "alpha", validation.number("alpha", self.alpha, 0, 1))
        set_(self, "terms", parse_terms(self.terms))
        if self.teacher_weights is not None:
            weights = list(self.teacher_weights)
            validation.weights("teacher_weights", weights, len(weights))
            set_(self, "teacher_weights", tuple(float(w) for w in weights))

    @classmethod
    def settle(cls, spec=None, **fields):
        """``spec`` as given, or one built from the fields that are not ``None`` (what
        :class:`kdtf.Distiller` takes); both at once is refused."""
        given = {k: v for k, v in fields.items() if v is not None}
        if spec is None:
            return cls(**given)
        if given:
            raise ValueError(f"Pass either spec= or its fields ({', '.join(sorted(given))}), not both.")
        if not isinstance(spec, cls):
            raise ValueError(f"Expected spec to be a kdtf.DistillSpec. Received: spec={spec!r}")
        return spec

    def for_teachers(self, count):
        """Normalised teacher weights for ``count`` teachers (checks the count)."""
        if self.teacher_weights is None:
            return [1.0 / count] * count
        return validation.weights("teacher_weights", self.teacher_weights, count)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_config(self):
        """Plain values (YAML/JSON): the inverse of ``DistillSpec(**config)``."""
        return {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "terms": [_term_config(term) for term in self.terms],
            "teacher_weights": None if self.teacher_weights is None else list(self.teacher_weights),
        }

    def describe(self):
        """One line for logs: ``T=4.0, alpha=0.5, terms kd``."""
        def options(t):
            items = t.options.items() if isinstance(t, TermSpec) else ()
            return "".join(f":{k}" if v is True else f":{k}={v}" for k, v in items)

        names = ",".join(_term_name(t) + (f":{t.weight:g}" if t.weight != 1 else "") + options(t) for t in self.terms)
        return f"T={self.temperature:g}, alpha={self.alpha:g}, terms {names}"


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """The optimizer settings shared by every stage; validated when built.

    Field names are the config keys (the flags with ``-`` for ``_``).

    Attributes:
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"``.
        learning_rate: peak learning rate (after warm-up), > 0.
        momentum: SGD momentum in [0, 1); ignored by Adam/AdamW.
        weight_decay: >= 0; L2 in the loss for sgd/adam, decoupled for adamw (see the
            module docstring).
        lr_schedule: ``"constant"``, ``"cosine"`` (to 0 at the end of training) or
            ``"step"`` (times ``gamma`` at each of ``milestones``).
        warmup_epochs: epochs of linear warm-up from ``learning_rate / warmup_steps``
            to ``learning_rate``; must be fewer than the stage's epochs.
        l1: >= 0, L1 kernel regularisation added to the loss.
        milestones: for ``"step"``: fractions of the stage's training steps, increasing,
            in (0, 1).
        gamma: for ``"step"``: factor in (0, 1] applied at each milestone.
        clip_norm: clip the global gradient norm to this value; ``0``: off; ``None``
            (default): 1.0 for ``"sgd"``, off for Adam/AdamW. Plain SGD's step grows
            with the gradient, and a distillation term at temperature ``T`` scales the
            gradient on the logits by up to ``T`` (``T^2`` KL: ``T (p_s - p_t)``); at
            SGD 0.1 / momentum 0.9 a student without BatchNormalization died in its
            first steps (every ReLU off, one class for every input). Adam normalises
            the step and needs no clip.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    l1: float = 0.0
    milestones: tuple = (0.5, 0.75)
    gamma: float = 0.1
    clip_norm: float = None

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        validation.check(self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}", "--optimizer", self.optimizer)
        validation.check(self.lr_schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}", "--lr-schedule", self.lr_schedule)
        validation.check(validation.is_number(self.learning_rate) and self.learning_rate > 0, "a learning rate > 0", "--lr", self.learning_rate)
        validation.check(validation.is_number(self.momentum) and 0 <= self.momentum < 1, "momentum in [0, 1)", "--momentum", self.momentum)
        validation.check(validation.is_number(self.weight_decay) and self.weight_decay >= 0, "weight decay >= 0", "--weight-decay", self.weight_decay)
        validation.check(validation.is_number(self.l1) and self.l1 >= 0, "an L1 factor >= 0", "--l1", self.l1)
        warmup = self.warmup_epochs
        validation.check(isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0,
               "an integer number of warm-up epochs >= 0", "--warmup-epochs", warmup)
        fractions = self.milestones
        validation.check(all(validation.is_number(m) and 0 < m < 1 for m in fractions) and list(fractions) == sorted(set(fractions)),
               "increasing milestones in (0, 1)", "milestones", fractions)
        validation.check(validation.is_number(self.gamma) and 0 < self.gamma <= 1, "gamma in (0, 1]", "gamma", self.gamma)
        validation.check(self.clip_norm is None or (validation.is_number(self.clip_norm) and self.clip_norm >= 0),
                         "a gradient-norm clip >= 0 (0: off)", "--clip-norm", self.clip_norm)

    @property
    def global_clipnorm(self):
        """The clip the optimizer gets: ``clip_norm``, or 1.0 for SGD when unset; ``None``: off."""
        clip = (1.0 if self.optimizer == "sgd" else 0.0) if self.clip_norm is None else float(self.clip_norm)
        return clip or None

    @classmethod
    def from_config(cls, config, **overrides):
        """The recipe from any object (a ``DistillConfig``, argparse namespace) holding
        some of the fields as attributes; missing ones keep their defaults."""
        names = [field.name for field in dataclasses.fields(cls)]
        values = {name: getattr(config, name) for name in names if hasattr(config, name)}
        return cls(**dict(values, **overrides))

    @property
    def kernel_penalties(self):
        """``(l1, l2)`` for :func:`add_kernel_regularization`: ``l2 = weight_decay / 2``
        for sgd/adam (gradient ``+ weight_decay * w``), 0 for adamw (decoupled)."""
        l2 = 0.0 if self.optimizer == "adamw" else self.weight_decay / 2
        return self.l1, l2

    def check_epochs(self, epochs, flag="--epochs"):
        """Raises ValueError unless the warm-up is shorter than ``epochs``."""
        validation.check(isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1,
               "a positive number of epochs", flag, epochs)
        if self.warmup_epochs >= epochs:
            raise ValueError(
                f"Expected --warmup-epochs below the {epochs} epochs of {flag}. Received: "
                f"--warmup-epochs {self.warmup_epochs}"
            )


TrainingRecipe = TrainingSettings  # the name before 0.2: "recipe" now means a compression Recipe only
