"""Distillation terms: the protocol between a loss and the Distiller.

A term owns what it reads (the student's and a teacher's logits or named layers), its
check against the two models, its learnable adapter where widths differ, and its
computation from teacher outputs, student outputs and labels (after Keras 3's
``keras/src/distillation/distillation_loss.py``). The Distiller only taps the layers the
terms ask for and loops over the terms; it knows none of them by name.

Outputs reach a term as dicts: ``student[None]`` is the student's logits (or output),
``student["conv2"]`` the output of layer ``conv2``; ``teachers[k]`` the same for teacher
``k``.

Adding a distillation loss: its function and ``DistillationLoss`` class in
:mod:`kdtf.losses` (registered there under its name), and one entry in :data:`TERMS`
naming the term class that reads it (usually an existing one).
"""

from kdtf import losses
from kdtf._keras import keras, tf
from kdtf.labels import is_one_hot
from kdtf.losses.response import dkd_loss, mixed_kd_loss
from kdtf.losses.transformer import hidden_adapter
from kdtf.models.vit import block_pairs
from kdtf.taps import find_layer

__all__ = ["Term", "ResponseTerm", "KDTerm", "DKDTerm", "FeatureTerm", "AttentionTransferTerm",
           "RelationTerm", "EmbeddingTerm", "BlockTerm", "AttentionMatrixTerm", "HiddenStateTerm", "TERMS", "names", "build_terms", "reduce_loss"]


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


class Term:
    """One weighted distillation term, built from a :class:`kdtf.spec.TermSpec`.

    Subclasses say what they read (``layers``: ``"required"``, ``"optional"`` or
    ``"never"``), whether a learnable adapter maps the student's feature to the teacher's
    width (``adapts``), and override :meth:`values`.

    Attributes:
        name, weight, teacher: from the spec.
        loss: the registered ``DistillationLoss`` (its options and reduction).
        adapter: the learnable adapter (a Keras layer, or a list of them for block
            terms) or ``None``.
    """

    layers = "optional"
    adapts = False

    def __init__(self, spec, temperature, teacher_weights):
        self.spec, self.name, self.weight, self.teacher = spec, spec.loss, float(spec.weight), spec.teacher
        self.teacher_weights = teacher_weights
        self.loss = losses.get(spec.loss, **self._options(spec, temperature))
        self.adapter = None
        named = bool(spec.student_layer or spec.teacher_layer)
        if self.layers == "required" and not (spec.student_layer and spec.teacher_layer):
            raise ValueError(
                f"The '{self.name}' term compares intermediate features: name them, e.g. "
                f"'{self.name}:0.5@student_layer/teacher_layer' or TermSpec('{self.name}', "
                "student_layer=..., teacher_layer=...)."
            )
        if self.layers == "never" and named:
            raise ValueError(f"The '{self.name}' term reads the models' logits; drop the layer names '@...'.")

    def _options(self, spec, temperature):
        return dict(spec.options)

    def resolve(self, student, teachers):
        """Settles which layers the term reads, once both models (logits views) are known;
        terms that name their layers have nothing to settle."""

    @property
    def student_layers(self):
        """Student layers to tap (names)."""
        return [self.spec.student_layer] if self.spec.student_layer else []

    @property
    def teacher_layers(self):
        """Layers to tap in teacher ``self.teacher``."""
        return [self.spec.teacher_layer] if self.spec.teacher_layer else []

    def check(self, student, teachers):
        """Checks the two models (logits views) and builds the adapter where widths
        differ. Raises ValueError naming the models and what to change."""
        if not 0 <= self.teacher < len(teachers):
            raise ValueError(f"Term '{self.name}' reads teacher {self.teacher}, but {len(teachers)} teacher(s) were given.")
        if not self.adapts:
            return
        s_shape = _feature_shape(student, self.spec.student_layer)
        t_shape = _feature_shape(teachers[self.teacher], self.spec.teacher_layer)
        if s_shape[-1] == t_shape[-1]:  # the student learns the teacher's own space
            return
        where = self.spec.student_layer or "output"
        if len(s_shape) == 3:
            self.adapter = keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{self.name}_{where}")
        else:
            self.adapter = keras.layers.Dense(int(t_shape[-1]), name=f"adapter_{self.name}_{where}")
        self.adapter.build((None,) + s_shape)

    def features(self, teachers, student):
        """``(teacher feature, student feature)`` this term compares, adapter applied."""
        s_feat = student[self.spec.student_layer]
        if self.adapter is not None:
            s_feat = self.adapter(s_feat)
        return teachers[self.teacher][self.spec.teacher_layer], s_feat

    def values(self, teachers, student, labels):
        """Per-example (or per-batch, broadcast) values of the loss."""
        return self.loss.call(*self.features(teachers, student))

    def __call__(self, teachers, student, labels=None, sample_weight=None):
        """The term's value for the batch, reduced as its loss's ``reduction`` says."""
        return reduce_loss(self.values(teachers, student, labels), sample_weight, self.loss.reduction)


class ResponseTerm(Term):
    """Reads the logits of the student and the teacher; both must cover the same classes.
    Uses the spec's temperature unless the term's options set one."""

    layers = "never"

    def _options(self, spec, temperature):
        return dict({"temperature": temperature}, **spec.options)

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


class KDTerm(ResponseTerm):
    """Hinton KD; with several teachers, from their weighted average softened
    distribution (:func:`kdtf.losses.mixed_kd_loss`)."""

    def values(self, teachers, student, labels):
        if len(teachers) == 1:
            return self.loss.call(teachers[0][None], student[None])
        return mixed_kd_loss([t[None] for t in teachers], student[None], self.teacher_weights, self.loss.temperature,
                             self.loss.standardize)


class DKDTerm(ResponseTerm):
    """Decoupled KD; the target class is the label where there is one, else the teacher's
    top-1 (unlabeled examples, one-hot or mixed labels)."""

    def values(self, teachers, student, labels):
        teacher_logits, student_logits = teachers[self.teacher][None], student[None]
        target = tf.argmax(teacher_logits, axis=-1)
        if labels is not None and not is_one_hot(labels, student_logits):
            sparse = tf.cast(tf.reshape(labels, [-1]), tf.int64)
            target = tf.where(sparse >= 0, sparse, target)
        options = self.loss.options
        return dkd_loss(teacher_logits, student_logits, target, options["alpha"], options["beta"], options["temperature"],
                        options["standardize"])


class FeatureTerm(Term):
    """Compares named intermediate features; an adapter (1x1 conv for maps, Dense for
    vectors) maps the student's width to the teacher's (FitNets)."""

    layers = "required"
    adapts = True


class AttentionTransferTerm(FeatureTerm):
    """Spatial attention maps sum over channels, so widths may differ without an adapter."""

    adapts = False


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
        if self.spec.student_layer:
            self.pairs = [(self.spec.student_layer, self.spec.teacher_layer or self.spec.student_layer)]
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
            values.append(self.loss.call(teachers[self.teacher][t_name], s_feat))
        return tf.add_n(values) / len(values)


class AttentionMatrixTerm(BlockTerm):
    """Attention matrices, head by head (head-averaged when head counts differ)."""

    kind = "attention"


class HiddenStateTerm(BlockTerm):
    """Hidden states through one learnable linear adapter per block pair where widths
    differ (:func:`kdtf.losses.hidden_adapter`)."""

    kind = "hidden"

    def check(self, student, teachers):
        super().check(student, teachers)
        adapters = []
        for i, (s_name, t_name) in enumerate(self.pairs):
            s_dim = int(find_layer(student, s_name).output.shape[-1])
            t_dim = int(find_layer(teachers[self.teacher], t_name).output.shape[-1])
            adapters.append(None if s_dim == t_dim else hidden_adapter(s_dim, t_dim, name=f"adapter_hidden_{i}_{s_name}"))
        self.adapter = adapters if any(a is not None for a in adapters) else None


TERMS = {
    "kd": KDTerm,
    "dkd": DKDTerm,
    "dist": ResponseTerm,
    "fitnets": FeatureTerm,
    "at": AttentionTransferTerm,
    "rkd_distance": RelationTerm,
    "rkd_angle": RelationTerm,
    "sp": RelationTerm,
    "embedding": EmbeddingTerm,
    "attention": AttentionMatrixTerm,
    "hidden": HiddenStateTerm,
}


def names():
    """Registered term names."""
    return sorted(TERMS)


def build_terms(spec, num_teachers):
    """The :class:`Term` objects of a :class:`kdtf.spec.DistillSpec` for ``num_teachers``."""
    weights = spec.for_teachers(num_teachers)
    built = []
    for term in spec.terms:
        if term.loss not in TERMS:
            raise ValueError(f"Unknown distillation loss {term.loss!r}. Known: {', '.join(names())}")
        built.append(TERMS[term.loss](term, spec.temperature, weights))
    return built
