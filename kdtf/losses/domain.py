"""Domain-alignment losses: they compare two *sets* of features, not pairs of examples.

``y_true`` is a ``(n_s, ...)`` batch of source-domain features (the teacher's on the
source data), ``y_pred`` a ``(n_t, ...)`` batch of target-domain features (the student's,
or its adapter's, on unlabeled target images); ``n_s`` and ``n_t`` may differ. Features
are flattened to vectors. Each function returns one value for the two sets (a scalar),
0 when either set is too small to estimate it (MMD: empty; CORAL: under two rows).

The terms ``mmd`` and ``coral`` (:class:`DomainTerm`) pick the source and target rows
out of a batch by their labels.
"""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.labels import is_one_hot, target_mask
from kdtf.losses.base import DistillationLoss
from kdtf.terms import Term, register_term

__all__ = ["MMDLoss", "mmd_loss", "CORALLoss", "coral_loss", "DEFAULT_SCALES", "DomainTerm", "MMDTerm", "CORALTerm"]

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


class DomainTerm(Term):
    """Domain alignment while distilling: the distribution of the student's features
    (through an adapter where widths differ) on the batch's target-domain rows (sparse
    label ``kdtf.labels.TARGET_LABEL``, from ``--target-set`` / :mod:`kdtf.data.target_set`)
    is pulled to the teacher's features on its source rows (every other row). Reads the
    logits unless layers are named. ``source="student"`` compares with the student's own
    source features instead (DAN-style). One value per batch, sample weights ignored; the
    other terms still see every row.

    Args:
        source: whose features on the source rows: ``"teacher"`` (default) or ``"student"``.
        loss, weight, student_layer, teacher_layer, teacher, name: as :class:`kdtf.terms.Term`.
    """

    adapts = True

    def __init__(self, loss=None, weight=1.0, student_layer=None, teacher_layer=None, teacher=0, name=None, source="teacher"):
        super().__init__(loss, weight, student_layer, teacher_layer, teacher, name)
        self.source = validation.one_of(f"source of '{self.name}'", source, ("teacher", "student"))

    @classmethod
    def from_spec(cls, spec, temperature):
        options = dict(spec.options)
        source = options.pop("source", "teacher")
        return cls(cls.loss_class(**options), weight=spec.weight, student_layer=spec.student_layer,
                   teacher_layer=spec.teacher_layer, teacher=spec.teacher, name=spec.loss, source=source)

    def get_config(self):
        return dict(super().get_config(), source=self.source)

    def values(self, teachers, student, labels):
        t_feat, s_feat = self.features(teachers, student)
        if labels is None or is_one_hot(labels, student[None]):
            raise ValueError(
                f"The '{self.name}' term finds target-domain rows by their sparse label -2 (--target-set, "
                "kdtf.data.target_set); train with sparse labels (no mixup/cutmix) and a target set."
            )
        target = target_mask(labels)
        source_feat = s_feat if self.source == "student" else t_feat
        return self.per_example(tf.boolean_mask(source_feat, ~target), tf.boolean_mask(s_feat, target))

    def __call__(self, teachers, student, labels=None, sample_weight=None):
        return self.values(teachers, student, labels)  # a set-to-set value: no per-example weights


@register_term("mmd")
class MMDTerm(DomainTerm):
    """MMD (:class:`MMDLoss`) between teacher-source and student-target features."""

    loss_class = MMDLoss


@register_term("coral")
class CORALTerm(DomainTerm):
    """Deep CORAL (:class:`CORALLoss`) between teacher-source and student-target features."""

    loss_class = CORALLoss
