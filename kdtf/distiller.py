"""The Distiller: a ``keras.Model`` that trains a student to imitate a teacher; only a
model (teacher outputs carried with the data: :mod:`kdtf.data.teacher_outputs`; logits
views and taps: :mod:`kdtf.taps`; the terms: :mod:`kdtf.terms`)."""

import collections
import os

import numpy as np
from tensorflow_model_optimization.sparsity import keras as sparsity

from kdtf import keras3_objects
from kdtf._keras import keras, tf
from kdtf.callbacks import StopOnNonFiniteLoss
from kdtf.collapse import with_guard
from kdtf.compress.prune import is_pruned
from kdtf.data.teacher_outputs import CACHED_KEY, TeacherOutputs
from kdtf.data.view_store import ViewStore
from kdtf.keras3 import as_tf_keras
from kdtf.labels import cross_entropy, label_mask, masked_mean
from kdtf.spec import DistillSpec
from kdtf.taps import logits_view, tap
from kdtf.terms import adapter_layers, build_terms, deserialize_terms, log_names, serialize_terms

__all__ = ["Distiller", "CACHED_KEY"]

Losses = collections.namedtuple("Losses", ["logits", "total", "cross_entropy", "distillation", "terms"])  # of one batch


def _outputs(view, names, x, training):
    """``{None: main output, name: that layer's output}`` of a (tapped) view."""
    return dict(zip([None] + list(names), tf.nest.flatten(view(x, training=training))))


@keras.saving.register_keras_serializable(package="kdtf")
class Distiller(keras.Model):
    """Trains ``student`` on labels and on frozen teachers' outputs; used like any Keras
    model (``compile``, ``fit``, ``evaluate``; ship ``distiller.student``).

    ``loss = alpha * CE(y, z_s) + (1 - alpha) * sum_i w_i L_i(teacher, student)``; with the
    default single ``kd`` term, ``L = T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``
    (Hinton, Vinyals & Dean, 2015, arXiv:1503.02531).

    Teachers run with ``training=False`` under ``tf.stop_gradient`` (or their outputs
    come with the batch, ``({"x": x, "teacher_outputs": (...)}, y)``: see
    :meth:`cached_dataset`); gradients reach the student and the terms' adapters only.
    Labels may be sparse or one-hot; ``-1`` (or an all-zero row) marks an unlabeled
    example: the terms average over every example, the cross-entropy and compiled
    metrics over labelled ones. ``fit(x)`` without labels trains on the terms alone.
    ``fit`` logs ``loss``, ``student_loss`` (the cross-entropy), ``distillation_loss``
    and, with several terms, ``<term>_loss``.

    The terms say which layers they read; the Distiller taps them through multi-output
    views (no rewriting) and loops over the terms. Several teachers: ``kd`` averages
    their softened distributions (``teacher_weights``), other terms read the teacher of
    their ``#index``. A teacher ending in softmax is read before it
    (:func:`kdtf.taps.logits_view`); so is a student ending in a separate softmax layer,
    one with ``Dense(activation="softmax")`` is refused. Training stops at the first
    NaN/Inf loss; pruned students get ``UpdatePruningStep``.

    Args:
        student: tf_keras (or Keras 3, converted) Sequential/Functional model of logits.
        teacher: such a model, or a list of them.
        spec: a :class:`kdtf.spec.DistillSpec`, or give its fields as keywords:
        temperature: softening temperature ``T > 0`` (default 4).
        alpha: weight of the student's cross-entropy, in ``[0, 1]`` (default 0.5).
        distill: terms: a spec string, or a list of strings, dicts, TermSpecs or
            :class:`kdtf.Term` instances (a term of your own); default Hinton KD.
        teacher_weights: one non-negative weight per teacher (normalised); default equal.
        name: model name.
    """

    def __init__(self, student, teacher, spec=None, *, temperature=None, alpha=None, distill=None,
                 teacher_weights=None, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self.spec = DistillSpec.settle(spec, temperature=temperature, alpha=alpha, terms=distill, teacher_weights=teacher_weights)
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
        self._teacher_outputs = TeacherOutputs(self)  # one batch of teacher outputs, and how to read a stored one
        for term in self.terms:  # after the taps, which name unknown layers
            term.check(self.student_logits, self.teacher_logits_views)
        self.adapters = [term.adapter for term in self.terms]  # tracked: checkpoints hold them
        self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker = (
            keras.metrics.Mean(name=n) for n in ("loss", "student_loss", "distillation_loss"))
        self.term_trackers = [keras.metrics.Mean(name=n) for n in log_names(self.terms)] if len(self.terms) > 1 else []
        self.built = True  # every part is built: summary, BackupAndRestore and saving work before fit

    temperature = property(lambda self: self.spec.temperature)
    alpha = property(lambda self: self.spec.alpha)
    teacher_weights = property(lambda self: self.spec.for_teachers(len(self.teachers)))

    # -- Keras API ---------------------------------------------------------------------
    @property
    def trainable_weights(self):
        """The student's trainable weights and the adapters': what training updates (the
        teachers are frozen, whatever their layers' ``trainable`` flags say)."""
        return list({id(v): v for v in self.trainable_student_variables}.values())  # each once, in order

    @property
    def non_trainable_weights(self):
        """Everything else: the teachers, the student's frozen weights (BatchNormalization
        statistics, frozen layers), the adapters' non-trainable weights."""
        skip = {id(v) for v in self.trainable_weights} | {id(v) for m in self.metrics for v in m.variables}
        everything = super().trainable_weights + super().non_trainable_weights
        return list({id(v): v for v in everything if id(v) not in skip}.values())

    def summary(self, print_fn=None, **kwargs):
        """The student's summary, then the adapters (trained), teachers (frozen) and totals."""
        print_fn = print_fn or print
        self.student.summary(print_fn=print_fn, **kwargs)
        print_fn(f"Distiller '{self.name}': {self.spec.describe()}")
        rows = [("adapter", a, "trained") for a in adapter_layers(self.terms)] + [("teacher", t, "frozen") for t in self.teachers]
        for kind, part, state in rows:
            print_fn(f"  {kind:<8} {part.name:<32} {part.count_params():>12,} params ({state})")
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
        a ``.keras`` file that reloads compiled; a SavedModel or ``.h5`` (which would lose
        the terms) is refused: for inference, save or export ``distiller.student``."""
        path = os.fspath(filepath)
        if not path.endswith(".keras") or kwargs.get("save_format") not in (None, "keras"):
            raise ValueError(
                f"A Distiller saves as a .keras file (it reloads compiled, with its terms and optimizer state). "
                f"Received: {path!r}. For an inference model save the student: distiller.student.save(...) "
                "or kdtf.export.to_tflite(distiller.student)."
            )
        return super().save(filepath, *args, **kwargs)

    def compile(self, optimizer="rmsprop", metrics=None, **kwargs):
        """Like ``keras.Model.compile``; the loss comes from the Distiller's spec. A Keras 3
        optimizer or metric is rebuilt as its tf_keras twin, or refused naming it."""
        keras3_objects.refuse_loss_keywords(kwargs)
        kwargs.pop("loss", None)
        if "weighted_metrics" in kwargs:
            kwargs["weighted_metrics"] = keras3_objects.metrics(kwargs["weighted_metrics"])
        super().compile(optimizer=keras3_objects.optimizer(optimizer), metrics=keras3_objects.metrics(metrics), **kwargs)

    @property
    def metrics(self):
        metrics = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker] + self.term_trackers
        compiled = getattr(self, "compiled_metrics", None)
        if compiled is not None:
            metrics += compiled.metrics
        return metrics

    def call(self, inputs, training=None):
        return self.student(inputs["x"] if isinstance(inputs, dict) and CACHED_KEY in inputs else inputs, training=training)

    # -- teacher outputs carried by the data ------------------------------------------
    @property
    def teacher_taps(self):
        """Per teacher ``(view, layer names)``: its logits and tapped layers, as stored by TeacherOutputs."""
        return list(zip(self._teacher_views, self._teacher_names))

    def cached_dataset(self, x, y=None, *, views=None, top_k=None, **options):
        """A ``tf.data`` pipeline carrying the teachers' outputs with the data (training runs
        no teacher pass): ``TeacherOutputs(self).dataset(x, y, **options)``; with ``views=K``
        (a ``Splits``, replayable ``augment``) the outputs on K augmented views per example,
        stored once (:class:`kdtf.data.ViewStore`)."""
        if views is not None:
            return ViewStore.from_options(self, x, views=views, top_k=top_k, **options)
        return TeacherOutputs(self).dataset(x, y, **options)

    # -- the step ---------------------------------------------------------------------
    def _compute_losses(self, x, y, sample_weight, training):
        cached = None
        if isinstance(x, dict) and CACHED_KEY in x:
            x, cached = x["x"], x[CACHED_KEY]
        student = _outputs(self._student_view, self._student_names, x, training)
        teachers = self._teacher_outputs.unflatten(self._teacher_outputs(x) if cached is None else cached)
        term_values = [term(teachers, student, y, sample_weight) for term in self.terms]
        distill = tf.add_n([term.weight * value for term, value in zip(self.terms, term_values)])
        logits = student[None]
        if y is None:
            return Losses(logits, distill, tf.zeros((), tf.float32), distill, term_values)
        ce = masked_mean(cross_entropy(y, logits), label_mask(y, logits), sample_weight)
        return Losses(logits, self.alpha * ce + (1.0 - self.alpha) * distill, ce, distill, term_values)

    def _update_metrics(self, y, sample_weight, losses):
        for tracker, value in zip(self.term_trackers, losses.terms):
            tracker.update_state(value)
        self.loss_tracker.update_state(losses.total)
        self.student_loss_tracker.update_state(losses.cross_entropy)
        self.distillation_loss_tracker.update_state(losses.distillation)
        if y is None:  # without labels there is nothing to measure the student against
            trackers = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker] + self.term_trackers
            return {m.name: m.result() for m in trackers}
        if getattr(self, "compiled_metrics", None) is not None:
            # Metrics see labelled examples only. Rows are dropped rather than weighted:
            # tf_keras applies sample weights to `weighted_metrics` only.
            keep = label_mask(y, losses.logits) > 0
            if sample_weight is not None:
                sample_weight = tf.boolean_mask(sample_weight, keep)
            self.compiled_metrics.update_state(
                tf.boolean_mask(y, keep), tf.boolean_mask(losses.logits, keep), sample_weight
            )
        return {m.name: m.result() for m in self.metrics}

    @property
    def trainable_student_variables(self):
        """What training updates: the student's trainable weights and the adapters'."""
        adapters = [v for a in adapter_layers(self.terms) for v in a.trainable_variables]
        return self.student.trainable_variables + adapters

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            losses = self._compute_losses(x, y, sample_weight, True)
            objective = losses.total
            if self.student.losses:
                objective += tf.cast(tf.add_n(self.student.losses), tf.float32)
            # Gradients are summed over replicas, so each replica's mean loss is divided
            # by their number, as Keras's own compiled loss does.
            objective /= tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        self.optimizer.minimize(objective, self.trainable_student_variables, tape=tape)
        return self._update_metrics(y, sample_weight, losses)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_metrics(y, sample_weight, self._compute_losses(x, y, sample_weight, False))

    def fit(self, *args, callbacks=None, collapse_guard="warn", **kwargs):
        """``keras.Model.fit`` plus :class:`~kdtf.callbacks.StopOnNonFiniteLoss`, a
        :class:`~kdtf.collapse.CollapseGuard` that checks the trained student is not at
        chance or a constant predictor (``collapse_guard``: ``"warn"``, ``"raise"`` or
        ``None`` for off; on the validation data, else a few training batches) and, for a
        pruned student, ``UpdatePruningStep`` (unless given); Keras 3 callbacks are
        rebuilt as tf_keras ones, or refused naming the replacement."""
        stage, given = f"{self.name} (student '{self.student.name}')", kwargs.get("validation_data")
        x, y = args[0] if args else kwargs.get("x"), args[1] if len(args) > 1 else kwargs.get("y")
        probe = given if given is not None else (x if y is None else (x, y))
        callbacks = with_guard(keras3_objects.callbacks(callbacks), probe, stage, collapse_guard)
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss(stage=stage))
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
            "distill": serialize_terms(self.spec.terms),
            "teacher_weights": spec["teacher_weights"],
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        student = keras.saving.deserialize_keras_object(config.pop("student"), custom_objects)
        teacher = config.pop("teacher")
        teacher = [keras.saving.deserialize_keras_object(t, custom_objects) for t in teacher] if isinstance(teacher, list) \
            else keras.saving.deserialize_keras_object(teacher, custom_objects)
        config["distill"] = deserialize_terms(config.get("distill"), custom_objects)
        return cls(student, teacher, **config)


def _teachers(teacher, student):
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("Expected at least one teacher. Received: teacher=[]")
    teachers = [as_tf_keras(t, "teacher" if len(teachers) == 1 else f"teacher[{i}]") for i, t in enumerate(teachers)]
    if any(t is student for t in teachers):
        raise ValueError("`student` and `teacher` are the same model object; pass two models.")
    return teachers
