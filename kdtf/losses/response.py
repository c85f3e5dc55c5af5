"""Response-based distillation losses: they compare the networks' output logits."""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.labels import is_one_hot
from kdtf.losses.base import DistillationLoss
from kdtf.terms import ResponseTerm, register_term

__all__ = ["KDLoss", "kd_loss", "softmax_kl", "mixed_kd_loss", "DKDLoss", "dkd_loss", "KDTerm", "DKDTerm",
           "standardize_logits", "DISTLoss", "dist_loss", "DISTTerm"]


def _check_temperature(temperature):
    return validation.number("temperature", temperature, 0, low_open=True)


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"Expected {name} to be True or False. Received: {name}={value!r}")
    return value


def standardize_logits(logits, eps=1e-7):
    """Z-scores each example's logits: ``Z(z) = (z - mean(z)) / (std(z) + eps)``.

    ``mean`` and ``std`` run over the classes of one example (``std`` with ``1 / K``, as
    in the paper's definition). Logit standardization: Sun, Ren, Li, Wang & Cao, "Logit
    Standardization in Knowledge Distillation", CVPR 2024 (arXiv:2403.01427): the student
    then matches the teacher's logit *relations* instead of their magnitude, and the
    temperature applied after it is shared by both networks without forcing the student's
    logit range onto the teacher's.

    Args:
        logits: ``(batch, classes)`` logits.
        eps: added to the standard deviation (constant logits stay finite).

    Returns:
        float32 logits with mean 0 and standard deviation ~1 per example.
    """
    z = tf.cast(logits, tf.float32)
    mean = tf.reduce_mean(z, axis=-1, keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(z - mean), axis=-1, keepdims=True))
    return (z - mean) / (std + eps)


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


def kd_loss(teacher_logits, student_logits, temperature=4.0, standardize=False):
    """Hinton knowledge-distillation loss, one value per example.

    ``L = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``

    The ``T^2`` factor keeps the gradient magnitude of the soft term comparable to
    that of the hard-label cross-entropy as ``T`` changes (Hinton, Vinyals & Dean,
    "Distilling the Knowledge in a Neural Network", 2015, arXiv:1503.02531).

    With ``standardize=True`` both networks' logits are z-scored per example first
    (:func:`standardize_logits`; Sun et al., CVPR 2024):
    ``L = T^2 * KL(softmax(Z(z_t) / T) || softmax(Z(z_s) / T))``.

    Args:
        teacher_logits: teacher logits (``y_true`` in Keras's convention).
        student_logits: student logits (``y_pred``).
        temperature: softening temperature ``T > 0``.
        standardize: z-score the logits before the temperature softmax.

    Returns:
        A ``(batch,)`` float32 tensor.
    """
    if standardize:
        teacher_logits, student_logits = standardize_logits(teacher_logits), standardize_logits(student_logits)
    return temperature**2 * softmax_kl(teacher_logits, student_logits, temperature)


def mixed_kd_loss(teacher_logits, student_logits, weights, temperature=4.0, standardize=False):
    """Knowledge distillation from several teachers, one value per example.

    ``L = T^2 * KL(sum_k w_k softmax(z_k / T) || softmax(z_s / T))``: the student learns
    the weighted average of the teachers' softened distributions (the ensemble target of
    Hinton, Vinyals & Dean, 2015; with one teacher this is :func:`kd_loss`).

    Args:
        teacher_logits: list of ``(batch, classes)`` teacher logits.
        student_logits: ``(batch, classes)`` student logits.
        weights: one weight per teacher, summing to 1.
        temperature: softening temperature ``T > 0``.
        standardize: z-score every network's logits first (:func:`standardize_logits`).
    """
    if len(teacher_logits) == 1:
        return kd_loss(teacher_logits[0], student_logits, temperature, standardize)
    if standardize:
        teacher_logits, student_logits = [standardize_logits(z) for z in teacher_logits], standardize_logits(student_logits)
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

    ``standardize=True`` z-scores both logits per example first (Sun et al., "Logit
    Standardization in Knowledge Distillation", CVPR 2024; :func:`standardize_logits`).

    Args:
        temperature: softening temperature ``T > 0``.
        standardize: z-score the logits before the temperature softmax.
        reduction: Keras loss reduction.
        name: loss name.
    """

    def __init__(self, temperature=4.0, standardize=False, reduction="auto", name="kd_loss"):
        super().__init__(kd_loss, reduction, name, temperature=_check_temperature(temperature),
                         standardize=_check_flag("standardize", standardize))


def dkd_loss(teacher_logits, student_logits, labels=None, alpha=1.0, beta=8.0, temperature=4.0, standardize=False):
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
        standardize: z-score both logits per example before dividing by ``T``
            (:func:`standardize_logits`, Sun et al., CVPR 2024).

    Returns:
        A ``(batch,)`` float32 tensor.
    """
    if standardize:
        teacher_logits, student_logits = standardize_logits(teacher_logits), standardize_logits(student_logits)
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


def _dkd_teacher_target(teacher_logits, student_logits, alpha=1.0, beta=8.0, temperature=4.0, standardize=False):
    return dkd_loss(teacher_logits, student_logits, None, alpha, beta, temperature, standardize)


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
        standardize: z-score the logits first (Sun et al., CVPR 2024).
    """

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, standardize=False, reduction="auto", name="dkd_loss"):
        super().__init__(
            _dkd_teacher_target, reduction, name, alpha=validation.number("alpha", alpha, 0),
            beta=validation.number("beta", beta, 0), temperature=_check_temperature(temperature),
            standardize=_check_flag("standardize", standardize),
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
        return mixed_kd_loss([t[None] for t in teachers], student[None], weights, self.loss.temperature, self.loss.standardize)


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
        return dkd_loss(teacher_logits, student_logits, target, options["alpha"], options["beta"], options["temperature"],
                        options["standardize"])


def _pearson(a, b, axis):
    """Pearson correlation of ``a`` and ``b`` along ``axis`` (cosine of the centred vectors)."""
    a = a - tf.reduce_mean(a, axis=axis, keepdims=True)
    b = b - tf.reduce_mean(b, axis=axis, keepdims=True)
    norms = tf.norm(a, axis=axis) * tf.norm(b, axis=axis)
    return tf.reduce_sum(a * b, axis=axis) / (norms + 1e-8)


def dist_loss(teacher_logits, student_logits, beta=1.0, gamma=1.0, temperature=1.0):
    """DIST: relations of the predictions, within each example and within each class.

    With ``Y = softmax(z / T)`` (rows: the ``B`` examples of the batch, columns: the ``C``
    classes) and ``rho`` the Pearson correlation::

        inter = 1 - (1/B) sum_i rho(Y_s[i, :], Y_t[i, :])     (each example's classes)
        intra = 1 - (1/C) sum_c rho(Y_s[:, c], Y_t[:, c])     (each class over the batch)
        L = T^2 * (beta * inter + gamma * intra)

    Matching correlations instead of the exact distribution (KL) frees the student from
    the teacher's scale and shift, which helps when the teacher is much stronger. Huang,
    You, Wang, Qian & Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022
    (arXiv:2205.10536); the paper's defaults ``beta = gamma = 1``.

    Args:
        teacher_logits, student_logits: ``(batch, classes)`` logits.
        beta: weight of the inter-class relation (within each example).
        gamma: weight of the intra-class relation (within each class, across the batch).
        temperature: ``T > 0``.

    Returns:
        A ``(batch,)`` float32 tensor: the batch's value for every example (a relation
        of the whole batch).
    """
    t = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    s = tf.nn.softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    inter = 1.0 - tf.reduce_mean(_pearson(s, t, axis=1))
    intra = 1.0 - tf.reduce_mean(_pearson(s, t, axis=0))
    value = temperature**2 * (beta * inter + gamma * intra)
    return tf.fill([tf.shape(t)[0]], value)


@keras.saving.register_keras_serializable(package="kdtf")
class DISTLoss(DistillationLoss):
    """DIST: ``T^2 * (beta * inter-class + gamma * intra-class)`` Pearson relation loss
    (see :func:`dist_loss`). Huang et al., "Knowledge Distillation from A Stronger
    Teacher", NeurIPS 2022 (arXiv:2205.10536).

    Args:
        beta: weight of the inter-class relation (default 1, the paper's).
        gamma: weight of the intra-class relation (default 1, the paper's).
        temperature: ``T > 0``.
    """

    def __init__(self, beta=1.0, gamma=1.0, temperature=1.0, reduction="auto", name="dist_loss"):
        super().__init__(
            dist_loss, reduction, name, beta=validation.number("beta", beta, 0),
            gamma=validation.number("gamma", gamma, 0), temperature=_check_temperature(temperature),
        )


@register_term("dist")
class DISTTerm(ResponseTerm):
    """DIST (:class:`DISTLoss`): relations of the student's and the teacher's predictions
    within each example and within each class of the batch; ``T`` from the spec."""

    loss_class = DISTLoss
