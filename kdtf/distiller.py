"""The Distiller: a ``keras.Model`` that trains a student to imitate a teacher.

``loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``

Used like any Keras model::

    distiller = kdtf.Distiller(student, teacher, temperature=4.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(train_ds, validation_data=val_ds, epochs=10, callbacks=[...])
    distiller.student.save("student.keras")
"""

import dataclasses

import numpy as np

from kdtf._keras import keras, require_keras_model, tf
from kdtf.callbacks import StopOnNonFiniteLoss

from kdtf.losses.response import _check_temperature, dkd_loss, kd_loss
from kdtf.taps import tap
from kdtf.terms import parse_terms

__all__ = ["Distiller", "logits_view", "label_mask", "cross_entropy", "CACHED_KEY"]

CACHED_KEY = "teacher_outputs"  # batches from Distiller.cached_dataset(): {"x": ..., CACHED_KEY: (...)}


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

    Several terms: ``distill="kd:1.0,fitnets:0.5@conv2/conv4"`` (or a list of
    :class:`kdtf.terms.Term`) makes ``loss = alpha * CE + (1 - alpha) * sum_i w_i L_i``,
    each term logged as ``<name>_loss`` (with two or more terms; one term is the
    ``distillation_loss``). Feature, relational and representation terms
    read the layers they name through multi-output views of the models (no rewriting);
    where widths differ a learnable adapter (1x1 conv or Dense) maps the student's
    feature to the teacher's; adapters train with the student, live in the Distiller's
    checkpoints and are not part of the exported student. With only label-free terms
    (``embedding``, relational) the teacher needs no classifier and ``fit(x)`` suffices.

    Several teachers: ``teacher=[t1, t2]`` averages their softened distributions in the
    ``kd`` term (weighted by ``teacher_weights``); the other terms read the teacher named
    by their ``#index`` (default 0).

    Args:
        student: tf_keras Sequential or Functional model producing logits.
        teacher: tf_keras model (or list of models) with the same output shape.
        temperature: softening temperature ``T > 0`` of the response terms.
        alpha: weight of the student's cross-entropy, in ``[0, 1]``.
        distill: terms (spec string, list of strings/dicts/Terms); default Hinton KD.
        teacher_weights: one non-negative weight per teacher (normalised); default equal.
        name: model name.
    """

    def __init__(self, student, teacher, *, temperature=4.0, alpha=0.5, distill=None, teacher_weights=None, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self.student = require_keras_model(student, "student")
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not teachers:
            raise ValueError("Expected at least one teacher. Received: teacher=[]")
        for i, t in enumerate(teachers):
            require_keras_model(t, "teacher" if len(teachers) == 1 else f"teacher[{i}]")
            if t is student:
                raise ValueError("`student` and `teacher` are the same model object; pass two models.")
        self.teachers = teachers
        self.teacher = teachers[0]
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.teacher_weights = _check_teacher_weights(teacher_weights, len(teachers))
        self.terms = [dataclasses.replace(t, options=dict(t.options)) for t in parse_terms(distill)]
        for term in self.terms:
            if not 0 <= term.teacher < len(teachers):
                raise ValueError(
                    f"Term '{term.loss}' reads teacher {term.teacher}, but {len(teachers)} teacher(s) were given."
                )
        # response terms use the Distiller's temperature unless their options set one
        for term in self.terms:
            if term.kind == "response":
                term.options.setdefault("temperature", self.temperature)
        self._term_losses = [term.make_loss() for term in self.terms]
        # Logits views strip a final softmax (a model without one is returned as is).
        self.student_logits = logits_view(student, "student", copy_dense=False)
        self.teacher_logits_views = [logits_view(t, "teacher", copy_dense=True) for t in teachers]
        self.teacher_logits = self.teacher_logits_views[0]
        if any(term.kind == "response" for term in self.terms):  # they compare class logits
            s_shape = tuple(self.student_logits.output_shape[1:])
            for t, view in zip(teachers, self.teacher_logits_views):
                t_shape = tuple(view.output_shape[1:])
                if s_shape != t_shape:
                    raise ValueError(
                        "Student and teacher output shapes differ: student "
                        f"'{student.name}' outputs {(None,) + s_shape}, teacher '{t.name}' "
                        f"outputs {(None,) + t_shape}. Both must produce logits over the same "
                        "classes."
                    )
        # Multi-output views reading the layers the terms name, sharing all weights.
        student_layers = sorted({t.student_layer for t in self.terms if t.student_layer})
        self._student_index = {n: i + 1 for i, n in enumerate(student_layers)}
        self._student_view = tap(self.student_logits, student_layers, argument="student") if student_layers else None
        self._teacher_views, self._teacher_index = [], []
        for k, view in enumerate(self.teacher_logits_views):
            names = sorted({t.teacher_layer for t in self.terms if t.teacher_layer and t.teacher == k})
            self._teacher_index.append({n: i + 1 for i, n in enumerate(names)})
            self._teacher_views.append(tap(view, names, argument=f"teacher[{k}]") if names else None)
        self.adapters = [self._make_adapter(term) for term in self.terms]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        labels = [term.loss for term in self.terms]
        self._term_names = [f"{n}_loss" if labels.count(n) == 1 else f"{n}{labels[:i].count(n) + 1}_loss" for i, n in enumerate(labels)]
        self.term_trackers = [keras.metrics.Mean(name=n) for n in self._term_names] if len(self.terms) > 1 else []

    def _feature_shape(self, model, layer):
        return tuple((model.get_layer(layer).output if layer else model.outputs[0]).shape[1:])

    def _make_adapter(self, term):
        """A learnable map from the student's feature to the teacher's width: a 1x1 conv
        for maps, Dense for vectors, only where the widths differ (with equal widths the
        student learns the teacher's own features, e.g. a BYOL encoder's embedding, and
        can be compressed and exported as the embedding model). Not part of the
        exported student."""
        if term.kind not in ("feature", "representation") or term.loss == "at":
            return None
        s_shape = self._feature_shape(self.student_logits, term.student_layer)
        t_shape = self._feature_shape(self.teacher_logits_views[term.teacher], term.teacher_layer)
        if s_shape[-1] == t_shape[-1]:
            return None
        if len(s_shape) == 3:
            adapter = keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{term.loss}_{term.student_layer}")
        else:
            adapter = keras.layers.Dense(int(t_shape[-1]), name=f"adapter_{term.loss}_{term.student_layer or 'output'}")
        adapter.build((None,) + s_shape)
        return adapter

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
        metrics = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker] + self.term_trackers
        compiled = getattr(self, "compiled_metrics", None)
        if compiled is not None:
            metrics += compiled.metrics
        return metrics

    def call(self, inputs, training=None):
        if isinstance(inputs, dict) and CACHED_KEY in inputs:
            inputs = inputs["x"]
        return self.student(inputs, training=training)

    @property
    def _teacher_output_counts(self):
        """How many tensors each teacher yields: its logits plus the tapped layers."""
        return [1 + len(index) for index in self._teacher_index]

    def teacher_outputs(self, x, batch_size=256):
        """The teachers' outputs on ``x`` as a flat list of numpy arrays (per teacher:
        logits, then the tapped layers in the Distiller's order) — what
        :meth:`cached_dataset` stores."""
        flat = [[] for _ in range(sum(self._teacher_output_counts))]
        for start in range(0, len(x), batch_size):
            outputs = [o for per_teacher in self._teacher_outputs(x[start:start + batch_size]) for o in per_teacher]
            for store, value in zip(flat, outputs):
                store.append(value.numpy())
        return [np.concatenate(values) for values in flat]

    def cached_dataset(self, x, y=None, *, batch_size=64, shuffle=True, seed=0, augment=None, max_bytes=2 * 2**30):
        """A ``tf.data`` pipeline that carries the teachers' outputs with the data, so
        that training runs no teacher forward pass.

        The teachers run once over ``x`` (logits and the tapped features the terms
        read); each batch is then ``({"x": x, "teacher_outputs": (...)}, y)``, which
        ``train_step`` recognises. Valid only while the input pipeline is deterministic:
        with augmentation every batch is new and the teacher must see that very batch,
        so ``augment`` refuses caching.

        Args:
            x: numpy array of inputs (the whole training set).
            y: labels (``-1`` = unlabeled) or ``None`` for label-free distillation.
            batch_size, shuffle, seed: of the returned pipeline (repeat it yourself).
            augment: the augmentation the run uses; anything but ``None``/``""``/``[]``
                raises ValueError.
            max_bytes: refuse when the cached outputs would exceed this size.
        """
        from kdtf.data.augment import parse_augment

        if parse_augment(augment):
            raise ValueError(
                f"Teacher-output caching needs a deterministic input pipeline, but augmentation "
                f"is on (augment={augment!r}): each augmented batch is new and the teacher must "
                "run on the very batch the student sees. Drop the cache (the Distiller then runs "
                "the teacher every step) or drop the augmentation."
            )
        if not isinstance(x, np.ndarray):
            raise ValueError(
                "cached_dataset() takes the inputs as a numpy array (it runs the teacher once "
                f"over all of them). Received: x of type {type(x).__name__}"
            )
        per_example = 0
        for k, view in enumerate(self.teacher_logits_views):
            model = self._teacher_views[k] or view
            shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
            per_example += sum(int(np.prod(shape[1:])) * 4 for shape in shapes)
        if per_example * len(x) > max_bytes:
            raise ValueError(
                f"Caching the teachers' outputs (logits and tapped features) would take "
                f"{per_example * len(x) / 2**30:.2f} GiB for {len(x)} examples, above "
                f"max_bytes={max_bytes}. Tap smaller layers, or train without the cache."
            )
        outputs = tuple(self.teacher_outputs(x))
        inputs = {"x": x, CACHED_KEY: outputs}
        ds = tf.data.Dataset.from_tensor_slices((inputs,) if y is None else (inputs, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _cached_teacher_outputs(self, cached):
        counts = self._teacher_output_counts
        cached = list(cached)
        if len(cached) != sum(counts):
            raise ValueError(
                f"The batch carries {len(cached)} cached teacher output(s), but this Distiller's "
                f"terms read {sum(counts)} (logits and tapped layers per teacher). Build the "
                "cache with this Distiller's cached_dataset()."
            )
        outputs, start = [], 0
        for count in counts:
            outputs.append([tf.stop_gradient(o) for o in cached[start:start + count]])
            start += count
        return outputs

    def _teacher_outputs(self, x):
        outputs = []
        for view, taps in zip(self.teacher_logits_views, self._teacher_views):
            out = (taps or view)(x, training=False)
            outputs.append([tf.stop_gradient(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
        return outputs

    def _mixed_teacher_kd(self, teacher_logits, student_logits, temperature):
        # KL(sum_k w_k softmax(z_k / T) || softmax(z_s / T)) * T^2; one teacher: Hinton KD
        if len(teacher_logits) == 1:
            return kd_loss(teacher_logits[0], student_logits, temperature)
        probs = tf.add_n([w * tf.nn.softmax(tf.cast(z, tf.float32) / temperature) for w, z in zip(self.teacher_weights, teacher_logits)])
        log_s = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature)
        return temperature**2 * tf.reduce_sum(probs * (tf.math.log(probs + 1e-12) - log_s), axis=-1)

    def _compute_losses(self, x, y, sample_weight, training):
        cached = None
        if isinstance(x, dict) and CACHED_KEY in x:
            x, cached = x["x"], x[CACHED_KEY]
        out = (self._student_view or self.student_logits)(x, training=training)
        student_out = out if isinstance(out, (list, tuple)) else [out]
        student_logits = student_out[0]
        teacher_out = self._teacher_outputs(x) if cached is None else self._cached_teacher_outputs(cached)
        term_values = []
        for term, loss, adapter in zip(self.terms, self._term_losses, self.adapters):
            if term.loss == "kd":
                value = self._mixed_teacher_kd([t[0] for t in teacher_out], student_logits, loss.temperature)
            elif term.loss == "dkd":
                teacher_logits = teacher_out[term.teacher][0]
                target = tf.argmax(teacher_logits, axis=-1)
                if y is not None and not _is_one_hot(y, student_logits):
                    labels = tf.cast(tf.reshape(y, [-1]), tf.int64)
                    target = tf.where(labels >= 0, labels, target)
                value = dkd_loss(teacher_logits, student_logits, target, loss.alpha, loss.beta, loss.temperature)
            else:
                s_feat = student_out[self._student_index[term.student_layer]] if term.student_layer else student_logits
                t_out = teacher_out[term.teacher]
                t_feat = t_out[self._teacher_index[term.teacher][term.teacher_layer]] if term.teacher_layer else t_out[0]
                if adapter is not None:
                    s_feat = adapter(s_feat)
                value = loss.call(t_feat, s_feat)
            term_values.append(_weighted_mean(value, sample_weight))
        distill = tf.add_n([term.weight * v for term, v in zip(self.terms, term_values)])
        if y is None:
            student = tf.zeros((), tf.float32)
            total = distill
        else:
            mask = label_mask(y, student_logits)
            student = _masked_mean(cross_entropy(y, student_logits), mask, sample_weight)
            total = self.alpha * student + (1.0 - self.alpha) * distill
        return student_logits, total, student, distill, term_values

    def _update_metrics(self, y, student_logits, sample_weight, total, student, distill, term_values):
        for tracker, value in zip(self.term_trackers, term_values):
            tracker.update_state(value)
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

    @property
    def trainable_student_variables(self):
        """What training updates: the student's trainable weights and the adapters'."""
        adapters = [v for a in self.adapters if a is not None for v in a.trainable_variables]
        return self.student.trainable_variables + adapters

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            student_logits, total, student, distill, terms = self._compute_losses(x, y, sample_weight, True)
            objective = total
            if self.student.losses:
                objective += tf.cast(tf.add_n(self.student.losses), tf.float32)
            # Gradients are summed over replicas, so each replica's mean loss is divided
            # by their number, as Keras's own compiled loss does.
            objective /= tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        self.optimizer.minimize(objective, self.trainable_student_variables, tape=tape)
        return self._update_metrics(y, student_logits, sample_weight, total, student, distill, terms)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_logits, total, student, distill, terms = self._compute_losses(x, y, sample_weight, False)
        return self._update_metrics(y, student_logits, sample_weight, total, student, distill, terms)

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
        teachers = [keras.saving.serialize_keras_object(t) for t in self.teachers]
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "distill": [dataclasses.asdict(term) for term in self.terms],
            "teacher_weights": list(self.teacher_weights),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        student = keras.saving.deserialize_keras_object(config.pop("student"), custom_objects)
        teacher = config.pop("teacher")
        if isinstance(teacher, list):
            teacher = [keras.saving.deserialize_keras_object(t, custom_objects) for t in teacher]
        else:
            teacher = keras.saving.deserialize_keras_object(teacher, custom_objects)
        return cls(student, teacher, **config)


def _check_teacher_weights(weights, count):
    if weights is None:
        return [1.0 / count] * count
    weights = list(weights)
    if len(weights) != count or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"Expected {count} non-negative teacher weights with a positive sum. Received: teacher_weights={weights!r}"
        )
    total = float(sum(weights))
    return [w / total for w in weights]
