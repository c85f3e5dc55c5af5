"""How a stage trains: optimizer, learning-rate schedule and kernel regularisation.

One :class:`TrainingSettings` is settled once (from the config's ``optimizer``,
``learning_rate``, ``momentum``, ``weight_decay``, ``lr_schedule``, ``warmup_epochs`` and
``l1``) and every stage builds its optimizer from it with :func:`build_optimizer`::

    settings = TrainingSettings(optimizer="sgd", learning_rate=0.1, weight_decay=5e-4,
                            lr_schedule="cosine")
    add_kernel_regularization(student, *settings.kernel_penalties)
    distiller.compile(build_optimizer(settings, steps_per_epoch, epochs))

SGD clips the global gradient norm to 1.0 unless ``clip_norm`` says otherwise
(``TrainingSettings.clip_norm``): without it the mission's SGD 0.1 / 0.9 / 5e-4 cosine
recipe turned the BatchNormalization-free ``student_cnn`` into a constant predictor
under distillation (the KD term at ``T = 4`` scales the logits' gradient by up to 4).

Weight decay follows the mission's recipe (and PyTorch's ``SGD(weight_decay=...)``):

* ``sgd`` and ``adam``: an L2 term ``weight_decay / 2 * sum(w ** 2)`` over every
  Conv/Dense/Depthwise kernel is added to the loss, so the gradient gets
  ``+ weight_decay * w`` (and, with SGD, that term goes through the momentum buffer).
* ``adamw``: decoupled decay (Loshchilov & Hutter, "Decoupled Weight Decay
  Regularization", ICLR 2019): ``w <- w - lr_t * weight_decay * w`` before each Adam
  step, on kernels only (biases and BatchNormalization are not decayed, as with SGD).

``l1`` adds ``l1 * sum(|w|)`` over the same kernels to the loss, whatever the optimizer.

The optimizers are tf_keras ones, so ``Distiller.train_step``'s
``optimizer.minimize(loss, variables, tape=tape)`` and ``BackupAndRestore`` (which
checkpoints the optimizer's variables, ``iterations`` included, hence the position in
the schedule) work with them unchanged.
"""

import dataclasses
import math

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.spec import OPTIMIZERS, SCHEDULES, TrainingSettings

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainingSettings",
    "WarmupSchedule",
    "add_kernel_regularization",
    "build_optimizer",
]

_NOT_A_KERNEL = r"^(?!.*kernel)"  # AdamW: decay variables whose name holds "kernel" only


@keras.saving.register_keras_serializable(package="kdtf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, cosine or step decay, by optimizer step.

    With ``W = warmup_steps``, ``T = total_steps``, peak rate ``lr`` and step ``s``
    (0 for the first update)::

        s < W:      lr * (s + 1) / W
        constant:   lr
        cosine:     lr * (1 + cos(pi * p)) / 2,   p = min(1, (s - W) / (T - W))
        step:       lr * gamma ** (number of milestones m with s >= round(m * T))

    Cosine annealing: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with
    Warm Restarts", ICLR 2017 (one cycle, no restart); warm-up: Goyal et al., "Accurate,
    Large Minibatch SGD", 2017.
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, decay="constant", milestones=(0.5, 0.75), gamma=0.1):
        super().__init__()
        if decay not in SCHEDULES:
            raise ValueError(f"Expected decay in {', '.join(SCHEDULES)}. Received: decay={decay!r}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"Expected 0 <= warmup_steps < total_steps. Received: warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.learning_rate = float(learning_rate)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.decay, self.milestones, self.gamma = decay, tuple(float(m) for m in milestones), float(gamma)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.learning_rate, tf.float32)
        if self.decay == "cosine":
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            rate = peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.decay == "step":
            passed = [tf.cast(step >= round(m * self.total_steps), tf.float32) for m in self.milestones]
            rate = peak * tf.pow(self.gamma, tf.add_n(passed))
        else:
            rate = peak
        if self.warmup_steps:
            rate = tf.where(step < self.warmup_steps, peak * (step + 1.0) / self.warmup_steps, rate)
        return rate

    def get_config(self):
        return {
            "learning_rate": self.learning_rate, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "decay": self.decay, "milestones": list(self.milestones), "gamma": self.gamma,
        }


def build_optimizer(settings, steps_per_epoch, epochs, learning_rate=None):
    """A fresh tf_keras optimizer for one stage of ``epochs`` epochs.

    Args:
        settings: a :class:`TrainingSettings`.
        steps_per_epoch: optimizer steps per epoch (the ``steps_per_epoch`` given to fit).
        epochs: the stage's epochs; the schedule ends with them and the warm-up must be
            shorter.
        learning_rate: the stage's peak rate, instead of ``settings.learning_rate`` (e.g.
            the lower rate of compression fine-tuning).

    Returns:
        ``SGD``, ``Adam`` or ``AdamW``. A constant rate without warm-up is a plain float
        (the optimizer is then exactly ``Adam(learning_rate)`` for the default settings);
        otherwise a :class:`WarmupSchedule`.
    """
    if not isinstance(settings, TrainingSettings):
        raise TypeError(f"Expected a kdtf.optim.TrainingSettings. Received: settings={settings!r}")
    validation.check(isinstance(steps_per_epoch, int) and not isinstance(steps_per_epoch, bool) and steps_per_epoch >= 1,
           "a positive integer", "steps_per_epoch", steps_per_epoch)
    settings.check_epochs(epochs)
    if learning_rate is not None:
        settings = dataclasses.replace(settings, learning_rate=learning_rate)  # validates it
    rate = settings.learning_rate
    if settings.lr_schedule != "constant" or settings.warmup_epochs:
        rate = WarmupSchedule(
            settings.learning_rate, steps_per_epoch * epochs, steps_per_epoch * settings.warmup_epochs,
            decay=settings.lr_schedule, milestones=settings.milestones, gamma=settings.gamma,
        )
    clip = settings.global_clipnorm  # 1.0 for SGD unless set (see TrainingSettings.clip_norm)
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=settings.momentum, global_clipnorm=clip)
    if settings.optimizer == "adam":
        return keras.optimizers.Adam(rate, global_clipnorm=clip)
    optimizer = keras.optimizers.AdamW(rate, weight_decay=settings.weight_decay, global_clipnorm=clip)
    optimizer.exclude_from_weight_decay(var_names=[_NOT_A_KERNEL])
    return optimizer


def _kernel_slots(layer):
    """``(weight attribute, regularizer attribute)`` pairs of a Conv/Dense/Depthwise layer."""
    layers = keras.layers
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        return (("depthwise_kernel", "depthwise_regularizer"), ("pointwise_kernel", "pointwise_regularizer"))
    if isinstance(layer, layers.DepthwiseConv2D | layers.DepthwiseConv1D):
        return (("depthwise_kernel", "depthwise_regularizer"),)
    if isinstance(layer, layers.Dense | layers.Conv1D | layers.Conv2D | layers.Conv3D):
        return (("kernel", "kernel_regularizer"),)
    return ()


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
            continue
        while isinstance(layer, keras.layers.Wrapper):  # TF-MOT pruning/QAT/cluster wrappers
            layer = layer.layer
        yield layer


def _same_penalty(regularizer, l1, l2):
    return (
        isinstance(regularizer, keras.regularizers.L1L2)
        and math.isclose(float(regularizer.l1), l1, rel_tol=1e-6, abs_tol=1e-12)
        and math.isclose(float(regularizer.l2), l2, rel_tol=1e-6, abs_tol=1e-12)
    )


def add_kernel_regularization(model, l1=0.0, l2=0.0):
    """Adds ``l1 * sum(|w|) + l2 * sum(w ** 2)`` per Conv/Dense/Depthwise kernel to the
    model's losses, without rebuilding it.

    Each kernel gets a callable loss on its layer (``layer.add_loss``), so
    ``model.losses`` holds it: ``fit`` of a compiled model adds it to the loss, and
    :class:`kdtf.Distiller` adds ``student.losses`` to its objective. The same
    ``L1L2`` is also set as the layer's ``kernel_regularizer`` (not applied by itself:
    it is built only into copies), so every copy made from the config — TF-MOT's
    ``prune_low_magnitude``/``quantize_apply``, :func:`kdtf.compress.clone_with_weights`,
    a saved and reloaded ``.keras`` — carries the same penalty exactly once.

    With pruning the penalty is on the layer's kernel, which the wrapper masks (pruned
    zeros add nothing); with QAT on the float kernel that the fake-quant reads. With
    clustering the kernel is replaced by centroids that the penalty does not see.

    Calling it again with the same factors changes nothing; with other factors, or on
    a layer that already has a different kernel regularizer, it raises ValueError.

    Args:
        model: a tf_keras model (Sequential/Functional, possibly nested or wrapped).
        l1, l2: factors >= 0. Both 0: the model is returned unchanged.

    Returns:
        ``model`` (the same object).
    """
    validation.check(validation.is_number(l1) and l1 >= 0, "an L1 factor >= 0", "--l1", l1)
    validation.check(validation.is_number(l2) and l2 >= 0, "an L2 factor >= 0 (weight_decay / 2)", "--weight-decay", l2)
    if not (l1 or l2):
        return model
    penalty = keras.regularizers.L1L2(l1=float(l1), l2=float(l2))
    for layer in _leaf_layers(model):
        for weight_name, regularizer_name in _kernel_slots(layer):
            current = getattr(layer, regularizer_name, None)
            if _same_penalty(current, l1, l2):
                continue  # already regularised (by an earlier call or built from a config)
            if current is not None:
                raise ValueError(
                    f"Layer '{layer.name}' already has a {regularizer_name} ({keras.regularizers.serialize(current)}); "
                    f"a second kernel penalty (l1={l1}, l2={l2}) would add to it. Build the model without it."
                )
            kernel = getattr(layer, weight_name)
            setattr(layer, regularizer_name, penalty)
            layer.add_loss(lambda kernel=kernel: penalty(kernel))
    return model
