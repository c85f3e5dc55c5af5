"""The teachers' outputs, computed once and carried with the data.

A :class:`kdtf.Distiller` runs its teachers every step unless a batch brings their
outputs along. :class:`TeacherOutputs` is what one batch of them is for a given
Distiller (per teacher: its logits, then the layers its terms tap, in name order), and
builds the ``tf.data`` pipelines that carry them::

    outputs = TeacherOutputs(distiller)
    train = outputs.dataset(x_train, y_train, batch_size=64)       # numpy: held in memory
    train = outputs.dataset(splits, cache_dir="saved_models/cache")  # Splits: on disk
    distiller.fit(train, epochs=10)

Each batch is ``({"x": x, "teacher_outputs": (...)}, y)`` (``CACHED_KEY``), which the
Distiller's ``train_step`` recognises. Valid only while the inputs are the same every
epoch: with augmentation each batch is new and the teacher must see that very batch, so
augmentation is refused. The disk cache itself (row files keyed by example position)
is :mod:`kdtf.data.teacher_cache`.
"""

import json

import numpy as np

from kdtf._keras import tf
from kdtf.catalog import parse_augment
from kdtf.data import teacher_cache
from kdtf.data.teacher_cache import CACHED_KEY, MAX_BYTES

__all__ = ["CACHED_KEY", "TeacherOutputs"]


class TeacherOutputs:
    """The outputs a Distiller's terms read from its teachers, and pipelines carrying them.

    Args:
        distiller: a :class:`kdtf.Distiller`; its ``teacher_taps`` (per teacher: a
            multi-output view and the tapped layer names) and ``teachers`` (for the disk
            cache key) are read once, here.
    """

    def __init__(self, distiller):
        self.taps = [(view, list(names)) for view, names in distiller.teacher_taps]
        self.teachers = list(distiller.teachers)

    @property
    def counts(self):
        """How many tensors each teacher yields: its logits plus the tapped layers."""
        return [1 + len(names) for _, names in self.taps]

    def __call__(self, x):
        """One batch of outputs: a flat list of tensors (per teacher: logits, then the
        tapped layers in name order), computed with ``training=False``, no gradient."""
        flat = []
        for view, _ in self.taps:
            out = view(x, training=False)
            flat += [tf.stop_gradient(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
        return flat

    def unflatten(self, flat):
        """``[{None: logits, layer: feature, ...} per teacher]`` from a flat sequence, as
        the terms read them. Raises ValueError when the count does not match."""
        flat, counts = list(flat), self.counts
        if len(flat) != sum(counts):
            raise ValueError(
                f"The batch carries {len(flat)} cached teacher output(s), but this Distiller's "
                f"terms read {sum(counts)} (logits and tapped layers per teacher). Build the "
                "pipeline with this Distiller's TeacherOutputs (or Distiller.cached_dataset())."
            )
        per_teacher, start = [], 0
        for (_, names), count in zip(self.taps, counts):
            keys = [None] + names
            per_teacher.append({k: tf.stop_gradient(v) for k, v in zip(keys, flat[start:start + count])})
            start += count
        return per_teacher

    def predict(self, x, batch_size=256):
        """The outputs on a numpy array ``x`` as a flat list of numpy arrays."""
        flat = [[] for _ in range(sum(self.counts))]
        for start in range(0, len(x), batch_size):
            for store, value in zip(flat, self(x[start:start + batch_size])):
                store.append(value.numpy())
        return [np.concatenate(values) for values in flat]

    def bytes_per_example(self):
        """Bytes the outputs of one example take (float32)."""
        shapes = []
        for view, _ in self.taps:
            shapes += view.output_shape if isinstance(view.output_shape, list) else [view.output_shape]
        return sum(int(np.prod(shape[1:])) * 4 for shape in shapes)

    def check_size(self, examples, max_bytes):
        """Raises ValueError when ``examples`` examples' outputs exceed ``max_bytes``."""
        per_example = self.bytes_per_example()
        if per_example * examples > max_bytes:
            raise ValueError(
                f"Caching the teachers' outputs (logits and tapped features) would take "
                f"{per_example * examples / 2**30:.2f} GiB for {examples} examples, above "
                f"max_bytes={max_bytes}. Tap smaller layers, or train without the cache."
            )

    def key(self):
        """What identifies these outputs on disk: the teachers' weights and the taps."""
        return json.dumps([teacher_cache.weights_digest(t) for t in self.teachers] + [[n for _, n in self.taps]])

    def dataset(self, x, y=None, *, batch_size=64, shuffle=True, seed=0, augment=None, max_bytes=MAX_BYTES,
                split="train", cache_dir=None, labels=True):
        """A ``tf.data`` pipeline whose batches carry the teachers' outputs:
        ``({"x": x, "teacher_outputs": (...)}, y)``; the teachers run once, here.

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
            return self._streamed(x, split, cache_dir, batch_size, shuffle, seed, max_bytes, labels)
        if not isinstance(x, np.ndarray):
            raise ValueError(
                "cached_dataset() takes the inputs as a numpy array or a kdtf.data.Splits (it runs the "
                f"teacher once over all of them). Received: x of type {type(x).__name__}"
            )
        self.check_size(len(x), max_bytes)
        inputs = {"x": x, CACHED_KEY: tuple(self.predict(x))}
        ds = tf.data.Dataset.from_tensor_slices((inputs,) if y is None else (inputs, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _streamed(self, data, split, cache_dir, batch_size, shuffle, seed, max_bytes, labels):
        if not cache_dir:
            raise ValueError("cached_dataset() of a kdtf.data.Splits writes the teachers' outputs to disk: pass cache_dir=.")
        size = data.size(split)
        self.check_size(size, max_bytes)
        path = teacher_cache.teacher_cache_path(cache_dir, data.fingerprint(split), self.key())
        paths = teacher_cache.cached_teacher_outputs(
            lambda batch: self.predict(batch, batch_size=len(batch)), data.dataset(split, batch_size, with_index=True),
            size, path, max_bytes=max_bytes,
        )
        stream = data.dataset(split, batch_size, shuffle=shuffle, seed=seed, with_index=True)
        return teacher_cache.attach_teacher_outputs(stream, paths, labels=labels)
