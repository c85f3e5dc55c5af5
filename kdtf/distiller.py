"""The Distiller: a ``keras.Model`` that trains a student to imitate a teacher.

``loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``

Used like any Keras model::

    distiller = kdtf.Distiller(student, teacher, temperature=4.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(train_ds, validation_data=val_ds, epochs=10, callbacks=[...])
    distiller.student.save("student.keras")
"""

from kdtf._keras import keras, require_keras_model, tf
from kdtf.callbacks import StopOnNonFiniteLoss
from kdtf.losses.response import _check_temperature, kd_loss

__all__ = ["Distiller", "logits_view", "label_mask", "cross_entropy"]


def _output_layer(model, argument):
    if not model.built or not getattr(model, "outputs", None):
        raise ValueError(
            f"`{argument}` ({model.name}) is not built: give it an input shape "
            "(keras.Input or `input_shape=` on its first layer) before distilling."
        )
    if len(model.outputs) != 1:
        raise ValueError(
            f"`{argument}` ({model.name}) has {len(model.outputs)} outputs; the Distiller "
            "expects a single logits output. Build a single-output view, e.g. "
            "keras.Model(model.inputs, model.outputs[0])."
        )
    return model.outputs[0]._keras_history.layer


def _is_softmax(activation):
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def logits_view(model, argument="model", copy_dense=True):
    """Returns a model that outputs logits, given one that may end in softmax.

    * A final ``Softmax`` layer or ``Activation("softmax")``: the returned model shares
      every weight with ``model`` and outputs that layer's input.
    * A final layer with ``activation="softmax"`` (e.g. ``Dense``): with
      ``copy_dense=True`` the returned model ends in a linear copy of that layer holding
      the same weights (fine for a frozen teacher); otherwise a ValueError says how to
      rebuild the model.
    * Otherwise ``model`` itself is returned.
    """
    layer = _output_layer(model, argument)
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)
    ):
        return keras.Model(model.inputs, layer.input, name=f"{model.name}_logits")
    if _is_softmax(getattr(layer, "activation", None)):
        if not copy_dense:
            raise ValueError(
                f"`{argument}` ends in layer '{layer.name}' with activation='softmax', but "
                "distillation trains on logits. Build the student with a linear last layer "
                "(activation=None), and add softmax after training if your app needs "
                "probabilities."
            )
        config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_logits")
        linear = layer.__class__.from_config(config)
        logits = linear(layer.input)
        linear.set_weights(layer.get_weights())
        return keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    return model


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"Expected alpha in [0, 1]. Received: alpha={alpha!r}")
    return float(alpha)


def _is_one_hot(labels, logits):
    classes = logits.shape[-1]
    return labels.shape.rank == logits.shape.rank and labels.shape[-1] == classes and classes != 1


def label_mask(labels, logits):
    """1.0 for labelled examples, 0.0 for unlabeled ones, shape ``(batch,)``.

    Unlabeled examples carry a negative sparse label (``-1``) or an all-zero one-hot row.
    """
    if _is_one_hot(labels, logits):
        return tf.cast(tf.reduce_sum(tf.cast(labels, tf.float32), axis=-1) > 0, tf.float32)
    return tf.cast(tf.reshape(labels, [-1]) >= 0, tf.float32)


def cross_entropy(labels, logits):
    """Per-example cross-entropy from logits; one-hot or sparse labels are detected.
    Unlabeled examples (see :func:`label_mask`) get a finite placeholder value; mask them."""
    logits = tf.cast(logits, tf.float32)
    if _is_one_hot(labels, logits):
        return keras.losses.categorical_crossentropy(
            tf.cast(labels, tf.float32), logits, from_logits=True
        )
    return keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), logits, from_logits=True)


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return tf.reduce_mean(values)
    weights = tf.reshape(tf.cast(sample_weight, values.dtype), tf.shape(values))
    return tf.reduce_mean(values * weights)


def _masked_mean(values, mask, sample_weight):
    # sum over labelled examples / their number: equals the plain (weighted) batch mean
    # when every example is labelled, and 0 when none is.
    weights = mask if sample_weight is None else mask * tf.reshape(tf.cast(sample_weight, values.dtype), tf.shape(mask))
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(mask))


@keras.saving.register_keras_serializable(package="kdtf")
class Distiller(keras.Model):
    """Trains ``student`` on labels and on a frozen ``teacher``'s softened outputs.

    ``loss = alpha * CE(y, z_s) + (1 - alpha) * T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``
    (Hinton, Vinyals & Dean, 2015, arXiv:1503.02531).

    The teacher runs with ``training=False`` and its outputs are wrapped in
    ``tf.stop_gradient``; gradients are applied to the student's trainable weights
    only. Labels may be sparse (``(batch,)`` or ``(batch, 1)``) or one-hot. Data without
    labels (``fit(x)``) trains on the distillation term alone.

    Transfer-set distillation: in a batch mixing labelled and unlabeled examples, mark the
    unlabeled ones with sparse label ``-1`` (or an all-zero one-hot row). The distillation
    term is averaged over every example, the cross-entropy over the labelled ones only
    (0 when a batch has none), and compiled metrics count labelled examples only.

    ``fit`` logs ``loss``, ``student_loss``, ``distillation_loss`` and the compiled
    metrics (computed on the student's outputs); ``evaluate`` reports the same for the
    student; ``predict`` returns the student's outputs. The student, not the Distiller,
    is what you save and ship: ``distiller.student.save("student.keras")``.

    A teacher that ends in softmax is read before its softmax (see :func:`logits_view`);
    a student ending in a separate ``Softmax``/``Activation("softmax")`` layer is trained
    through its logits, one ending in ``Dense(activation="softmax")`` is refused.
    Training stops with :class:`kdtf.callbacks.NonFiniteLossError` at the first NaN/Inf
    loss; pruning wrappers get TF-MOT's ``UpdatePruningStep`` attached by ``fit``.

    Args:
        student: tf_keras Sequential or Functional model producing logits.
        teacher: tf_keras model with the same output shape.
        temperature: softening temperature ``T > 0``.
        alpha: weight of the student's cross-entropy, in ``[0, 1]``.
        name: model name.
    """

    def __init__(self, student, teacher, *, temperature=4.0, alpha=0.5, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self.student = require_keras_model(student, "student")
        self.teacher = require_keras_model(teacher, "teacher")
        if student is teacher:
            raise ValueError("`student` and `teacher` are the same model object; pass two models.")
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.student_logits = logits_view(student, "student", copy_dense=False)
        self.teacher_logits = logits_view(teacher, "teacher", copy_dense=True)
        s_shape = tuple(self.student_logits.output_shape[1:])
        t_shape = tuple(self.teacher_logits.output_shape[1:])
        if s_shape != t_shape:
            raise ValueError(
                "Student and teacher output shapes differ: student "
                f"'{student.name}' outputs {(None,) + s_shape}, teacher '{teacher.name}' "
                f"outputs {(None,) + t_shape}. Both must produce logits over the same "
                "classes."
            )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    # -- Keras API ---------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", metrics=None, **kwargs):
        """Like ``keras.Model.compile``; the loss comes from the Distiller itself."""
        if kwargs.get("loss") is not None:
            raise ValueError(
                "Distiller.compile() takes no `loss`: the loss is alpha * cross-entropy + "
                "(1 - alpha) * T^2 * KL, set with Distiller(temperature=..., alpha=...). "
                f"Received: loss={kwargs['loss']!r}"
            )
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        metrics = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker]
        compiled = getattr(self, "compiled_metrics", None)
        if compiled is not None:
            metrics += compiled.metrics
        return metrics

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _compute_losses(self, x, y, sample_weight, training):
        teacher_logits = tf.stop_gradient(self.teacher_logits(x, training=False))
        student_logits = self.student_logits(x, training=training)
        distill = _weighted_mean(kd_loss(teacher_logits, student_logits, self.temperature), sample_weight)
        if y is None:
            student = tf.zeros((), tf.float32)
            total = distill
        else:
            mask = label_mask(y, student_logits)
            student = _masked_mean(cross_entropy(y, student_logits), mask, sample_weight)
            total = self.alpha * student + (1.0 - self.alpha) * distill
        return student_logits, total, student, distill

    def _update_metrics(self, y, student_logits, sample_weight, total, student, distill):
        self.loss_tracker.update_state(total)
        self.student_loss_tracker.update_state(student)
        self.distillation_loss_tracker.update_state(distill)
        if y is not None and getattr(self, "compiled_metrics", None) is not None:
            # Metrics see labelled examples only. Rows are dropped rather than weighted:
            # tf_keras applies sample weights to `weighted_metrics` only.
            keep = label_mask(y, student_logits) > 0
            if sample_weight is not None:
                sample_weight = tf.boolean_mask(sample_weight, keep)
            self.compiled_metrics.update_state(
                tf.boolean_mask(y, keep), tf.boolean_mask(student_logits, keep), sample_weight
            )
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            student_logits, total, student, distill = self._compute_losses(x, y, sample_weight, True)
            objective = total
            if self.student.losses:
                objective += tf.cast(tf.add_n(self.student.losses), tf.float32)
            # Gradients are summed over replicas, so each replica's mean loss is divided
            # by their number, as Keras's own compiled loss does.
            objective /= tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        self.optimizer.minimize(objective, self.student.trainable_variables, tape=tape)
        return self._update_metrics(y, student_logits, sample_weight, total, student, distill)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_logits, total, student, distill = self._compute_losses(x, y, sample_weight, False)
        return self._update_metrics(y, student_logits, sample_weight, total, student, distill)

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` plus the callbacks distillation needs.

        Adds :class:`~kdtf.callbacks.StopOnNonFiniteLoss` and, when the student holds
        TF-MOT pruning wrappers, ``UpdatePruningStep`` (unless already given).
        """
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss(stage=f"{self.name} (student '{self.student.name}')"))
        from kdtf.compress.prune import is_pruned

        if is_pruned(self.student):
            from tensorflow_model_optimization.sparsity import keras as sparsity

            if not any(isinstance(c, sparsity.UpdatePruningStep) for c in callbacks):
                callbacks.append(sparsity.UpdatePruningStep())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # -- serialization -------------------------------------------------------------
    def get_config(self):
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        student = keras.saving.deserialize_keras_object(config.pop("student"), custom_objects)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"), custom_objects)
        return cls(student, teacher, **config)
