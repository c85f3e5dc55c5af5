"""Response-based distillation losses: they compare the networks' output logits."""

from kdtf._keras import keras, tf

__all__ = ["KDLoss", "kd_loss", "softmax_kl"]


def _check_temperature(temperature):
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise ValueError(
            f"Expected temperature to be a number > 0. Received: temperature={temperature!r}"
        )
    if not temperature > 0:
        raise ValueError(f"Expected temperature > 0. Received: temperature={temperature}")
    return float(temperature)


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
    temperature = _check_temperature(temperature)
    return temperature**2 * softmax_kl(teacher_logits, student_logits, temperature)


@keras.saving.register_keras_serializable(package="kdtf")
class KDLoss(keras.losses.Loss):
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
        super().__init__(reduction=reduction, name=name)
        self.temperature = _check_temperature(temperature)

    def call(self, y_true, y_pred):
        return kd_loss(y_true, y_pred, self.temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
