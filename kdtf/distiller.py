"""The Distiller: a ``keras.Model`` that trains a student to imitate a teacher.

``loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``

Used like any Keras model::

    distiller = kdtf.Distiller(student, teacher, temperature=4.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(train_ds, validation_data=val_ds, epochs=10, callbacks=[...])
    distiller.student.save("student.keras")
"""

import json
import os

import numpy as np
from tensorflow_model_optimization.sparsity import keras as sparsity

from kdtf._keras import keras, tf
from kdtf.callbacks import StopOnNonFiniteLoss
from kdtf.catalog import parse_augment
from kdtf.collapse import CollapseGuard, probe_batches
from kdtf.compress.prune import is_pruned
from kdtf.data import teacher_cache
from kdtf.keras3 import as_tf_keras
from kdtf.labels import cross_entropy, label_mask
from kdtf.spec import DistillSpec
from kdtf.taps import tap
from kdtf.terms import build_terms

__all__ = ["Distiller", "logits_view", "label_mask", "cross_entropy", "CACHED_KEY"]

CACHED_KEY = teacher_cache.CACHED_KEY  # batches from Distiller.cached_dataset(): {"x": ..., CACHED_KEY: (...)}


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


def _masked_mean(values, mask, sample_weight):
    # sum over labelled examples / their number: equals the plain (weighted) batch mean
    # when every example is labelled, and 0 when none is.
    weights = mask if sample_weight is None else mask * tf.reshape(tf.cast(sample_weight, values.dtype), tf.shape(mask))
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(mask))


def _outputs(view, names, x, training):
    """``{None: main output, name: that layer's output}`` of a (tapped) view."""
    out = view(x, training=training)
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    return dict(zip([None] + list(names), out))


@keras.saving.register_keras_serializable(package="kdtf")
class Distiller(keras.Model):
    """Trains ``student`` on labels and on a frozen ``teacher``'s outputs.

    ``loss = alpha * CE(y, z_s) + (1 - alpha) * sum_i w_i L_i(teacher, student)``; with the
    default single ``kd`` term, ``L = T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``
    (Hinton, Vinyals & Dean, 2015, arXiv:1503.02531).

    The teacher runs with ``training=False`` and its outputs are wrapped in
    ``tf.stop_gradient``; gradients are applied to the student's trainable weights (and
    the terms' adapters) only. Labels may be sparse (``(batch,)`` or ``(batch, 1)``) or
    one-hot. Data without labels (``fit(x)``) trains on the distillation terms alone.

    Transfer-set distillation: in a batch mixing labelled and unlabeled examples, mark the
    unlabeled ones with sparse label ``-1`` (or an all-zero one-hot row). The distillation
    terms are averaged over every example, the cross-entropy over the labelled ones only
    (0 when a batch has none), and compiled metrics count labelled examples only.

    ``fit`` logs ``loss``, ``student_loss``, ``distillation_loss`` (and ``<term>_loss``
    for each term when there are several) and the compiled metrics (computed on the
    student's outputs); ``predict`` returns the student's outputs. The student, not the
    Distiller, is what you save and ship: ``distiller.student.save("student.keras")``.

    The terms (:mod:`kdtf.terms`) say which layers they read; the Distiller taps them
    through multi-output views of the models (no rewriting) and loops over the terms.
    Adapters train with the student, live in the Distiller's checkpoints and are not part
    of the exported student. Several teachers: ``teacher=[t1, t2]``; ``kd`` averages
    their softened distributions (``teacher_weights``), other terms read the teacher
    named by their ``#index``.

    A teacher that ends in softmax is read before its softmax (see :func:`logits_view`);
    a student ending in a separate ``Softmax``/``Activation("softmax")`` layer is trained
    through its logits, one ending in ``Dense(activation="softmax")`` is refused.
    Training stops with :class:`kdtf.callbacks.NonFiniteLossError` at the first NaN/Inf
    loss; pruning wrappers get TF-MOT's ``UpdatePruningStep`` attached by ``fit``.

    Args:
        student: tf_keras Sequential or Functional model producing logits.
        teacher: tf_keras model (or list of models).
        spec: a :class:`kdtf.spec.DistillSpec` (temperature, alpha, terms, teacher
            weights), validated once where it was built. Or give its fields as keywords:
        temperature: softening temperature ``T > 0`` (default 4).
        alpha: weight of the student's cross-entropy, in ``[0, 1]`` (default 0.5).
        distill: terms (spec string, list of strings/dicts/TermSpecs); default Hinton KD.
        teacher_weights: one non-negative weight per teacher (normalised); default equal.
        name: model name.
    """

    def __init__(self, student, teacher, spec=None, *, temperature=None, alpha=None, distill=None,
                 teacher_weights=None, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self.spec = _spec(spec, temperature=temperature, alpha=alpha, terms=distill, teacher_weights=teacher_weights)
        student = self.student = as_tf_keras(student, "student")
        teachers = _teachers(teacher, student)
        self.teachers, self.teacher = teachers, teachers[0]
        self.terms = build_terms(self.spec, len(teachers))
        # Logits views strip a final softmax (a model without one is returned as is).
        self.student_logits = logits_view(student, "student", copy_dense=False)
        self.teacher_logits_views = [logits_view(t, "teacher", copy_dense=True) for t in teachers]
        self.teacher_logits = self.teacher_logits_views[0]
        for term in self.terms:
            term.resolve(self.student_logits, self.teacher_logits_views)
        self._student_names = sorted({n for term in self.terms for n in term.student_layers})
        self._student_view = tap(self.student_logits, self._student_names, argument="student")
        self._teacher_names = [
            sorted({n for term in self.terms if term.teacher == k for n in term.teacher_layers}) for k in range(len(teachers))
        ]
        self._teacher_views = [
            tap(view, names, argument=f"teacher[{k}]")
            for k, (view, names) in enumerate(zip(self.teacher_logits_views, self._teacher_names))
        ]
        for term in self.terms:  # after the taps, which name unknown layers
            term.check(self.student_logits, self.teacher_logits_views)
        self.adapters = [term.adapter for term in self.terms]  # tracked: checkpoints hold them
        self._make_trackers()
        self.built = True  # every part is built: summary, BackupAndRestore and saving work before fit
    @property
    def temperature(self):
        return self.spec.temperature

    @property
    def alpha(self):
        return self.spec.alpha

    @property
    def teacher_weights(self):
        return self.spec.for_teachers(len(self.teachers))

    def _make_trackers(self):
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        labels = [term.name for term in self.terms]
        names = [f"{n}_loss" if labels.count(n) == 1 else f"{n}{labels[:i].count(n) + 1}_loss" for i, n in enumerate(labels)]
        self.term_trackers = [keras.metrics.Mean(name=n) for n in names] if len(self.terms) > 1 else []

    # -- Keras API ---------------------------------------------------------------------
    @property
    def trainable_weights(self):
        """The student's trainable weights and the adapters': what training updates (the
        teachers are frozen, whatever their layers' ``trainable`` flags say)."""
        return _unique(self.trainable_student_variables)

    @property
    def non_trainable_weights(self):
        """Everything else: the teachers, the student's frozen weights (BatchNormalization
        statistics, frozen layers), the adapters' non-trainable weights."""
        skip = {id(v) for v in self.trainable_weights} | {id(v) for m in self.metrics for v in m.variables}
        everything = super().trainable_weights + super().non_trainable_weights
        return _unique([v for v in everything if id(v) not in skip])

    def summary(self, print_fn=None, **kwargs):
        """The student's summary, then what the distillation adds: adapters (trained)
        and teachers (frozen), with the trainable and frozen totals."""
        print_fn = print_fn or print
        self.student.summary(print_fn=print_fn, **kwargs)
        rows = [("adapter", a.name, a.count_params(), "trained") for a in _adapter_layers(self.adapters)]
        rows += [("teacher", t.name, t.count_params(), "frozen") for t in self.teachers]
        print_fn(f"Distiller '{self.name}': {self.spec.describe()}")
        for kind, name, params, state in rows:
            print_fn(f"  {kind:<8} {name:<32} {params:>12,} params ({state})")
        trainable = int(sum(np.prod(v.shape) for v in self.trainable_weights))
        frozen = int(sum(np.prod(v.shape) for v in self.non_trainable_weights))
        print_fn(f"Trainable params: {trainable:,} (student and adapters)")
        print_fn(f"Non-trainable params: {frozen:,} (teachers and the student's frozen weights)")

    def compile_from_config(self, config):
        """Compiles a reloaded Distiller as it was (optimizer and metrics; the loss is its
        spec), so a ``.keras`` file continues training with its optimizer state."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_student_variables)

    def save(self, filepath, *args, **kwargs):
        """Saves the whole Distiller (student, teachers, adapters, spec, optimizer state) as
        a ``.keras`` file that reloads compiled. A SavedModel or ``.h5`` would lose the
        distillation losses (they live in Python), so they are refused: export the
        student for inference instead (``distiller.student.save(...)``,
        :func:`kdtf.export.to_tflite`)."""
        path = os.fspath(filepath)
        if not path.endswith(".keras") or kwargs.get("save_format") not in (None, "keras"):
            raise ValueError(
                f"A Distiller saves as a .keras file (it reloads compiled, with its terms and optimizer state). "
                f"Received: {path!r}. For an inference model save the student: distiller.student.save(...) "
                "or kdtf.export.to_tflite(distiller.student)."
            )
        return super().save(filepath, *args, **kwargs)

    def compile(self, optimizer="rmsprop", metrics=None, **kwargs):
        """Like ``keras.Model.compile``; the loss comes from the Distiller's spec."""
        if kwargs.get("loss") is not None:
            raise ValueError(
                "Distiller.compile() takes no `loss`: the loss is alpha * cross-entropy + "
                "(1 - alpha) * the distillation terms, set with Distiller(temperature=..., "
                f"alpha=..., distill=...). Received: loss={kwargs['loss']!r}"
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

    # -- teacher outputs and their cache ----------------------------------------------
    @property
    def _teacher_output_counts(self):
        """How many tensors each teacher yields: its logits plus the tapped layers."""
        return [1 + len(names) for names in self._teacher_names]

    def _teacher_outputs(self, x):
        return [
            {key: tf.stop_gradient(value) for key, value in _outputs(view, names, x, False).items()}
            for view, names in zip(self._teacher_views, self._teacher_names)
        ]

    def _cached_teacher_outputs(self, cached):
        cached, counts = list(cached), self._teacher_output_counts
        if len(cached) != sum(counts):
            raise ValueError(
                f"The batch carries {len(cached)} cached teacher output(s), but this Distiller's "
                f"terms read {sum(counts)} (logits and tapped layers per teacher). Build the "
                "cache with this Distiller's cached_dataset()."
            )
        outputs, start = [], 0
        for names, count in zip(self._teacher_names, counts):
            keys = [None] + list(names)
            outputs.append({k: tf.stop_gradient(v) for k, v in zip(keys, cached[start:start + count])})
            start += count
        return outputs

    def teacher_outputs(self, x, batch_size=256):
        """The teachers' outputs on ``x`` as a flat list of numpy arrays (per teacher:
        logits, then the tapped layers in name order) — what :meth:`cached_dataset`
        stores."""
        flat = [[] for _ in range(sum(self._teacher_output_counts))]
        for start in range(0, len(x), batch_size):
            outputs = [o for per_teacher in self._teacher_outputs(x[start:start + batch_size]) for o in per_teacher.values()]
            for store, value in zip(flat, outputs):
                store.append(value.numpy())
        return [np.concatenate(values) for values in flat]

    def _cache_bytes_per_example(self):
        shapes = []
        for view in self._teacher_views:
            shapes += view.output_shape if isinstance(view.output_shape, list) else [view.output_shape]
        return sum(int(np.prod(shape[1:])) * 4 for shape in shapes)

    def cached_dataset(self, x, y=None, *, batch_size=64, shuffle=True, seed=0, augment=None, max_bytes=2 * 2**30,
                       split="train", cache_dir=None, labels=True):
        """A ``tf.data`` pipeline that carries the teachers' outputs with the data, so
        that training runs no teacher forward pass.

        The teachers run once over the data (logits and the tapped features the terms
        read); each batch is then ``({"x": x, "teacher_outputs": (...)}, y)``, which
        ``train_step`` recognises. Valid only while the input pipeline is deterministic:
        with augmentation every batch is new and the teacher must see that very batch,
        so ``augment`` refuses caching.

        Args:
            x: a numpy array of inputs (the outputs are held in memory), or a
                :class:`kdtf.data.Splits` (streamed: the outputs are written once to
                ``cache_dir``, keyed by the split's files and the teachers' weights and
                taps, and read back by example position, so memory stays flat).
            y: labels (``-1`` = unlabeled) or ``None`` for label-free distillation
                (with a ``Splits``: ``labels=False``).
            batch_size, shuffle, seed: of the returned pipeline (repeat it yourself).
            augment: the augmentation the run uses; anything but ``None``/``""``/``[]``
                raises ValueError.
            max_bytes: refuse when the cached outputs would exceed this size.
            split, cache_dir, labels: for a ``Splits``.
        """
        if parse_augment(augment):
            raise ValueError(
                f"Teacher-output caching needs a deterministic input pipeline, but augmentation "
                f"is on (augment={augment!r}): each augmented batch is new and the teacher must "
                "run on the very batch the student sees. Drop the cache (the Distiller then runs "
                "the teacher every step) or drop the augmentation."
            )
        if hasattr(x, "dataset") and hasattr(x, "fingerprint"):
            return self._streamed_cache(x, split, cache_dir, batch_size, shuffle, seed, max_bytes, labels)
        if not isinstance(x, np.ndarray):
            raise ValueError(
                "cached_dataset() takes the inputs as a numpy array or a kdtf.data.Splits (it runs the "
                f"teacher once over all of them). Received: x of type {type(x).__name__}"
            )
        self._check_cache_size(len(x), max_bytes)
        inputs = {"x": x, CACHED_KEY: tuple(self.teacher_outputs(x))}
        ds = tf.data.Dataset.from_tensor_slices((inputs,) if y is None else (inputs, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _check_cache_size(self, examples, max_bytes):
        per_example = self._cache_bytes_per_example()
        if per_example * examples > max_bytes:
            raise ValueError(
                f"Caching the teachers' outputs (logits and tapped features) would take "
                f"{per_example * examples / 2**30:.2f} GiB for {examples} examples, above "
                f"max_bytes={max_bytes}. Tap smaller layers, or train without the cache."
            )

    def _streamed_cache(self, data, split, cache_dir, batch_size, shuffle, seed, max_bytes, labels):
        if not cache_dir:
            raise ValueError("cached_dataset() of a kdtf.data.Splits writes the teachers' outputs to disk: pass cache_dir=.")
        size = data.size(split)
        self._check_cache_size(size, max_bytes)
        key = json.dumps([teacher_cache.weights_digest(t) for t in self.teachers] + [self._teacher_names])
        path = teacher_cache.teacher_cache_path(cache_dir, data.fingerprint(split), key)
        paths = teacher_cache.cached_teacher_outputs(
            lambda batch: self.teacher_outputs(batch, batch_size=len(batch)), data.dataset(split, batch_size, with_index=True),
            size, path, max_bytes=max_bytes,
        )
        stream = data.dataset(split, batch_size, shuffle=shuffle, seed=seed, with_index=True)
        return teacher_cache.attach_teacher_outputs(stream, paths, labels=labels)

    # -- the step ---------------------------------------------------------------------
    def _compute_losses(self, x, y, sample_weight, training):
        cached = None
        if isinstance(x, dict) and CACHED_KEY in x:
            x, cached = x["x"], x[CACHED_KEY]
        student = _outputs(self._student_view, self._student_names, x, training)
        teachers = self._teacher_outputs(x) if cached is None else self._cached_teacher_outputs(cached)
        term_values = [term(teachers, student, y, sample_weight) for term in self.terms]
        distill = tf.add_n([term.weight * value for term, value in zip(self.terms, term_values)])
        logits = student[None]
        if y is None:
            return logits, distill, tf.zeros((), tf.float32), distill, term_values
        ce = _masked_mean(cross_entropy(y, logits), label_mask(y, logits), sample_weight)
        return logits, self.alpha * ce + (1.0 - self.alpha) * distill, ce, distill, term_values

    def _update_metrics(self, y, student_logits, sample_weight, total, student, distill, term_values):
        for tracker, value in zip(self.term_trackers, term_values):
            tracker.update_state(value)
        self.loss_tracker.update_state(total)
        self.student_loss_tracker.update_state(student)
        self.distillation_loss_tracker.update_state(distill)
        if y is None:  # without labels there is nothing to measure the student against
            losses = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker] + self.term_trackers
            return {m.name: m.result() for m in losses}
        if getattr(self, "compiled_metrics", None) is not None:
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
        adapters = [v for a in _adapter_layers(self.adapters) for v in a.trainable_variables]
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

    def fit(self, *args, callbacks=None, collapse_guard="warn", **kwargs):
        """``keras.Model.fit`` plus the callbacks distillation needs.

        Adds :class:`~kdtf.callbacks.StopOnNonFiniteLoss`, a
        :class:`~kdtf.collapse.CollapseGuard` that checks the trained student is not at
        chance or a constant predictor (``collapse_guard``: ``"warn"``, ``"raise"`` or
        ``None`` for off; on the validation data, else a few training batches) and, when
        the student holds TF-MOT pruning wrappers, ``UpdatePruningStep`` (unless already given).
        """
        callbacks = list(callbacks or [])
        if collapse_guard and not any(isinstance(c, CollapseGuard) for c in callbacks):
            given = kwargs.get("validation_data")
            probe = probe_batches(given if given is not None else (args[0] if args else kwargs.get("x")))
            if probe is not None:
                callbacks.append(CollapseGuard(probe, stage=f"{self.name} (student '{self.student.name}')", action=collapse_guard))
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss(stage=f"{self.name} (student '{self.student.name}')"))
        if is_pruned(self.student) and not any(isinstance(c, sparsity.UpdatePruningStep) for c in callbacks):
            callbacks.append(sparsity.UpdatePruningStep())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # -- serialization -------------------------------------------------------------
    def get_config(self):
        teachers = [keras.saving.serialize_keras_object(t) for t in self.teachers]
        spec = self.spec.to_config()
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "temperature": spec["temperature"],
            "alpha": spec["alpha"],
            "distill": spec["terms"],
            "teacher_weights": spec["teacher_weights"],
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


def _adapter_layers(adapters):
    """The adapter layers of every term (a term holds one, a list, or ``None``)."""
    for adapter in adapters:
        if isinstance(adapter, (list, tuple)):
            yield from (a for a in adapter if a is not None)
        elif adapter is not None:
            yield adapter


def _unique(variables):
    seen, unique = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def _spec(spec, **fields):
    """The Distiller's spec: ``spec`` as given, or one built from the keyword fields."""
    given = {k: v for k, v in fields.items() if v is not None}
    if spec is not None:
        if given:
            raise ValueError(f"Pass either spec= or its fields ({', '.join(sorted(given))}), not both.")
        if not isinstance(spec, DistillSpec):
            raise ValueError(f"Expected spec to be a kdtf.DistillSpec. Received: spec={spec!r}")
        return spec
    return DistillSpec(**given)


def _teachers(teacher, student):
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("Expected at least one teacher. Received: teacher=[]")
    teachers = [as_tf_keras(t, "teacher" if len(teachers) == 1 else f"teacher[{i}]") for i, t in enumerate(teachers)]
    if any(t is student for t in teachers):
        raise ValueError("`student` and `teacher` are the same model object; pass two models.")
    return teachers
