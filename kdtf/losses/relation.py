"""Relational distillation losses: they compare how examples of a batch relate.

They return one value per batch (broadcast to every example, so Keras reductions keep
it). ``y_true`` is the teacher's embedding or feature, ``y_pred`` the student's; the
two may have different widths.
"""

from kdtf._keras import keras, tf
from kdtf.losses.base import DistillationLoss
from kdtf.terms import RelationTerm, register_term

__all__ = ["RKDDistanceLoss", "rkd_distance_loss", "RKDAngleLoss", "rkd_angle_loss", "SimilarityPreservingLoss",
           "similarity_preserving_loss", "RKDDistanceTerm", "RKDAngleTerm", "SimilarityPreservingTerm"]


def _flat(x):
    x = tf.cast(x, tf.float32)
    return tf.reshape(x, [tf.shape(x)[0], -1])


def _pairwise_distances(x):
    square = tf.reduce_sum(tf.square(x), axis=-1)
    d2 = square[:, None] + square[None, :] - 2.0 * tf.matmul(x, x, transpose_b=True)
    d2 = tf.maximum(d2, 0.0)
    off_diagonal = 1.0 - tf.eye(tf.shape(x)[0])
    return tf.sqrt(d2 + 1e-12) * off_diagonal


def _huber(a, b):
    diff = tf.abs(a - b)
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def _per_example(value, x):
    return tf.fill([tf.shape(x)[0]], value)


def rkd_distance_loss(teacher, student):
    """RKD distance loss: Huber between pairwise distances, each normalised by its mean
    over distinct pairs: ``mean_{i!=j} huber(d_s(i,j)/mu_s, d_t(i,j)/mu_t)``.

    Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019 (arXiv:1904.05068).
    """
    t, s = _flat(teacher), _flat(student)
    n = tf.cast(tf.shape(t)[0], tf.float32)
    pairs = n * (n - 1.0)
    dt, ds = _pairwise_distances(t), _pairwise_distances(s)
    dt = dt / (tf.reduce_sum(dt) / pairs)
    ds = ds / (tf.reduce_sum(ds) / pairs)
    off_diagonal = 1.0 - tf.eye(tf.shape(t)[0])
    value = tf.reduce_sum(_huber(ds, dt) * off_diagonal) / pairs
    return _per_example(value, t)


def _angles(x):
    # cos of the angle at j between (i - j) and (k - j), for all i, j, k
    diff = tf.math.l2_normalize(x[None, :, :] - x[:, None, :], axis=-1)  # [j, i] = x_i - x_j
    return tf.einsum("jid,jkd->jik", diff, diff)


def rkd_angle_loss(teacher, student):
    """RKD angle loss: Huber between the cosines of the angles formed by every triplet of
    batch examples, ``mean huber(cos<s_i - s_j, s_k - s_j>, cos<t_i - t_j, t_k - t_j>)``
    over triplets of distinct examples. Park et al., CVPR 2019."""
    t, s = _flat(teacher), _flat(student)
    n = tf.shape(t)[0]
    eye = tf.eye(n)
    distinct = (1.0 - eye[:, :, None]) * (1.0 - eye[:, None, :]) * (1.0 - eye[None, :, :])
    value = tf.reduce_sum(_huber(_angles(s), _angles(t)) * distinct) / tf.maximum(tf.reduce_sum(distinct), 1.0)
    return _per_example(value, t)


def similarity_preserving_loss(teacher, student):
    """Similarity-preserving KD: ``||G_s - G_t||_F^2 / b^2`` with ``G = norm_rows(F F^T)``,
    ``F`` the flattened batch features. Tung & Mori, "Similarity-Preserving Knowledge
    Distillation", ICCV 2019 (arXiv:1907.09682)."""
    t, s = _flat(teacher), _flat(student)
    gt = tf.math.l2_normalize(tf.matmul(t, t, transpose_b=True), axis=1)
    gs = tf.math.l2_normalize(tf.matmul(s, s, transpose_b=True), axis=1)
    b = tf.cast(tf.shape(t)[0], tf.float32)
    return _per_example(tf.reduce_sum(tf.square(gs - gt)) / (b * b), t)


@keras.saving.register_keras_serializable(package="kdtf")
class RKDDistanceLoss(DistillationLoss):
    """Relational KD, distance-wise term (Park et al., CVPR 2019); see :func:`rkd_distance_loss`."""

    def __init__(self, reduction="auto", name="rkd_distance_loss"):
        super().__init__(rkd_distance_loss, reduction, name)


@keras.saving.register_keras_serializable(package="kdtf")
class RKDAngleLoss(DistillationLoss):
    """Relational KD, angle-wise term (Park et al., CVPR 2019); see :func:`rkd_angle_loss`."""

    def __init__(self, reduction="auto", name="rkd_angle_loss"):
        super().__init__(rkd_angle_loss, reduction, name)


@keras.saving.register_keras_serializable(package="kdtf")
class SimilarityPreservingLoss(DistillationLoss):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019); see :func:`similarity_preserving_loss`."""

    def __init__(self, reduction="auto", name="sp_loss"):
        super().__init__(similarity_preserving_loss, reduction, name)


@register_term("rkd_distance")
class RKDDistanceTerm(RelationTerm):
    """RKD distance (:class:`RKDDistanceLoss`) over the batch."""

    loss_class = RKDDistanceLoss


@register_term("rkd_angle")
class RKDAngleTerm(RelationTerm):
    """RKD angle (:class:`RKDAngleLoss`) over the batch."""

    loss_class = RKDAngleLoss


@register_term("sp")
class SimilarityPreservingTerm(RelationTerm):
    """Similarity preserving (:class:`SimilarityPreservingLoss`) over the batch."""

    loss_class = SimilarityPreservingLoss
