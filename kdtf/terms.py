"""Distillation terms: which loss, its weight, which layers it reads, from which teacher.

Spec strings (``--distill`` or YAML): ``"kd:1.0,fitnets:0.5@conv2/conv4"`` means Hinton KD
with weight 1 and a FitNets hint with weight 0.5 from the student's ``conv2`` to the
teacher's ``conv4``. ``name:weight@student_layer/teacher_layer#teacher_index``, every part
after the name optional. YAML may also give a list of mappings with the field names of
:class:`Term`.
"""

import dataclasses

from kdtf import losses

__all__ = ["Term", "parse_terms", "KINDS"]

# what each registered loss reads
KINDS = {
    "kd": "response",
    "dkd": "response",
    "fitnets": "feature",
    "at": "feature",
    "rkd_distance": "relation",
    "rkd_angle": "relation",
    "sp": "relation",
    "embedding": "representation",
}


@dataclasses.dataclass
class Term:
    """One distillation term.

    Attributes:
        loss: a registered loss name (``kdtf.losses.names()``).
        weight: its weight in the distillation sum, >= 0.
        student_layer, teacher_layer: layers read by feature/relation/representation
            terms (default: the models' outputs; feature terms need names).
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
        if self.loss not in KINDS:
            raise ValueError(f"Unknown distillation loss {self.loss!r}. Known: {', '.join(sorted(KINDS))}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or self.weight < 0:
            raise ValueError(f"Expected a weight >= 0 for '{self.loss}'. Received: weight={self.weight!r}")
        if self.kind == "feature" and not (self.student_layer and self.teacher_layer):
            raise ValueError(
                f"The '{self.loss}' term compares intermediate features: name them, e.g. "
                f"'{self.loss}:0.5@student_layer/teacher_layer' or Term('{self.loss}', "
                "student_layer=..., teacher_layer=...)."
            )

    @property
    def kind(self):
        return KINDS[self.loss]

    def make_loss(self):
        return losses.get(self.loss, **self.options)


def _parse_one(text):
    text = text.strip()
    head, _, teacher = text.partition("#")
    head, _, layers = head.partition("@")
    name, _, weight = head.partition(":")
    student_layer, _, teacher_layer = layers.partition("/")
    try:
        return Term(
            name.strip(),
            float(weight) if weight else 1.0,
            student_layer or None,
            teacher_layer or None,
            int(teacher) if teacher else 0,
        )
    except ValueError as error:
        if "could not convert" in str(error) or "invalid literal" in str(error):
            raise ValueError(f"Bad distillation term {text!r}: expected name:weight@student_layer/teacher_layer#teacher") from None
        raise


def parse_terms(spec):
    """Terms from a spec string, a list of strings/dicts/Terms, or None (Hinton KD alone)."""
    if spec is None:
        return [Term("kd")]
    if isinstance(spec, str):
        if not spec.strip():
            raise ValueError("Expected distillation terms like 'kd:1.0,fitnets:0.5@conv2/conv4'. Received an empty string.")
        return [_parse_one(part) for part in spec.split(",")]
    if isinstance(spec, Term):
        return [spec]
    terms = []
    for item in spec:
        if isinstance(item, Term):
            terms.append(item)
        elif isinstance(item, str):
            terms.extend(parse_terms(item))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {f.name for f in dataclasses.fields(Term)})
            if unknown:
                raise ValueError(f"Unknown field(s) {unknown} in distillation term {item}; fields: loss, weight, student_layer, teacher_layer, teacher, options")
            terms.append(Term(**item))
        else:
            raise ValueError(f"Expected a distillation term (string, dict or Term). Received: {item!r}")
    if not terms:
        raise ValueError("Expected at least one distillation term.")
    return terms
