"""Distillation terms: the protocol between a loss and the Distiller, and their registry.

A term owns what it reads (the student's and a teacher's logits or named layers), its
check against the two models, its learnable adapter where widths differ, and its
computation from teacher outputs, student outputs and labels (after Keras 3's
``keras/src/distillation/distillation_loss.py``). The Distiller only taps the layers the
terms ask for and loops over the terms; it knows none of them by name.

Outputs reach a term as dicts: ``student[None]`` is the student's logits (or output),
``student["conv2"]`` the output of layer ``conv2``; ``teachers[k]`` the same for teacher
``k``.

Two ways to bring a term:

* an instance of a :class:`Term` subclass, handed to the Distiller
  (``Distiller(student, teacher, distill=["kd", MyTerm(weight=0.5)])``): no registry;
* a name: ``@register_term("name")`` on the class, in a module of :mod:`kdtf.losses`
  (found there by itself: a new term is one file), or in any module the user imports
  before naming it (``--distill name``, ``DistillSpec(terms="name")``).

This module holds the base class and the generic readers (logits, named features,
relations, embeddings, Transformer blocks); each registered term sits next to its loss
in :mod:`kdtf.losses`.
"""

import copy
import dataclasses
import re

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.models.vit import block_pairs
from kdtf.registry import Registry
from kdtf.taps import find_layer

__all__ = ["Term", "ResponseTerm", "FeatureTerm", "RelationTerm", "EmbeddingTerm", "BlockTerm", "TERMS",
           "register_term", "names", "get", "build_terms", "reduce_loss", "adapter_layers", "serialize_terms", "deserialize_terms", "log_names"]

TERMS = Registry("distillation term", package="kdtf.losses")


def register_term(name):
    """Class decorator: registers a :class:`Term` subclass as ``name`` (what
    ``--distill`` and ``TermSpec`` say); its instances are named so in logs too."""
    def decorator(cls):
        cls.term_name = name
        return TERMS.register(name)(cls)

    return decorator


def names():
    """Registered term names."""
    return TERMS.names()


def get(name):
    """The :class:`Term` subclass registered as ``name``."""
    return TERMS.get(name)


def reduce_loss(values, sample_weight, reduction):
    """Reduces per-example ``values`` as Keras's ``reduction`` says: ``"sum"`` sums the
    weighted values, ``"none"``, ``"auto"`` and ``"sum_over_batch_size"`` average them over
    the batch (the Distiller needs one number per term, so ``"none"`` is averaged too)."""
    values = tf.cast(values, tf.float32)
    if sample_weight is not None:
        values = values * tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(values))
    return tf.reduce_sum(values) if reduction == "sum" else tf.reduce_mean(values)


def _feature_shape(model, layer):
    return tuple((find_layer(model, layer).output if layer else model.outputs[0]).shape[1:])


def _default_name(cls):
    if "term_name" in vars(cls):
        return cls.term_name
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    return name[:-5] if name.endswith("_term") and name != "_term" else name


class Term:
    """One weighted distillation term. Subclass it for a term of your own.

    Subclasses say what they read (``layers``: ``"required"``, ``"optional"`` or
    ``"never"`` named layers), whether a learnable adapter maps the student's feature to
    the teacher's width (``adapts``), which Keras loss computes them (``loss_class``, or
    a ``loss`` given to the constructor), and may override :meth:`values`.

    Args:
        loss: a ``keras.losses.Loss`` (its ``call`` gives per-example values, its
            ``reduction`` is honoured) or a function ``fn(teacher, student) ->
            (batch,)``; default ``loss_class()``, or none when :meth:`values` is
            overridden.
        weight: its weight in the distillation sum, >= 0.
        student_layer, teacher_layer: layers it reads (default: the models' outputs).
        teacher: index of the teacher it reads, for several teachers.
        name: the name in logs (``<name>_loss``); default from the class name
            (``CosineTerm`` -> ``cosine``).

    Attributes:
        adapter: the learnable adapter (a Keras layer, or a list of them for block
            terms) or ``None``; set by :meth:`check`.
    """

    layers = "optional"
    adapts = False
    loss_class = None

    def __init__(self, loss=None, weight=1.0, student_layer=None, teacher_layer=None, teacher=0, name=None):
        self.loss = self.loss_class() if loss is None and self.loss_class is not None else loss
        self.name = name or _default_name(type(self))
        self.weight = float(validation.number(f"the weight of '{self.name}'", weight, 0))
        self.teacher = validation.integer(f"the teacher index of '{self.name}'", teacher, 0)
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        self.teacher_weights = None  # several teachers: set by the Distiller from its spec
        self.adapter = None
        if self.layers == "required" and not (student_layer and teacher_layer):
            raise ValueError(
                f"The '{self.name}' term compares intermediate features: name them, e.g. "
                f"'{self.name}:0.5@student_layer/teacher_layer' or TermSpec('{self.name}', "
                "student_layer=..., teacher_layer=...)."
            )
        if self.layers == "never" and (student_layer or teacher_layer):
            raise ValueError(f"The '{self.name}' term reads the models' logits; drop the layer names '@...'.")

    @classmethod
    def from_spec(cls, spec, temperature):
        """The term a :class:`kdtf.spec.TermSpec` names: its options go to
        ``loss_class`` (or, without one, to the constructor)."""
        where = dict(weight=spec.weight, student_layer=spec.student_layer, teacher_layer=spec.teacher_layer,
                     teacher=spec.teacher, name=spec.loss)
        if cls.loss_class is None:
            return cls(**where, **spec.options)
        return cls(cls.loss_class(**cls.loss_options(spec.options, temperature)), **where)

    @classmethod
    def loss_options(cls, options, temperature):
        """The loss's constructor arguments from a spec's options."""
        return dict(options)

    def get_config(self):
        """Constructor arguments (the loss serialised), for ``Distiller.get_config``."""
        loss = self.loss
        if isinstance(loss, keras.losses.Loss):
            loss = keras.saving.serialize_keras_object(loss)
        return {"loss": loss, "weight": self.weight, "student_layer": self.student_layer,
                "teacher_layer": self.teacher_layer, "teacher": self.teacher, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("loss"), dict):
            config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)

    def resolve(self, student, teachers):
        """Settles which layers the term reads, once both models (logits views) are known;
        terms that name their layers have nothing to settle."""

    @property
    def student_layers(self):
        """Student layers to tap (names)."""
        return [self.student_layer] if self.student_layer else []

    @property
    def teacher_layers(self):
        """Layers to tap in teacher ``self.teacher``."""
        return [self.teacher_layer] if self.teacher_layer else []

    def check(self, student, teachers):
        """Checks the two models (logits views) and builds the adapter where widths
        differ. Raises ValueError naming the models and what to change."""
        if not 0 <= self.teacher < len(teachers):
            raise ValueError(f"Term '{self.name}' reads teacher {self.teacher}, but {len(teachers)} teacher(s) were given.")
        if not self.adapts:
            return
        s_shape = _feature_shape(student, self.student_layer)
        t_shape = _feature_shape(teachers[self.teacher], self.teacher_layer)
        if s_shape[-1] == t_shape[-1]:  # the student learns the teacher's own space
            return
        where = self.student_layer or "output"
        if len(s_shape) == 3:
            self.adapter = keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{self.name}_{where}")
        else:
            self.adapter = keras.layers.Dense(int(t_shape[-1]), name=f"adapter_{self.name}_{where}")
        self.adapter.build((None,) + s_shape)

    def features(self, teachers, student):
        """``(teacher feature, student feature)`` this term compares, adapter applied."""
        s_feat = student[self.student_layer]
        if self.adapter is not None:
            s_feat = self.adapter(s_feat)
        return teachers[self.teacher][self.teacher_layer], s_feat

    def per_example(self, teacher, student):
        """The loss's per-example values (``Loss.call``, or the function itself)."""
        return self.loss.call(teacher, student) if isinstance(self.loss, keras.losses.Loss) else self.loss(teacher, student)

    def values(self, teachers, student, labels):
        """Per-example (or per-batch, broadcast) values of the loss."""
        return self.per_example(*self.features(teachers, student))

    def __call__(self, teachers, student, labels=None, sample_weight=None):
        """The term's value for the batch, reduced as its loss's ``reduction`` says."""
        return reduce_loss(self.values(teachers, student, labels), sample_weight, getattr(self.loss, "reduction", "auto"))


class ResponseTerm(Term):
    """Reads the logits of the student and the teacher; both must cover the same classes.
    Uses the spec's temperature unless the term's options set one."""

    layers = "never"

    @classmethod
    def loss_options(cls, options, temperature):
        return dict({"temperature": temperature}, **options)

    def check(self, student, teachers):
        super().check(student, teachers)
        s_shape = tuple(student.output_shape[1:])
        for teacher in teachers:
            if tuple(teacher.output_shape[1:]) != s_shape:
                raise ValueError(
                    f"Student and teacher output shapes differ: student '{student.name}' outputs "
                    f"{(None,) + s_shape}, teacher '{teacher.name}' outputs "
                    f"{(None,) + tuple(teacher.output_shape[1:])}. Both must produce logits over the "
                    "same classes."
                )


class FeatureTerm(Term):
    """Compares named intermediate features; an adapter (1x1 conv for maps, Dense for
    vectors) maps the student's width to the teacher's (FitNets)."""

    layers = "required"
    adapts = True


class RelationTerm(Term):
    """Compares how the examples of a batch relate (logits or named layers); widths may
    differ, so no adapter."""


class EmbeddingTerm(Term):
    """Label-free: matches the teacher's embedding (its output, or a named layer);
    an adapter only where widths differ, so a same-width student learns the teacher's
    space itself and is the exported embedding model."""

    adapts = True


class BlockTerm(Term):
    """Reads one layer per Transformer block: the attention weights
    ``block{i}_attention_scores`` or the hidden states ``block{i}_output`` of
    :mod:`kdtf.models.vit` models. Without layer names, student block ``i`` reads teacher
    block ``ceil((i + 1) * L_t / L_s) - 1`` (uniform mapping, TinyBERT) and the term is the
    mean over the mapped blocks; ``@student_layer/teacher_layer`` names one pair."""

    kind = None
    adapts = False

    def resolve(self, student, teachers):
        if self.student_layer:
            self.pairs = [(self.student_layer, self.teacher_layer or self.student_layer)]
        else:
            self.pairs = block_pairs(student, teachers[self.teacher] if self.teacher < len(teachers) else teachers[0], self.kind)

    @property
    def student_layers(self):
        return [s for s, _ in self.pairs]

    @property
    def teacher_layers(self):
        return [t for _, t in self.pairs]

    def values(self, teachers, student, labels):
        adapters = self.adapter or [None] * len(self.pairs)
        values = []
        for (s_name, t_name), adapter in zip(self.pairs, adapters):
            s_feat = student[s_name] if adapter is None else adapter(student[s_name])
            values.append(self.per_example(teachers[self.teacher][t_name], s_feat))
        return tf.add_n(values) / len(values)


def _is_term(item):
    return isinstance(item, Term)


def build_terms(spec, num_teachers):
    """The :class:`Term` objects of a :class:`kdtf.spec.DistillSpec` for ``num_teachers``:
    a :class:`kdtf.spec.TermSpec` builds its registered class, a :class:`Term` instance
    is copied (each Distiller holds its own adapters)."""
    weights = spec.for_teachers(num_teachers)
    built = []
    for item in spec.terms:
        if _is_term(item):
            term = copy.copy(item)
        elif isinstance(item.loss, str):
            term = get(item.loss).from_spec(item, spec.temperature)
        else:
            raise ValueError(f"Expected a distillation term name or a kdtf.Term instance. Received: {item!r}")
        term.teacher_weights = weights
        built.append(term)
    return built


def log_names(terms):
    """``<name>_loss`` per term, numbered where a name repeats (``kd_loss``, ``kd2_loss``)."""
    labels = [term.name for term in terms]
    return [f"{n}_loss" if labels.count(n) == 1 else f"{n}{labels[:i].count(n) + 1}_loss" for i, n in enumerate(labels)]


def adapter_layers(terms):
    """The adapter layers of the terms (a term holds one, a list, or ``None``)."""
    for term in terms:
        adapter = term.adapter
        if isinstance(adapter, (list, tuple)):
            yield from (a for a in adapter if a is not None)
        elif adapter is not None:
            yield adapter


def serialize_terms(terms):
    """Plain values for a config: a TermSpec's fields, a :class:`Term` object serialised by
    Keras (to reload it, register its class with
    ``keras.saving.register_keras_serializable`` or pass it in ``custom_objects``)."""
    return [keras.saving.serialize_keras_object(t) if _is_term(t) else dataclasses.asdict(t) for t in terms]


def deserialize_terms(configs, custom_objects=None):
    """The inverse of :func:`serialize_terms` (``None`` stays ``None``: Hinton KD)."""
    if configs is None:
        return None
    return [keras.saving.deserialize_keras_object(c, custom_objects) if isinstance(c, dict) and "class_name" in c else c
            for c in configs]
