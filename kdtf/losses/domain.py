"""Domain-alignment losses: they compare two *sets* of features, not pairs of examples.

``y_true`` is a ``(n_s, ...)`` batch of source-domain features (the teacher's on the
source data), ``y_pred`` a ``(n_t, ...)`` batch of target-domain features (the student's,
or its adapter's, on unlabeled target images); ``n_s`` and ``n_t`` may differ. Features
are flattened to vectors. Each function returns one value for the two sets (a scalar),
0 when either set is too small to estimate it (MMD: empty; CORAL: under two rows).

The Distiller-side term that picks the source and target rows out of a batch is
:class:`kdtf.domain.DomainTerm`.
"""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.losses.base import DistillationLoss

__all__ = ["MMDLoss", "mmd_loss", "CORALLoss", "coral_loss", "DEFAULT_SCALES"]

DEFAULT_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # multiples of the base bandwidth (DAN's mixture of 5 kernels)


def _rows(features):
    x = tf.cast(features, tf.float32)
    return tf.reshape(x, [tf.shape(x)[0], -1])


def _squared_distances(a, b):
    sq_a = tf.reduce_sum(tf.square(a), axis=1, keepdims=True)
    sq_b = tf.reduce_sum(tf.square(b), axis=1, keepdims=True)
    return tf.maximum(sq_a - 2.0 * tf.matmul(a, b, transpose_b=True) + tf.transpose(sq_b), 0.0)


def mmd_loss(source_features, target_features, scales=DEFAULT_SCALES, bandwidth=None):
    """Squared maximum mean discrepancy with a mixture of Gaussian kernels (biased,
    V-statistic estimate):

    ``MMD^2 = mean_ij k(s_i, s_j) + mean_ij k(t_i, t_j) - 2 mean_ij k(s_i, t_j)``,
    ``k(x, y) = (1/K) sum_k exp(-||x - y||^2 / (2 sigma_k^2))``, ``sigma_k^2 = c_k * b``.

    The base bandwidth ``b`` is ``bandwidth`` when given, else the mean squared distance
    between distinct rows of the pooled sample (held constant for the gradient), the
    heuristic of DAN (Long et al., ICML 2015). Gretton et al., "A Kernel Two-Sample
    Test", JMLR 2012; used for joint distillation and unsupervised domain adaptation by
    Nguyen-Meidine et al., "Joint Progressive Knowledge Distillation and Unsupervised
    Domain Adaptation", IJCNN 2020 (arXiv:2005.07839).

    Args:
        source_features: ``(n_s, ...)`` source features (the teacher's).
        target_features: ``(n_t, ...)`` target features (the student's), same width.
        scales: the multipliers ``c_k`` of the base bandwidth.
        bandwidth: a fixed base ``b = sigma^2`` (> 0), or ``None`` for the heuristic.

    Returns:
        A scalar; 0 when either set is empty.
    """
    s, t = _rows(source_features), _rows(target_features)
    joint = tf.concat([s, t], axis=0)
    d = _squared_distances(joint, joint)
    n_s, n = tf.shape(s)[0], tf.shape(joint)[0]
    if bandwidth is None:
        pairs = tf.cast(n * n - n, tf.float32)
        base = tf.stop_gradient(tf.math.divide_no_nan(tf.reduce_sum(d), pairs))
        base = tf.maximum(base, 1e-12)
    else:
        base = tf.constant(float(bandwidth), tf.float32)
    kernel = tf.add_n([tf.exp(-d / (2.0 * c * base)) for c in scales]) / float(len(scales))
    k_ss, k_tt, k_st = kernel[:n_s, :n_s], kernel[n_s:, n_s:], kernel[:n_s, n_s:]
    fs, ft = tf.cast(n_s, tf.float32), tf.cast(n - n_s, tf.float32)
    value = (
        tf.math.divide_no_nan(tf.reduce_sum(k_ss), fs * fs)
        + tf.math.divide_no_nan(tf.reduce_sum(k_tt), ft * ft)
        - 2.0 * tf.math.divide_no_nan(tf.reduce_sum(k_st), fs * ft)
    )
    both = tf.cast(tf.logical_and(n_s > 0, n - n_s > 0), tf.float32)
    return value * both


def _covariance(x):
    n = tf.cast(tf.shape(x)[0], tf.float32)
    centred = x - tf.math.divide_no_nan(tf.reduce_sum(x, axis=0, keepdims=True), n)
    return tf.math.divide_no_nan(tf.matmul(centred, centred, transpose_a=True), n - 1.0)


def coral_loss(source_features, target_features):
    """Deep CORAL: the distance between the second-order statistics of the two sets,

    ``L = ||C_s - C_t||_F^2 / (4 d^2)``, ``C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)``

    the feature covariances of the ``n x d`` source and target batches. Sun & Saenko,
    "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV 2016 workshops
    (arXiv:1607.01719).

    Returns:
        A scalar; 0 when either set has fewer than two rows.
    """
    s, t = _rows(source_features), _rows(target_features)
    d = tf.cast(tf.shape(s)[1], tf.float32)
    value = tf.reduce_sum(tf.square(_covariance(s) - _covariance(t))) / (4.0 * d * d)
    both = tf.cast(tf.logical_and(tf.shape(s)[0] > 1, tf.shape(t)[0] > 1), tf.float32)
    return value * both


@keras.saving.register_keras_serializable(package="kdtf")
class MMDLoss(DistillationLoss):
    """Squared MMD with a Gaussian kernel mixture between teacher-source and
    student-target features (:func:`mmd_loss`).

    Reference: Gretton et al., "A Kernel Two-Sample Test", JMLR 2012.

    Args:
        scales: multipliers of the base bandwidth (each > 0).
        bandwidth: a fixed base ``sigma^2`` (> 0), or ``None`` for the pooled mean
            squared distance.
    """

    def __init__(self, scales=DEFAULT_SCALES, bandwidth=None, reduction="auto", name="mmd_loss"):
        scales = tuple(float(validation.number("scales", c, 0, low_open=True)) for c in scales)
        if not scales:
            raise ValueError("Expected at least one kernel scale. Received: scales=()")
        if bandwidth is not None:
            bandwidth = float(validation.number("bandwidth", bandwidth, 0, low_open=True))
        super().__init__(mmd_loss, reduction, name, scales=scales, bandwidth=bandwidth)


@keras.saving.register_keras_serializable(package="kdtf")
class CORALLoss(DistillationLoss):
    """Deep CORAL between teacher-source and student-target features (:func:`coral_loss`).

    Reference: Sun & Saenko, "Deep CORAL", ECCV 2016 workshops.
    """

    def __init__(self, reduction="auto", name="coral_loss"):
        super().__init__(coral_loss, reduction, name)
