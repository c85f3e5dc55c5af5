"""How a stage trains: optimizer, learning-rate schedule and kernel regularisation.

One :class:`TrainingRecipe` is settled once (from the config's ``optimizer``,
``learning_rate``, ``momentum``, ``weight_decay``, ``lr_schedule``, ``warmup_epochs`` and
``l1``) and every stage builds its optimizer from it with :func:`build_optimizer`::

    recipe = TrainingRecipe(optimizer="sgd", learning_rate=0.1, weight_decay=5e-4,
                            lr_schedule="cosine")
    add_kernel_regularization(student, *recipe.kernel_penalties)
    distiller.compile(build_optimizer(recipe, steps_per_epoch, epochs))

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

from kdtf._keras import keras, tf

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainingRecipe",
    "WarmupSchedule",
    "add_kernel_regularization",
    "build_optimizer",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
_NOT_A_KERNEL = r"^(?!.*kernel)"  # AdamW: decay variables whose name holds "kernel" only


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok, expected, flag, value):
    if not ok:
        raise ValueError(f"Expected {expected}. Received: {flag} {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainingRecipe:
    """The optimizer settings shared by every stage; validated when built.

    Field names are the config keys (the flags with ``-`` for ``_``).

    Attributes:
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"``.
        learning_rate: peak learning rate (after warm-up), > 0.
        momentum: SGD momentum in [0, 1); ignored by Adam/AdamW.
        weight_decay: >= 0; L2 in the loss for sgd/adam, decoupled for adamw (see the
            module docstring).
        lr_schedule: ``"constant"``, ``"cosine"`` (to 0 at the end of training) or
            ``"step"`` (times ``gamma`` at each of ``milestones``).
        warmup_epochs: epochs of linear warm-up from ``learning_rate / warmup_steps``
            to ``learning_rate``; must be fewer than the stage's epochs.
        l1: >= 0, L1 kernel regularisation added to the loss.
        milestones: for ``"step"``: fractions of the stage's training steps, increasing,
            in (0, 1).
        gamma: for ``"step"``: factor in (0, 1] applied at each milestone.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    l1: float = 0.0
    milestones: tuple = (0.5, 0.75)
    gamma: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        _check(self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}", "--optimizer", self.optimizer)
        _check(self.lr_schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}", "--lr-schedule", self.lr_schedule)
        _check(_number(self.learning_rate) and self.learning_rate > 0, "a learning rate > 0", "--lr", self.learning_rate)
        _check(_number(self.momentum) and 0 <= self.momentum < 1, "momentum in [0, 1)", "--momentum", self.momentum)
        _check(_number(self.weight_decay) and self.weight_decay >= 0, "weight decay >= 0", "--weight-decay", self.weight_decay)
        _check(_number(self.l1) and self.l1 >= 0, "an L1 factor >= 0", "--l1", self.l1)
        warmup = self.warmup_epochs
        _check(isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0,
               "an integer number of warm-up epochs >= 0", "--warmup-epochs", warmup)
        fractions = self.milestones
        _check(all(_number(m) and 0 < m < 1 for m in fractions) and list(fractions) == sorted(set(fractions)),
               "increasing milestones in (0, 1)", "milestones", fractions)
        _check(_number(self.gamma) and 0 < self.gamma <= 1, "gamma in (0, 1]", "gamma", self.gamma)

    @classmethod
    def from_config(cls, config, **overrides):
        """The recipe from any object (a ``DistillConfig``, argparse namespace) holding
        some of the fields as attributes; missing ones keep their defaults."""
        names = [field.name for field in dataclasses.fields(cls)]
        values = {name: getattr(config, name) for name in names if hasattr(config, name)}
        return cls(**dict(values, **overrides))

    @property
    def kernel_penalties(self):
        """``(l1, l2)`` for :func:`add_kernel_regularization`: ``l2 = weight_decay / 2``
        for sgd/adam (gradient ``+ weight_decay * w``), 0 for adamw (decoupled)."""
        l2 = 0.0 if self.optimizer == "adamw" else self.weight_decay / 2
        return self.l1, l2

    def check_epochs(self, epochs, flag="--epochs"):
        """Raises ValueError unless the warm-up is shorter than ``epochs``."""
        _check(isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1,
               "a positive number of epochs", flag, epochs)
        if self.warmup_epochs >= epochs:
            raise ValueError(
                f"Expected --warmup-epochs below the {epochs} epochs of {flag}. Received: "
                f"--warmup-epochs {self.warmup_epochs}"
            )


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


def build_optimizer(recipe, steps_per_epoch, epochs, learning_rate=None):
    """A fresh tf_keras optimizer for one stage of ``epochs`` epochs.

    Args:
        recipe: a :class:`TrainingRecipe`.
        steps_per_epoch: optimizer steps per epoch (the ``steps_per_epoch`` given to fit).
        epochs: the stage's epochs; the schedule ends with them and the warm-up must be
            shorter.
        learning_rate: the stage's peak rate, instead of ``recipe.learning_rate`` (e.g.
            the lower rate of compression fine-tuning).

    Returns:
        ``SGD``, ``Adam`` or ``AdamW``. A constant rate without warm-up is a plain float
        (the optimizer is then exactly ``Adam(learning_rate)`` for the default recipe);
        otherwise a :class:`WarmupSchedule`.
    """
    if not isinstance(recipe, TrainingRecipe):
        raise TypeError(f"Expected a kdtf.optim.TrainingRecipe. Received: recipe={recipe!r}")
    _check(isinstance(steps_per_epoch, int) and not isinstance(steps_per_epoch, bool) and steps_per_epoch >= 1,
           "a positive integer", "steps_per_epoch", steps_per_epoch)
    recipe.check_epochs(epochs)
    if learning_rate is not None:
        recipe = dataclasses.replace(recipe, learning_rate=learning_rate)  # validates it
    rate = recipe.learning_rate
    if recipe.lr_schedule != "constant" or recipe.warmup_epochs:
        rate = WarmupSchedule(
            recipe.learning_rate, steps_per_epoch * epochs, steps_per_epoch * recipe.warmup_epochs,
            decay=recipe.lr_schedule, milestones=recipe.milestones, gamma=recipe.gamma,
        )
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=recipe.momentum)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    optimizer = keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay)
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
    _check(_number(l1) and l1 >= 0, "an L1 factor >= 0", "--l1", l1)
    _check(_number(l2) and l2 >= 0, "an L2 factor >= 0 (weight_decay / 2)", "--weight-decay", l2)
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
