"""Label-free representation distillation: match the teacher's embedding.

For teachers without a classifier head (a BYOL encoder, say). The student's embedding is
mapped to the teacher's width by a learnable projection owned by the Distiller.
"""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.losses.base import DistillationLoss
from kdtf.terms import Term, register_term

__all__ = ["EmbeddingLoss", "embedding_loss", "EmbeddingTerm"]


def embedding_loss(teacher, student, metric="cosine"):
    """One value per example: ``1 - cos(z_s, z_t)`` (``metric="cosine"``, in [0, 2]) or
    ``mean((z_s - z_t)^2)`` (``"mse"``). The cosine form is the regression objective of
    BYOL (Grill et al., NeurIPS 2020) applied between student and teacher, as in
    representation distillation (e.g. Fang et al., "SEED", ICLR 2021, uses embeddings
    the same way)."""
    t = tf.cast(tf.reshape(teacher, [tf.shape(teacher)[0], -1]), tf.float32)
    s = tf.cast(tf.reshape(student, [tf.shape(student)[0], -1]), tf.float32)
    if metric == "cosine":
        return 1.0 - tf.reduce_sum(tf.math.l2_normalize(t, -1) * tf.math.l2_normalize(s, -1), axis=-1)
    if metric == "mse":
        return tf.reduce_mean(tf.square(t - s), axis=-1)
    raise ValueError(f"Unknown metric {metric!r}. Expected 'cosine' or 'mse'.")


@keras.saving.register_keras_serializable(package="kdtf")
class EmbeddingLoss(DistillationLoss):
    """Label-free embedding distillation: ``1 - cos(z_s, z_t)`` or MSE per example.

    Args:
        metric: ``"cosine"`` or ``"mse"``.
    """

    def __init__(self, metric="cosine", reduction="auto", name="embedding_loss"):
        super().__init__(embedding_loss, reduction, name, metric=validation.one_of("metric", metric, ("cosine", "mse")))


@register_term("embedding")
class EmbeddingTerm(Term):
    """Label-free (:class:`EmbeddingLoss`): matches the teacher's embedding (its output,
    or a named layer); an adapter only where widths differ, so a same-width student
    learns the teacher's space itself and is the exported embedding model."""

    loss_class = EmbeddingLoss
    adapts = True
