"""Mutual (online) distillation: two or more students teach each other while they train.

Deep Mutual Learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018, arXiv:1706.00384): no
pretrained teacher; each of ``K`` peers learns from the labels and from the softened
outputs of the others. For student ``k`` with logits ``z_k`` and ``p_k = softmax(z_k / T)``::

    L_k = CE(y, z_k) + w * 1/(K-1) * sum_{l != k} T^2 * KL(stop_gradient(p_l) || p_k)

Beside a frozen teacher (``teacher=...``) the labels share their weight with it, as in
the :class:`kdtf.Distiller`::

    L_k = alpha * CE(y, z_k) + (1 - alpha) * T^2 * KL(p_teacher || p_k) + w * (peer term)

Used like the Distiller::

    mutual = kdtf.MutualDistiller([kdtf.models.student_cnn(), kdtf.models.student_cnn()])
    mutual.compile(optimizer="adam", metrics=["accuracy"])
    mutual.fit(train_ds, validation_data=val_ds, epochs=10)
    mutual.students[0].save("student.keras")       # any peer is a plain tf_keras model
"""

import os

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.callbacks import StopOnNonFiniteLoss
from kdtf.data.teacher_outputs import CACHED_KEY
from kdtf.keras3 import as_tf_keras
from kdtf.labels import cross_entropy, label_mask, masked_mean
from kdtf.losses.response import softmax_kl
from kdtf.taps import logits_view

__all__ = ["MutualDistiller", "mutual_losses"]


def _batch_mean(values, sample_weight):
    if sample_weight is not None:
        values = values * tf.reshape(tf.cast(sample_weight, values.dtype), tf.shape(values))
    return tf.reduce_mean(values)


def mutual_losses(logits, labels=None, *, temperature=1.0, peer_weight=1.0, teacher_logits=None, alpha=0.5,
                  sample_weight=None):
    """Each peer's Deep Mutual Learning loss, from the peers' logits.

    ``L_k = a * CE(y, z_k) + (1 - a) * T^2 * KL(p_t || p_k)
    + w / (K-1) * sum_{l != k} T^2 * KL(stop_gradient(p_l) || p_k)`` with
    ``p = softmax(z / T)``; ``a = 1`` and no teacher term when ``teacher_logits`` is
    ``None`` (Zhang et al., "Deep Mutual Learning", CVPR 2018, arXiv:1706.00384).

    The cross-entropy averages over the labelled rows only (label ``-1`` or an all-zero
    one-hot row marks an unlabeled example; 0 when none is labelled), the KL terms over
    every row. Peer ``l``'s distribution enters ``L_k`` under ``tf.stop_gradient``, so
    ``sum_k L_k`` gives each peer the gradient of its own loss only.

    Args:
        logits: list of ``K >= 2`` ``(batch, classes)`` logits, one per peer.
        labels: sparse or one-hot labels, or ``None`` (peer terms only).
        temperature: ``T > 0`` of the peer (and teacher) KL.
        peer_weight: ``w >= 0``.
        teacher_logits: a frozen teacher's logits, or ``None``.
        alpha: weight of the cross-entropy beside a teacher, in ``[0, 1]``.
        sample_weight: optional ``(batch,)`` weights.

    Returns:
        A list of ``K`` dicts with scalar ``loss``, ``ce``, ``peer_kl`` (and
        ``teacher_kl`` beside a teacher).
    """
    count = len(logits)
    frozen = [tf.stop_gradient(tf.cast(z, tf.float32)) for z in logits]
    out = []
    for k, z in enumerate(logits):
        kl = tf.add_n([softmax_kl(frozen[j], z, temperature) for j in range(count) if j != k]) / (count - 1)
        peer = temperature**2 * _batch_mean(kl, sample_weight)
        parts = {"peer_kl": peer}
        if labels is None:
            ce = tf.zeros((), tf.float32)
        else:
            ce = masked_mean(cross_entropy(labels, z), label_mask(labels, z), sample_weight)
        parts["ce"] = ce
        if teacher_logits is None:
            parts["loss"] = ce + peer_weight * peer
        else:
            teacher = temperature**2 * _batch_mean(softmax_kl(tf.stop_gradient(teacher_logits), z, temperature), sample_weight)
            parts["teacher_kl"] = teacher
            parts["loss"] = alpha * ce + (1.0 - alpha) * teacher + peer_weight * peer
        out.append(parts)
    return out


class _Accuracy(keras.metrics.Mean):
    """Top-1 accuracy from logits against sparse or one-hot labels."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        if y_true.shape.rank == y_pred.shape.rank and y_true.shape[-1] == y_pred.shape[-1]:
            y_true = tf.argmax(y_true, axis=-1)
        y_true = tf.cast(tf.reshape(y_true, [-1]), tf.int64)
        hits = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), y_true), tf.float32)
        return super().update_state(hits, sample_weight)


def _student_metric(identifier, prefix):
    """A fresh metric named ``<prefix>_<name>`` for one peer."""
    if identifier in ("accuracy", "acc"):
        return _Accuracy(name=f"{prefix}_accuracy")
    metric = keras.metrics.get(identifier)
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config(dict(metric.get_config(), name=f"{prefix}_{metric.name}"))
    return keras.metrics.MeanMetricWrapper(metric, name=f"{prefix}_{getattr(metric, '__name__', 'metric')}")


def _check_students(students):
    if not isinstance(students, (list, tuple)) or len(students) < 2:
        count = len(students) if isinstance(students, (list, tuple)) else 1
        raise ValueError(
            f"Expected at least 2 students for mutual learning. Received: {count} student(s). "
            "Pass a list, e.g. MutualDistiller([student_a, student_b])."
        )
    students = [as_tf_keras(s, f"students[{i}]") for i, s in enumerate(students)]
    if len({id(s) for s in students}) != len(students):
        raise ValueError("The same model object is given twice in `students`; build one model per peer.")
    shapes = {tuple(s.output_shape[1:]) for s in students}
    if len(shapes) != 1:
        raise ValueError(f"Every peer must produce logits over the same classes. Received output shapes: {sorted(shapes)}")
    return students


@keras.saving.register_keras_serializable(package="kdtf")
class MutualDistiller(keras.Model):
    """Trains ``K >= 2`` students together, each on the labels and on the others'
    softened outputs (Deep Mutual Learning, Zhang et al., CVPR 2018, arXiv:1706.00384).

    ``L_k = CE(y, z_k) + w * 1/(K-1) * sum_{l != k} T^2 * KL(stop_gradient(p_l) || p_k)``,
    ``p = softmax(z / T)``; beside a frozen ``teacher``,
    ``L_k = alpha * CE + (1 - alpha) * T^2 * KL(p_teacher || p_k) + w * (peer term)``
    (see :func:`mutual_losses`).

    One ``train_step`` runs every peer on the batch and applies the gradient of
    ``sum_k L_k``: the others' outputs are stopped, so each peer gets the gradient of its
    own loss only. This is the simultaneous form of the paper's Algorithm 1 (which
    updates the peers one after another, each seeing the others' fresh predictions).
    One optimizer holds every peer's weights; Adam's and SGD's updates are per weight,
    so this equals one optimizer per peer.

    Unlabeled examples (sparse label ``-1``, all-zero one-hot row) train on the peer (and
    teacher) terms only, and the metrics count labelled examples only, as in the
    :class:`kdtf.Distiller`. ``fit`` logs ``loss`` (``sum_k L_k``) and, per peer
    ``student{k}``: ``student{k}_loss``, ``student{k}_ce``, ``student{k}_kl``
    (``student{k}_teacher_kl`` beside a teacher) and each compiled metric
    (``student{k}_accuracy``). ``predict`` returns peer 0's outputs; every peer is a plain
    tf_keras model in :attr:`students`, saved and exported as usual.

    Args:
        students: list of ``K >= 2`` tf_keras (or Keras 3) models producing logits over
            the same classes (any architectures).
        teacher: an optional frozen teacher (or ``None``, the paper's setting).
        temperature: ``T > 0`` of the KL terms (default 1, the paper's).
        peer_weight: ``w >= 0``, weight of the peer term (default 1).
        alpha: weight of the cross-entropy beside a teacher, in ``[0, 1]`` (default 0.5;
            unused without a teacher).
        name: model name.
    """

    def __init__(self, students, teacher=None, *, temperature=1.0, peer_weight=1.0, alpha=0.5, name="mutual", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validation.number("temperature", temperature, 0, low_open=True)
        self.peer_weight = validation.number("peer_weight", peer_weight, 0)
        self.alpha = validation.number("alpha", alpha, 0, 1)
        self.students = _check_students(students)
        self.student_logits = [logits_view(s, f"students[{i}]", copy_dense=False) for i, s in enumerate(self.students)]
        self.teacher = None if teacher is None else as_tf_keras(teacher, "teacher")
        self.teacher_logits = None if teacher is None else logits_view(self.teacher, "teacher", copy_dense=True)
        if self.teacher is not None and tuple(self.teacher_logits.output_shape[1:]) != tuple(self.students[0].output_shape[1:]):
            raise ValueError(
                f"Teacher '{self.teacher.name}' outputs {self.teacher_logits.output_shape}, the students "
                f"{self.students[0].output_shape}: all must produce logits over the same classes."
            )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        parts = ["loss", "ce", "kl"] + (["teacher_kl"] if self.teacher is not None else [])
        self.part_trackers = [[keras.metrics.Mean(name=f"student{k}_{p}") for p in parts] for k in range(len(self.students))]
        self.student_metrics = [[] for _ in self.students]
        self.built = True

    # -- Keras API ---------------------------------------------------------------------
    @property
    def trainable_weights(self):
        """Every peer's trainable weights (the teacher stays frozen)."""
        return self.trainable_student_variables

    @property
    def non_trainable_weights(self):
        skip = {id(v) for v in self.trainable_weights} | {id(v) for m in self.metrics for v in m.variables}
        everything = super().trainable_weights + super().non_trainable_weights
        seen, out = set(), []
        for v in everything:
            if id(v) not in skip and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    @property
    def trainable_student_variables(self):
        """What training updates: the trainable weights of every peer."""
        return [v for s in self.students for v in s.trainable_variables]

    def compile(self, optimizer="rmsprop", metrics=None, **kwargs):
        """Like ``keras.Model.compile``; the loss is Deep Mutual Learning's, and each metric
        is kept once per peer (``accuracy`` -> ``student0_accuracy``, ...)."""
        if kwargs.get("loss") is not None:
            raise ValueError(
                "MutualDistiller.compile() takes no `loss`: each peer's loss is cross-entropy + the peer KL "
                f"(set with temperature=, peer_weight=). Received: loss={kwargs['loss']!r}"
            )
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.student_metrics = [[_student_metric(m, f"student{k}") for m in (metrics or [])] for k in range(len(self.students))]

    def compile_from_config(self, config):
        """Compiles a reloaded MutualDistiller as it was (optimizer state included)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_student_variables)

    @property
    def metrics(self):
        metrics = [self.loss_tracker] + [t for per in self.part_trackers for t in per]
        return metrics + [m for per in self.student_metrics for m in per]

    def call(self, inputs, training=None):
        if isinstance(inputs, dict) and CACHED_KEY in inputs:
            inputs = inputs["x"]
        return self.students[0](inputs, training=training)

    def save(self, filepath, *args, **kwargs):
        """Saves every peer, the teacher and the optimizer state as a ``.keras`` file that
        reloads compiled; other formats are refused (save a peer for inference)."""
        path = os.fspath(filepath)
        if not path.endswith(".keras") or kwargs.get("save_format") not in (None, "keras"):
            raise ValueError(
                f"A MutualDistiller saves as a .keras file. Received: {path!r}. For an inference model save "
                "one peer: mutual.students[0].save(...) or kdtf.export.to_tflite(mutual.students[0])."
            )
        return super().save(filepath, *args, **kwargs)

    # -- the step ---------------------------------------------------------------------
    def compute_losses(self, x, y=None, sample_weight=None, training=False):
        """``(peer logits, per-peer loss dicts)`` on a batch; see :func:`mutual_losses`."""
        teacher = None
        if isinstance(x, dict) and CACHED_KEY in x:
            x, teacher = x["x"], x[CACHED_KEY][0]
        logits = [view(x, training=training) for view in self.student_logits]
        if self.teacher is not None and teacher is None:
            teacher = self.teacher_logits(x, training=False)
        if self.teacher is None:
            teacher = None
        losses = mutual_losses(logits, y, temperature=self.temperature, peer_weight=self.peer_weight,
                               teacher_logits=teacher, alpha=self.alpha, sample_weight=sample_weight)
        return logits, losses

    def _update_metrics(self, y, logits, losses, sample_weight):
        total = tf.add_n([parts["loss"] for parts in losses])
        self.loss_tracker.update_state(total)
        for trackers, parts in zip(self.part_trackers, losses):
            values = [parts["loss"], parts["ce"], parts["peer_kl"]] + ([parts["teacher_kl"]] if "teacher_kl" in parts else [])
            for tracker, value in zip(trackers, values):
                tracker.update_state(value)
        if y is not None:
            keep = label_mask(y, logits[0]) > 0
            labels = tf.boolean_mask(y, keep)
            weights = None if sample_weight is None else tf.boolean_mask(sample_weight, keep)
            for metrics, z in zip(self.student_metrics, logits):
                for metric in metrics:
                    metric.update_state(labels, tf.boolean_mask(z, keep), weights)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            logits, losses = self.compute_losses(x, y, sample_weight, training=True)
            objective = tf.add_n([parts["loss"] for parts in losses])
            regularization = [loss for s in self.students for loss in s.losses]
            if regularization:
                objective += tf.cast(tf.add_n(regularization), tf.float32)
            objective /= tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        self.optimizer.minimize(objective, self.trainable_student_variables, tape=tape)
        return self._update_metrics(y, logits, losses, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logits, losses = self.compute_losses(x, y, sample_weight, training=False)
        return self._update_metrics(y, logits, losses, sample_weight)

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` that stops at the first NaN/Inf loss with a message."""
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss(stage=f"{self.name} ({len(self.students)} peers)"))
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # -- serialization -------------------------------------------------------------
    def get_config(self):
        return {
            "students": [keras.saving.serialize_keras_object(s) for s in self.students],
            "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
            "peer_weight": self.peer_weight,
            "alpha": self.alpha,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        students = [keras.saving.deserialize_keras_object(s, custom_objects) for s in config.pop("students")]
        teacher = config.pop("teacher", None)
        teacher = None if teacher is None else keras.saving.deserialize_keras_object(teacher, custom_objects)
        return cls(students, teacher, **config)
