"""Adversarial distillation: a discriminator tells teacher from student outputs, and the
student learns to fool it (MEAL V2, Shen & Savvides, 2020, arXiv:2009.08453; the
adversarial game of Goodfellow et al., NeurIPS 2014).

With ``p_t`` the teacher's (or the teachers' weighted mean) softmax output, ``p_s`` the
student's, and ``D`` a small MLP giving a logit "this came from the teacher"::

    L_D   = 1/2 * [ BCE(D(p_t), 1) + BCE(D(stop_gradient(p_s)), 0) ]
          = 1/2 * mean[ softplus(-D(p_t)) + softplus(D(p_s)) ]
    L_adv = BCE(D(p_s), 1) = mean softplus(-D(p_s))          (non-saturating)
    L_student = alpha * CE + (1 - alpha) * sum_i w_i L_i + lambda * L_adv

Each ``train_step`` first updates the student (and the terms' adapters) on
``L_student`` with the compiled optimizer, ``D`` held fixed, then updates ``D`` on
``L_D`` with its own optimizer, the student's outputs stopped: the two alternate inside
one step. :class:`AdversarialDistiller` is a :class:`kdtf.Distiller` with this added::

    distiller = kdtf.AdversarialDistiller(student, teacher, adversarial_weight=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(train_ds, epochs=10)
"""

from kdtf import validation
from kdtf._keras import keras, tf
from kdtf.data.teacher_outputs import CACHED_KEY
from kdtf.distiller import Distiller

__all__ = ["AdversarialDistiller", "discriminator_mlp", "discriminator_loss", "adversarial_loss"]


def _weighted_mean(values, sample_weight):
    values = tf.cast(tf.reshape(values, [-1]), tf.float32)
    if sample_weight is not None:
        values = values * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.reduce_mean(values)


def adversarial_loss(student_scores, sample_weight=None):
    """The student's (generator's) loss: ``mean softplus(-D(p_s)) = BCE(D(p_s), 1)``,
    the non-saturating form of Goodfellow et al. (2014), as MEAL V2 trains the student
    to make its outputs pass for the teacher's.

    Args:
        student_scores: the discriminator's logits on the student's outputs, ``(batch, 1)``.
        sample_weight: optional ``(batch,)`` weights.
    """
    return _weighted_mean(tf.nn.softplus(-tf.cast(student_scores, tf.float32)), sample_weight)


def discriminator_loss(teacher_scores, student_scores, sample_weight=None):
    """The discriminator's binary cross-entropy, teacher = 1, student = 0, over the
    concatenated batch: ``1/2 * mean[softplus(-D(p_t)) + softplus(D(p_s))]`` (MEAL V2,
    Shen & Savvides, 2020, arXiv:2009.08453).

    Returns:
        ``(loss, accuracy)``: the scalar loss and the fraction of the ``2 * batch``
        outputs ``D`` classifies right at logit 0.
    """
    t, s = tf.cast(teacher_scores, tf.float32), tf.cast(student_scores, tf.float32)
    loss = 0.5 * (_weighted_mean(tf.nn.softplus(-t), sample_weight) + _weighted_mean(tf.nn.softplus(s), sample_weight))
    hits = tf.concat([tf.reshape(tf.cast(t > 0, tf.float32), [-1]), tf.reshape(tf.cast(s <= 0, tf.float32), [-1])], 0)
    return loss, tf.reduce_mean(hits)


def discriminator_mlp(classes, units=None, name="discriminator"):
    """The discriminator: ``classes`` probabilities -> Dense+ReLU per ``units`` -> one logit.

    MEAL V2's discriminator is three 1x1 convolutions ``C -> C/2 -> C/4 -> 2`` on the
    output vector; the default ``units`` follow it, at least 16 wide (``(16, 16)`` for
    10 classes, ``(500, 250)`` for 1,000).

    Args:
        classes: width of the output distributions.
        units: hidden widths (positive integers); ``None`` for the MEAL V2 widths.
        name: model name.
    """
    if units is None:
        units = (max(classes // 2, 16), max(classes // 4, 16))
    units = _check_units(units)
    layers = [keras.Input((classes,))]
    layers += [keras.layers.Dense(u, activation="relu", name=f"{name}_dense{i + 1}") for i, u in enumerate(units)]
    layers.append(keras.layers.Dense(1, name=f"{name}_logit"))
    return keras.Sequential(layers, name=name)


def _check_units(units):
    units = list(units) if isinstance(units, (list, tuple)) else [units]
    if not units:
        raise ValueError("Expected discriminator_units to name at least one hidden width. Received: discriminator_units=[]")
    for u in units:
        validation.integer("discriminator_units", u, 1, what="a list of positive integers")
    return tuple(int(u) for u in units)


def _optimizer(identifier):
    if identifier is None:
        return keras.optimizers.Adam(1e-3)
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return keras.optimizers.Adam(validation.number("discriminator_optimizer", identifier, 0, low_open=True))
    if isinstance(identifier, dict) and isinstance(identifier.get("config"), dict):
        # a config without the flag would come back as a legacy optimizer (no build())
        identifier = dict(identifier, config={"is_legacy_optimizer": False, **identifier["config"]})
    try:
        optimizer = keras.optimizers.get(identifier)
    except ValueError:
        optimizer = None
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            "Expected discriminator_optimizer to be a Keras optimizer, its name, its config or a learning rate. "
            f"Received: discriminator_optimizer={identifier!r}"
        )
    return optimizer


class _Recording:
    """The Distiller's :class:`kdtf.data.TeacherOutputs`, recording the teachers' logits
    each time the step reads them (computed or carried by the batch), so that the
    discriminator sees the same outputs as the terms without a second teacher pass."""

    def __init__(self, inner, record):
        self._inner, self._record = inner, record

    def __call__(self, x):
        return self._inner(x)

    def unflatten(self, flat):
        teachers = self._inner.unflatten(flat)
        self._record([t[None] for t in teachers])
        return teachers

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


@keras.saving.register_keras_serializable(package="kdtf")
class AdversarialDistiller(Distiller):
    """A :class:`kdtf.Distiller` whose student also learns to fool a discriminator on the
    output distributions (MEAL V2, Shen & Savvides, 2020, arXiv:2009.08453).

    ``L_student = alpha * CE + (1 - alpha) * sum_i w_i L_i + lambda * mean softplus(-D(p_s))``
    and ``L_D = 1/2 * mean[softplus(-D(p_t)) + softplus(D(p_s))]`` with ``p = softmax(z)``
    (temperature 1, as MEAL V2); the teachers' distributions are averaged with the
    spec's teacher weights. One ``train_step`` updates the student with the compiled
    optimizer (``D`` fixed), then ``D`` with ``discriminator_optimizer`` (the student's
    outputs stopped). ``D`` reads every example, labelled or not.

    The discriminator and its optimizer are part of the Distiller: a ``.keras`` file
    holds both (the optimizer's step count and moments included) and reloads compiled;
    checkpoints (``BackupAndRestore``) track them too. Neither is part of the exported
    student. ``fit`` adds ``adversarial_loss`` (``L_adv``), ``discriminator_loss`` and
    ``discriminator_accuracy`` to the Distiller's logs; ``loss`` includes
    ``lambda * L_adv``. The discriminator reads the same teacher outputs as the terms
    (one teacher pass per step, or the outputs the batch carries from
    :meth:`cached_dataset`).

    Args:
        student, teacher, spec: as for :class:`kdtf.Distiller` (and its keyword fields
            ``temperature``, ``alpha``, ``distill``, ``teacher_weights``).
        adversarial_weight: ``lambda >= 0`` (default 1, MEAL V2's weight).
        discriminator_units: hidden widths of :func:`discriminator_mlp` (``None``: MEAL
            V2's ``C/2, C/4``, at least 16).
        discriminator_optimizer: a Keras optimizer, its name or config, or a learning
            rate for Adam (default Adam 1e-3).
        name: model name.
    """

    def __init__(self, student, teacher, spec=None, *, adversarial_weight=1.0, discriminator_units=None,
                 discriminator_optimizer=None, name="adversarial_distiller", **kwargs):
        weight = validation.number("adversarial_weight", adversarial_weight, 0)
        units = None if discriminator_units is None else _check_units(discriminator_units)
        optimizer = _optimizer(discriminator_optimizer)
        super().__init__(student, teacher, spec, name=name, **kwargs)
        self.adversarial_weight = weight
        classes = int(self.student_logits.output_shape[-1])
        self.discriminator = discriminator_mlp(classes, units, name=f"{name}_discriminator")
        self.discriminator_units = _check_units([layer.units for layer in self.discriminator.layers[:-1]])
        self.discriminator_optimizer = optimizer
        # variables exist from the start, so a reloaded file restores the optimizer's state into them
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)
        self.adversarial_tracker = keras.metrics.Mean(name="adversarial_loss")
        self.discriminator_loss_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.discriminator_accuracy_tracker = keras.metrics.Mean(name="discriminator_accuracy")
        self._record(None)
        # the terms read the teachers' outputs through this object: record the logits of the step
        self._teacher_outputs = _Recording(self._teacher_outputs, self._record)

    def _record(self, teacher_logits):
        # a plain attribute (no Keras tracking): the symbolic teacher logits of the step being traced
        object.__setattr__(self, "_step_teacher_logits", teacher_logits)

    def summary(self, print_fn=None, **kwargs):
        """The Distiller's summary, then the discriminator (trained by its own optimizer)."""
        print_fn = print_fn or print
        super().summary(print_fn=print_fn, **kwargs)
        print_fn(f"  {'critic':<8} {self.discriminator.name:<32} {self.discriminator.count_params():>12,} params "
                 f"(trained by its own {type(self.discriminator_optimizer).__name__}, lambda={self.adversarial_weight:g})")

    @property
    def adversarial_metrics(self):
        return [self.adversarial_tracker, self.discriminator_loss_tracker, self.discriminator_accuracy_tracker]

    @property
    def metrics(self):
        return super().metrics + self.adversarial_metrics

    # -- the teachers' distributions --------------------------------------------------
    def _teacher_probabilities(self, x):
        """The teachers' weighted mean softmax output on this step's batch: recorded while
        the terms read the teachers (one forward pass), else computed here."""
        logits = self._step_teacher_logits
        self._record(None)
        if logits is None:
            x = x["x"] if isinstance(x, dict) and CACHED_KEY in x else x
            logits = [tf.stop_gradient(view(x, training=False)) for view in self.teacher_logits_views]
        probs = [w * tf.nn.softmax(tf.cast(z, tf.float32)) for w, z in zip(self.teacher_weights, logits)]
        return tf.add_n(probs)

    # -- the step ---------------------------------------------------------------------
    def _adversarial_losses(self, x, y, sample_weight, training):
        """The Distiller's losses with ``lambda * L_adv`` added to the total, ``L_adv`` and
        both distributions (stopped) for the discriminator's step."""
        self._record(None)
        losses = self._compute_losses(x, y, sample_weight, training)
        teacher_p = tf.stop_gradient(self._teacher_probabilities(x))
        student_p = tf.nn.softmax(tf.cast(losses.logits, tf.float32))
        adversarial = adversarial_loss(self.discriminator(student_p, training=False), sample_weight)
        losses = losses._replace(total=losses.total + self.adversarial_weight * adversarial)
        return losses, adversarial, teacher_p, tf.stop_gradient(student_p)

    def _discriminator_losses(self, teacher_p, student_p, sample_weight, training):
        return discriminator_loss(self.discriminator(teacher_p, training=training),
                                  self.discriminator(student_p, training=training), sample_weight)

    def _log(self, logs, adversarial, d_loss, d_accuracy):
        for tracker, value in zip(self.adversarial_metrics, (adversarial, d_loss, d_accuracy)):
            tracker.update_state(value)
        return dict(logs, **{m.name: m.result() for m in self.adversarial_metrics})

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        with tf.GradientTape() as tape:
            losses, adversarial, teacher_p, student_p = self._adversarial_losses(x, y, sample_weight, True)
            objective = losses.total
            if self.student.losses:
                objective += tf.cast(tf.add_n(self.student.losses), tf.float32)
            objective /= replicas
        self.optimizer.minimize(objective, self.trainable_student_variables, tape=tape)
        with tf.GradientTape() as tape:
            d_loss, d_accuracy = self._discriminator_losses(teacher_p, student_p, sample_weight, True)
            d_objective = d_loss / replicas
        self.discriminator_optimizer.minimize(d_objective, self.discriminator.trainable_variables, tape=tape)
        return self._log(self._update_metrics(y, sample_weight, losses), adversarial, d_loss, d_accuracy)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        losses, adversarial, teacher_p, student_p = self._adversarial_losses(x, y, sample_weight, False)
        d_loss, d_accuracy = self._discriminator_losses(teacher_p, student_p, sample_weight, False)
        return self._log(self._update_metrics(y, sample_weight, losses), adversarial, d_loss, d_accuracy)

    # -- serialization -------------------------------------------------------------
    def get_config(self):
        return dict(
            super().get_config(),
            adversarial_weight=self.adversarial_weight,
            discriminator_units=list(self.discriminator_units),
            discriminator_optimizer=keras.optimizers.serialize(self.discriminator_optimizer),
        )
