"""Response-based distillation losses: they compare the networks' output logits."""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.labels import is_one_hot
from kdtf.losses.base import DistillationLoss
from kdtf.terms import ResponseTerm, register_term

__all__ = ["KDLoss", "kd_loss", "softmax_kl", "mixed_kd_loss", "DKDLoss", "dkd_loss", "KDTerm", "DKDTerm"]


def _check_temperature(temperature):
    return validation.number("temperature", temperature, 0, low_open=True)


def softmax_kl(teacher_logits, student_logits, temperature=1.0):
    """Per-example KL(softmax(teacher / T) || softmax(student / T)), computed in float32.

    Args:
        teacher_logits: ``(batch, classes)`` logits of the teacher.
        student_logits: ``(batch, classes)`` logits of the student.
        temperature: softening temperature ``T > 0``.

    Returns:
        A ``(batch,)`` float32 tensor.
    """
    t = tf.cast(teacher_logits, tf.float32) / temperature
    s = tf.cast(student_logits, tf.float32) / temperature
    log_p_t = tf.nn.log_softmax(t, axis=-1)
    log_p_s = tf.nn.log_softmax(s, axis=-1)
    return tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)


def kd_loss(teacher_logits, student_logits, temperature=4.0):
    """Hinton knowledge-distillation loss, one value per example.

    ``L = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``

    The ``T^2`` factor keeps the gradient magnitude of the soft term comparable to
    that of the hard-label cross-entropy as ``T`` changes (Hinton, Vinyals & Dean,
    "Distilling the Knowledge in a Neural Network", 2015, arXiv:1503.02531).

    Args:
        teacher_logits: teacher logits (``y_true`` in Keras's convention).
        student_logits: student logits (``y_pred``).
        temperature: softening temperature ``T > 0``.

    Returns:
        A ``(batch,)`` float32 tensor.
    """
    return temperature**2 * softmax_kl(teacher_logits, student_logits, temperature)


def mixed_kd_loss(teacher_logits, student_logits, weights, temperature=4.0):
    """Knowledge distillation from several teachers, one value per example.

    ``L = T^2 * KL(sum_k w_k softmax(z_k / T) || softmax(z_s / T))``: the student learns
    the weighted average of the teachers' softened distributions (the ensemble target of
    Hinton, Vinyals & Dean, 2015; with one teacher this is :func:`kd_loss`).

    Args:
        teacher_logits: list of ``(batch, classes)`` teacher logits.
        student_logits: ``(batch, classes)`` student logits.
        weights: one weight per teacher, summing to 1.
        temperature: softening temperature ``T > 0``.
    """
    if len(teacher_logits) == 1:
        return kd_loss(teacher_logits[0], student_logits, temperature)
    probs = tf.add_n([w * tf.nn.softmax(tf.cast(z, tf.float32) / temperature) for w, z in zip(weights, teacher_logits)])
    log_s = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature)
    return temperature**2 * tf.reduce_sum(probs * (tf.math.log(probs + 1e-12) - log_s), axis=-1)


@keras.saving.register_keras_serializable(package="kdtf")
class KDLoss(DistillationLoss):
    """Hinton knowledge distillation: ``T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``.

    ``y_true`` is the teacher's logits and ``y_pred`` the student's logits, so the loss
    also works in a plain ``student.compile(loss=KDLoss())`` on precomputed teacher
    logits. Reference: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", NIPS Deep Learning Workshop 2015 (arXiv:1503.02531).

    Args:
        temperature: softening temperature ``T > 0``.
        reduction: Keras loss reduction.
        name: loss name.
    """

    def __init__(self, temperature=4.0, reduction="auto", name="kd_loss"):
        super().__init__(kd_loss, reduction, name, temperature=_check_temperature(temperature))


def dkd_loss(teacher_logits, student_logits, labels=None, alpha=1.0, beta=8.0, temperature=4.0):
    """Decoupled knowledge distillation, one value per example.

    With ``p = softmax(z / T)`` and target class ``t``:

    * TCKD = KL(b_teacher || b_student), ``b = [p_t, 1 - p_t]`` (target vs the rest);
    * NCKD = KL(q_teacher || q_student), ``q = softmax`` over the non-target classes only;
    * ``L = T^2 * (alpha * TCKD + beta * NCKD)``.

    Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation", CVPR 2022
    (arXiv:2203.08679). Classic KD equals ``TCKD + (1 - p_t^teacher) * NCKD``; DKD frees
    the weight of the non-target term.

    Args:
        teacher_logits, student_logits: ``(batch, classes)`` logits.
        labels: target classes, sparse ``(batch,)`` or one-hot; ``None`` uses the
            teacher's top-1 class (label-free).
        alpha, beta: weights of TCKD and NCKD (the paper's defaults 1 and 8).
        temperature: ``T > 0``.

    Returns:
        A ``(batch,)`` float32 tensor.
    """
    t = tf.cast(teacher_logits, tf.float32) / temperature
    s = tf.cast(student_logits, tf.float32) / temperature
    classes = tf.shape(t)[-1]
    if labels is None:
        target = tf.argmax(t, axis=-1)
    else:
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == t.shape.rank and labels.shape[-1] == t.shape[-1]:
            target = tf.argmax(labels, axis=-1)
        else:
            target = tf.reshape(tf.cast(labels, tf.int64), [-1])
    mask = tf.one_hot(target, classes, dtype=tf.float32)

    def binary_log_probs(z):
        # log p_target and log(1 - p_target), both from logsumexp for stability
        total = tf.reduce_logsumexp(z, axis=-1)
        log_target = tf.reduce_sum(z * mask, axis=-1) - total
        log_rest = tf.reduce_logsumexp(z - 1e9 * mask, axis=-1) - total
        return tf.stack([log_target, log_rest], axis=-1)

    bt, bs = binary_log_probs(t), binary_log_probs(s)
    tckd = tf.reduce_sum(tf.exp(bt) * (bt - bs), axis=-1)
    qt = tf.nn.log_softmax(t - 1e9 * mask, axis=-1)
    qs = tf.nn.log_softmax(s - 1e9 * mask, axis=-1)
    nckd = tf.reduce_sum(tf.exp(qt) * (qt - qs) * (1.0 - mask), axis=-1)
    return temperature**2 * (alpha * tckd + beta * nckd)


def _dkd_teacher_target(teacher_logits, student_logits, alpha=1.0, beta=8.0, temperature=4.0):
    return dkd_loss(teacher_logits, student_logits, None, alpha, beta, temperature)


@keras.saving.register_keras_serializable(package="kdtf")
class DKDLoss(DistillationLoss):
    """Decoupled KD: ``T^2 * (alpha * TCKD + beta * NCKD)`` (see :func:`dkd_loss`).

    ``y_true`` is the teacher's logits and ``y_pred`` the student's; as a plain Keras loss
    the target class is the teacher's top-1 (ground-truth labels can be given to
    :func:`dkd_loss`). Reference: Zhao et al., "Decoupled Knowledge Distillation",
    CVPR 2022 (arXiv:2203.08679).

    Args:
        alpha: weight of the target-class term (TCKD).
        beta: weight of the non-target-class term (NCKD).
        temperature: ``T > 0``.
    """

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, reduction="auto", name="dkd_loss"):
        super().__init__(
            _dkd_teacher_target, reduction, name, alpha=validation.number("alpha", alpha, 0),
            beta=validation.number("beta", beta, 0), temperature=_check_temperature(temperature),
        )


@register_term("kd")
class KDTerm(ResponseTerm):
    """Hinton KD (:class:`KDLoss`); with several teachers, from their weighted average
    softened distribution (:func:`mixed_kd_loss`)."""

    loss_class = KDLoss

    def values(self, teachers, student, labels):
        if len(teachers) == 1:
            return self.per_example(teachers[0][None], student[None])
        weights = self.teacher_weights or [1.0 / len(teachers)] * len(teachers)
        return mixed_kd_loss([t[None] for t in teachers], student[None], weights, self.loss.temperature)


@register_term("dkd")
class DKDTerm(ResponseTerm):
    """Decoupled KD (:class:`DKDLoss`); the target class is the label where there is
    one, else the teacher's top-1 (unlabeled examples, one-hot or mixed labels)."""

    loss_class = DKDLoss

    def values(self, teachers, student, labels):
        teacher_logits, student_logits = teachers[self.teacher][None], student[None]
        target = tf.argmax(teacher_logits, axis=-1)
        if labels is not None and not is_one_hot(labels, student_logits):
            sparse = tf.cast(tf.reshape(labels, [-1]), tf.int64)
            target = tf.where(sparse >= 0, sparse, target)
        options = self.loss.options
        return dkd_loss(teacher_logits, student_logits, target, options["alpha"], options["beta"], options["temperature"])
