"""Training a model, with or without a teacher: the one place that compiles and fits.

* :func:`fit`: a plain model on its labels (cross-entropy), or a student through the
  :class:`kdtf.Distiller` when a teacher is given; used by every stage of the pipelines,
  by two-phase fine-tuning and by :class:`FineTuner`.
* :class:`FineTuner`: the fine-tune callable a :class:`kdtf.compress.Recipe` calls after
  each compression step (distillation from a teacher, or cross-entropy to measure what
  distillation adds).
* :func:`as_dataset`: numpy arrays and ``(x, y)`` tuples as ``fit`` takes them, turned
  into a batched ``tf.data`` pipeline.
"""

import numpy as np

from kdtf import keras3_objects
from kdtf._keras import keras, tf
from kdtf.compress.prune import is_pruned, pruning_callbacks
from kdtf.distiller import CACHED_KEY, Distiller
from kdtf.spec import DistillSpec

__all__ = ["fit", "FineTuner", "as_dataset", "make_optimizer", "cross_entropy_loss"]


def make_optimizer(optimizer, epochs=None, steps_per_epoch=None):
    """A fresh Keras optimizer: a float is Adam's learning rate; a callable is called with
    ``(epochs, steps_per_epoch)`` (so schedules can span the fit); an optimizer object
    is used as is (a Keras 3 one is rebuilt as tf_keras, or refused)."""
    optimizer = keras3_objects.optimizer(optimizer)
    if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer(epochs, steps_per_epoch)
    if isinstance(optimizer, (int, float)) and not isinstance(optimizer, bool):
        return keras.optimizers.Adam(optimizer)
    return optimizer


def cross_entropy_loss(one_hot=False):
    """Cross-entropy on logits; ``one_hot`` for mixed (MixUp/CutMix) label rows."""
    if one_hot:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(model, train_data, *, epochs, optimizer=1e-3, teacher=None, spec=None, loss=None, validation_data=None,
        steps_per_epoch=None, callbacks=None, verbose=0, name="distiller"):
    """Trains ``model`` and returns it.

    Args:
        model: a tf_keras model producing logits.
        train_data: a ``tf.data`` pipeline of ``(x, y)`` batches.
        epochs: epochs to train.
        optimizer: see :func:`make_optimizer`.
        teacher: a teacher (or list): train through the Distiller with ``spec``;
            ``None``: plain training with ``loss`` (default sparse cross-entropy).
        spec: the :class:`kdtf.spec.DistillSpec` (default: Hinton KD, T=4, alpha=0.5).
        validation_data, steps_per_epoch, callbacks, verbose: as in ``keras.Model.fit``.
        name: the Distiller's name (it names the non-finite-loss message).

    Returns:
        The Keras ``History`` (``model`` itself is trained in place, also through the
        Distiller, whose student it is).
    """
    callbacks = keras3_objects.callbacks(callbacks)
    fit_args = dict(validation_data=validation_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks, verbose=verbose)
    optimizer = make_optimizer(optimizer, epochs, steps_per_epoch or _count_batches(train_data))
    if teacher is None:
        if is_pruned(model):
            fit_args["callbacks"] = callbacks + pruning_callbacks()
        model.compile(optimizer, keras3_objects.loss(loss) or cross_entropy_loss(), weighted_metrics=["accuracy"])
        return model.fit(train_data, **fit_args)
    distiller = Distiller(model, teacher, spec or DistillSpec(), name=name)
    distiller.compile(optimizer, metrics=["accuracy"])
    return distiller.fit(train_data, **fit_args)


def as_dataset(data, batch_size=32, shuffle=True, seed=0):
    """A batched ``tf.data`` pipeline from a dataset (returned as is, also a distributed
    one), an array of inputs, or an ``(x, y)`` / ``(x, y, sample_weight)`` tuple of arrays."""
    if isinstance(data, (tf.data.Dataset, tf.distribute.DistributedDataset)):
        return data
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, (tuple, np.ndarray)) and not tf.is_tensor(data):
        raise ValueError(
            "Expected training data as a tf.data.Dataset, an array of inputs or an (x, y) tuple "
            f"of arrays. Received: {type(data).__name__}"
        )
    ds = tf.data.Dataset.from_tensor_slices(data)
    length = len(data[0]) if isinstance(data, tuple) else len(data)
    if shuffle:
        ds = ds.shuffle(length, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _count_batches(dataset):
    if not isinstance(dataset, tf.data.Dataset):
        return None
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality > 0 else None


def _labelled_only_weights(x, y):
    """Plain fine-tuning on a transfer-set pipeline: unlabeled examples (-1) get weight
    0, and a teacher-output cache is dropped (no teacher needed)."""
    if isinstance(x, dict) and CACHED_KEY in x:
        x = x["x"]
    return x, tf.maximum(y, 0), tf.cast(y >= 0, tf.float32)


class FineTuner:
    """``fine_tune(model, epochs, *, teacher=None, spec=None, callbacks=None) -> model`` for a
    :class:`kdtf.compress.Recipe`.

    With a ``teacher`` every step is fine-tuned by :class:`kdtf.Distiller` with ``spec``
    (the same terms, temperature and alpha as the distillation that made the student);
    without one, by cross-entropy on the labelled examples (``-1`` labels get weight 0),
    so the benefit of distillation can be measured. A step may pass its own ``teacher``
    (e.g. the unpruned model, for self-distillation).

    Args:
        teacher: the teacher (or list of teachers), or ``None`` for cross-entropy.
        train_data: a ``tf.data`` pipeline, an array of inputs or an ``(x, y)`` tuple.
        spec: the :class:`kdtf.spec.DistillSpec` (default Hinton KD).
        optimizer: see :func:`make_optimizer` (default Adam 3e-4).
        validation_data: as in ``fit``.
        steps_per_epoch: optimizer steps per epoch (required for a repeated pipeline).
        batch_size, seed: for arrays and tuples.
        verbose: Keras verbosity.
    """

    def __init__(self, teacher, train_data, *, spec=None, optimizer=3e-4, validation_data=None, steps_per_epoch=None,
                 batch_size=32, seed=0, verbose=0):
        self.teacher, self.spec, self.optimizer = teacher, spec or DistillSpec(), optimizer
        self.train_data = as_dataset(train_data, batch_size, shuffle=True, seed=seed)
        self.validation_data = validation_data if validation_data is None else as_dataset(validation_data, batch_size, shuffle=False)
        self._fit_steps = steps_per_epoch  # None: Keras iterates the finite pipeline each epoch
        self.steps_per_epoch = steps_per_epoch or _count_batches(self.train_data)
        if self.steps_per_epoch is None:
            raise ValueError("Pass steps_per_epoch: the training pipeline's length is unknown (repeated or filtered).")
        self.verbose = verbose

    @property
    def description(self):
        return "distilling" if self.teacher is not None else "cross-entropy"

    def __call__(self, model, epochs, *, teacher=None, spec=None, callbacks=None):
        """Fine-tunes ``model`` for ``epochs``; ``teacher`` and ``spec`` override the
        tuner's for this call (a step's own teacher or loss, e.g. filter pruning's logit
        recovery)."""
        teacher = teacher if teacher is not None else self.teacher
        data = self.train_data if teacher is not None else self.train_data.map(_labelled_only_weights)
        fit(model, data, epochs=epochs, optimizer=self.optimizer, teacher=teacher, spec=spec or self.spec,
                   validation_data=self.validation_data, steps_per_epoch=self._fit_steps, callbacks=callbacks,
                   verbose=self.verbose, name="compress")
        return model
