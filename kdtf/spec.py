"""The distillation spec: temperature, alpha, terms and teacher weights, validated once.

A :class:`DistillSpec` is built where settings enter kdtf (a config file, the command
line, the arguments of :class:`kdtf.Distiller`) and travels whole to the Distiller,
two-phase fine-tuning and every compression fine-tune; the code behind it trusts it.

Term strings (``--distill`` or YAML): ``"kd:1.0,fitnets:0.5@conv2/conv4"`` means Hinton
KD with weight 1 and a FitNets hint with weight 0.5 from the student's ``conv2`` to the
teacher's ``conv4``: ``name:weight@student_layer/teacher_layer#teacher_index``, every
part after the name optional. YAML may also give a list of mappings with the fields of
:class:`TermSpec`.

Pure Python: whether a term name exists, and what it needs, is checked when the term is
built (:func:`kdtf.terms.build_terms`), where the registry lives.
"""

import dataclasses

from kdtf import validation

__all__ = ["DistillSpec", "TermSpec", "parse_terms"]


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


def _parse_one(text):
    text = text.strip()
    head, _, teacher = text.partition("#")
    head, _, layers = head.partition("@")
    name, _, weight = head.partition(":")
    student_layer, _, teacher_layer = layers.partition("/")
    try:
        weight = float(weight) if weight else 1.0
        teacher = int(teacher) if teacher else 0
    except ValueError:
        raise ValueError(f"Bad distillation term {text!r}: expected name:weight@student_layer/teacher_layer#teacher") from None
    return TermSpec(name.strip(), weight, student_layer or None, teacher_layer or None, teacher)


def _from_item(item):
    if isinstance(item, TermSpec):
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
    raise ValueError(f"Expected a distillation term (string, dict or TermSpec). Received: {item!r}")


def parse_terms(spec):
    """Terms from a spec string, a list of strings/dicts/TermSpecs, or None (Hinton KD)."""
    if spec is None:
        return (TermSpec("kd"),)
    items = [spec] if isinstance(spec, (str, TermSpec, dict)) else list(spec)
    terms = tuple(term for item in items for term in _from_item(item))
    if not terms:
        raise ValueError("Expected at least one distillation term.")
    return terms


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
            "terms": [dataclasses.asdict(term) for term in self.terms],
            "teacher_weights": None if self.teacher_weights is None else list(self.teacher_weights),
        }

    def describe(self):
        """One line for logs: ``T=4.0, alpha=0.5, terms kd``."""
        names = ",".join(t.loss + (f":{t.weight:g}" if t.weight != 1 else "") for t in self.terms)
        return f"T={self.temperature:g}, alpha={self.alpha:g}, terms {names}"
