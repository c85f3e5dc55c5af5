"""Feature-based distillation losses: they compare intermediate activations.

``y_true`` is the teacher's feature map, ``y_pred`` the student's (already passed through
a learnable adapter where channel counts differ; the Distiller owns the adapter).
"""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.losses.base import DistillationLoss
from kdtf.terms import FeatureTerm, register_term

__all__ = ["HintLoss", "hint_loss", "AttentionTransferLoss", "attention_transfer_loss", "attention_map", "match_spatial", "HintTerm", "AttentionTransferTerm"]


def match_spatial(student, teacher):
    """Resizes ``student`` (``(b, h, w, c)``) to the teacher's height and width.

    Larger student maps are average-pooled when the sizes divide evenly (no aliasing),
    otherwise both directions use bilinear resizing.
    """
    s_hw, t_hw = student.shape[1:3], teacher.shape[1:3]
    if s_hw == t_hw:
        return student
    if None not in (*s_hw, *t_hw) and s_hw[0] % t_hw[0] == 0 and s_hw[1] % t_hw[1] == 0:
        pool = (s_hw[0] // t_hw[0], s_hw[1] // t_hw[1])
        return tf.nn.avg_pool2d(student, pool, pool, "VALID")
    return tf.image.resize(student, tf.shape(teacher)[1:3], method="bilinear")


def hint_loss(teacher_features, student_features):
    """FitNets hint loss, one value per example: mean squared error between the teacher's
    feature and the (adapted) student's feature, after :func:`match_spatial`.

    ``L = mean((F_t - r(F_s))^2)`` with ``r`` the learnable regressor (Romero et al.,
    "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550).
    """
    t = tf.cast(teacher_features, tf.float32)
    s = tf.cast(student_features, tf.float32)
    if t.shape.rank == 4:
        s = match_spatial(s, t)
    if s.shape[-1] != t.shape[-1]:
        raise ValueError(
            f"Hint loss needs the same number of channels: student {s.shape[-1]}, teacher "
            f"{t.shape[-1]}. Pass the student feature through an adapter (the Distiller's "
            "fitnets term adds a 1x1 conv or Dense one)."
        )
    axes = list(range(1, t.shape.rank))
    return tf.reduce_mean(tf.square(t - s), axis=axes)


@keras.saving.register_keras_serializable(package="kdtf")
class HintLoss(DistillationLoss):
    """FitNets hint loss: ``mean((F_t - F_s)^2)`` per example, spatial sizes matched.

    Reference: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
    """

    def __init__(self, reduction="auto", name="fitnets_loss"):
        super().__init__(hint_loss, reduction, name)


def attention_map(features, p=2.0):
    """Spatial attention ``Q = vec(sum_c |A_c|^p)``, L2-normalised per example: ``(b, h*w)``."""
    a = tf.reduce_sum(tf.pow(tf.abs(tf.cast(features, tf.float32)), p), axis=-1)
    return tf.math.l2_normalize(tf.reshape(a, [tf.shape(a)[0], -1]), axis=-1)


def attention_transfer_loss(teacher_features, student_features, p=2.0):
    """Attention transfer, one value per example:
    ``|| Q_s / ||Q_s|| - Q_t / ||Q_t|| ||_2`` with ``Q = sum_c |A_c|^p``.

    Student maps of another spatial size are resized to the teacher's first (channel
    counts may differ: the map sums over channels). Zagoruyko & Komodakis, "Paying More
    Attention to Attention", ICLR 2017 (arXiv:1612.03928).
    """
    t = tf.cast(teacher_features, tf.float32)
    s = match_spatial(tf.cast(student_features, tf.float32), t)
    return tf.norm(attention_map(s, p) - attention_map(t, p), axis=-1)


@keras.saving.register_keras_serializable(package="kdtf")
class AttentionTransferLoss(DistillationLoss):
    """Attention transfer: L2 distance between normalised spatial attention maps.

    Reference: Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017.

    Args:
        p: exponent of ``|A|^p`` in the map (the paper uses 2).
    """

    def __init__(self, p=2.0, reduction="auto", name="at_loss"):
        super().__init__(attention_transfer_loss, reduction, name, p=validation.number("p", p, 0, low_open=True))


@register_term("fitnets")
class HintTerm(FeatureTerm):
    """FitNets hint (:class:`HintLoss`) between two named layers, through an adapter
    where the widths differ."""

    loss_class = HintLoss


@register_term("at")
class AttentionTransferTerm(FeatureTerm):
    """Attention transfer (:class:`AttentionTransferLoss`): spatial attention maps sum
    over channels, so widths may differ without an adapter."""

    loss_class = AttentionTransferLoss
    adapts = False
