"""``Splits``: a data set as a description that opens into ``tf.data`` pipelines.

Per split, an ordered table of examples (:mod:`kdtf.data.table`: files in the image
cache, a TFDS split, or in-memory rows for the bundled sets) and int32 labels held in
memory. Labels are cheap and editable (``keep_labels``, -1 for an unlabeled transfer
set); pixels are read only by the pipelines, a batch at a time.
"""

import hashlib

import numpy as np

from kdtf._keras import tf
from kdtf.data.augment import augment_dataset, quiet_map
from kdtf.data.loaders import open_unlabeled
from kdtf.data.sources import CacheLog
from kdtf.data.stream import example_batches, read_examples
from kdtf.data.table import ArrayRows, Table

__all__ = ["ARRAYS_MAX_BYTES", "SPLITS", "Splits"]

SPLITS = ("train", "val", "test")
ARRAYS_MAX_BYTES = 2 * 2**30  # float32 bytes a split may take when materialised by arrays()


def _as_table(x):
    if isinstance(x, Table):
        return x
    x = np.asarray(x)
    return Table([(ArrayRows(x), np.arange(len(x)))])


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"Expected split 'train', 'val' or 'test'. Received: split={split!r}")


class Splits:
    """Train/validation/test splits of one data set, and the metadata an exported model
    needs.

    Args:
        name: the spec the data came from.
        x_train, x_val, x_test: a :class:`~kdtf.data.table.Table` (how the loaders build
            it) or an in-memory array of normalised images ``(n, h, w, c)``.
        y_train, y_val, y_test: int32 labels ``(n,)``; ``-1`` marks an unlabeled
            example. Plain attributes, replaceable (``keep_labels``).
        class_names: one name per class index.
        normalization: how raw pixels were mapped to inputs, e.g. ``"x / 255"``; the same
            mapping must be applied on the device.
        meta: what the loader noticed, e.g. ``{"skipped": 3}`` unreadable images.
        cache_dir: the image cache folder (``None``: files are decoded on every pass).
        bundled: True for the bundled demo sets (mnist5k, digits).
    """

    def __init__(self, name, x_train, y_train, x_val, y_val, x_test, y_test, class_names, normalization,
                 meta=None, *, cache_dir=None, bundled=False):
        self.name = name
        self._tables = {"train": _as_table(x_train), "val": _as_table(x_val), "test": _as_table(x_test)}
        self.y_train, self.y_val, self.y_test = (np.asarray(y, np.int32) for y in (y_train, y_val, y_test))
        self.class_names, self.normalization = list(class_names), normalization
        self.meta = dict(meta or {})
        self.cache_dir, self.bundled = cache_dir, bundled

    @property
    def input_shape(self):
        return tuple(int(d) for d in self._tables["train"].row_shape)

    @property
    def num_classes(self):
        return len(self.class_names)

    def table(self, split):
        """The :class:`~kdtf.data.table.Table` of ``split``."""
        _check_split(split)
        return self._tables[split]

    def labels(self, split):
        """The labels of ``split``, checked against its examples."""
        labels = np.asarray(getattr(self, f"y_{split}"), np.int32)
        if len(labels) != len(self.table(split)):
            raise ValueError(
                f"Splits.y_{split} has {len(labels)} labels, but the {split} split has {len(self.table(split))} "
                "examples. Keep one label per example (-1 for unlabeled); add examples with add_unlabeled()."
            )
        return labels

    def size(self, split):
        """Examples in ``split``."""
        return len(self.table(split))

    def fingerprint(self, split):
        """A hex digest of the inputs of ``split``: its files with their sizes and
        modification times (or TFDS split, or in-memory array bytes), the rows taken,
        the image size and channels. Labels are not part of it."""
        return hashlib.sha256(f"{self.name}|{self.table(split).identity()}".encode()).hexdigest()

    def describe(self, split, positions):
        """Names of the examples at ``positions`` (file paths, ``array[i]``, ...)."""
        return self.table(split).describe(positions)

    def _positions(self, split, positions, labelled_only, shard):
        labels = self.labels(split)
        chosen = np.arange(len(labels), dtype=np.int64) if positions is None else np.asarray(positions, np.int64).reshape(-1)
        if labelled_only:
            chosen = chosen[labels[chosen] >= 0]
        if shard is not None:
            workers, index = (int(v) for v in shard)
            if not 0 <= index < workers:
                raise ValueError(
                    f"Expected shard=(num_workers, worker_index) with 0 <= worker_index < num_workers. Received: shard={shard!r}"
                )
            chosen = chosen[index::workers]
        return chosen, labels

    def dataset(self, split, batch_size=64, shuffle=False, seed=0, augment=None, *, with_index=False, shard=None,
                repeat=False, labelled_only=False, drop_remainder=False, positions=None):
        """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)`` (float32 inputs
        normalised as :attr:`normalization` says, int32 labels) for ``split``.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: examples per batch (the last one may be smaller).
            shuffle, seed: shuffle the split's positions with ``seed``, anew every epoch.
            augment: keras-cv augmentation names (:mod:`kdtf.data.augment`), applied to
                each batch (labels become one-hot rows with mixup/cutmix); or a callable
                ``fn(x, y) -> element`` mapped over the batches (e.g. BYOL's two views,
                see :func:`kdtf.data.augment.byol_views`).
            with_index: yield ``(x, y, index)``, ``index`` the int64 position of each
                example in the split (for the teacher-output cache).
            shard: ``(num_workers, worker_index)``: this worker's share of the examples
                (every ``num_workers``-th file), for MultiWorker training; tf.data's own
                auto-sharding is switched off.
            repeat: repeat the examples forever (shuffled anew each pass) before batching,
                so batches are always full; pass ``steps_per_epoch`` to ``fit``.
            labelled_only: drop examples with label ``-1``.
            drop_remainder: drop a last, smaller batch.
            positions: only these positions of the split (in this order unless shuffled).
        """
        chosen, labels = self._positions(split, positions, labelled_only, shard)
        if with_index and augment:
            raise ValueError(
                "Expected with_index=True without augmentation (the teacher-output cache needs the same "
                f"inputs every epoch). Received: augment={augment!r}"
            )
        ds = example_batches(
            self.table(split), chosen, batch_size, shuffle=shuffle, seed=seed, repeat=repeat, drop_remainder=drop_remainder
        )
        y = tf.constant(labels)
        raw = self.table(split).dtype == np.uint8

        def element(x, index):
            x = tf.cast(x, tf.float32) / 255.0 if raw else x
            return (x, tf.gather(y, index), index) if with_index else (x, tf.gather(y, index))

        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE)
        ds = self._augment(ds, augment, seed)
        if shard is not None:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            ds = ds.with_options(options)
        return ds.prefetch(tf.data.AUTOTUNE)

    def distributed(self, strategy, split, global_batch_size, **options):
        """:meth:`dataset` for ``strategy`` (``distribute_datasets_from_function``): each
        input pipeline (one per worker under MultiWorkerMirroredStrategy) reads only its
        shard of the files, in per-replica batches; ``options`` go to :meth:`dataset`.
        Pass the result to ``fit`` like a dataset (with ``steps_per_epoch`` when it
        repeats)."""

        def make(context):
            pipelines = context.num_input_pipelines
            shard = (pipelines, context.input_pipeline_id) if pipelines > 1 else None
            return self.dataset(split, context.get_per_replica_batch_size(global_batch_size), shard=shard, **options)

        return strategy.distribute_datasets_from_function(make)

    def _augment(self, ds, augment, seed):
        if callable(augment):
            return quiet_map(ds, augment)
        return augment_dataset(ds, augment, self.input_shape, self.num_classes, seed) if augment else ds

    def take(self, split, positions, max_bytes=ARRAYS_MAX_BYTES):
        """The examples at ``positions`` as arrays ``(x float32, y int32)``, in that
        order; refused above ``max_bytes`` of float32 (without an image cache, an
        example whose file fails to decode is left out, and its label with it)."""
        x, kept = read_examples(self.table(split), positions, max_bytes, f"examples of {self.name}")
        return x, self.labels(split)[kept]

    def sample(self, split, n, seed=0):
        """A bounded sample: ``min(n, size)`` examples drawn with ``seed`` (in split
        order), as ``(x float32, y int32)``; for int8 calibration and quick checks.
        ``seed=None`` takes the first ``n``."""
        size = self.size(split)
        n = min(int(n), size)
        positions = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).choice(size, n, replace=False))
        return self.take(split, positions)

    def arrays(self, split, max_bytes=ARRAYS_MAX_BYTES):
        """The whole split as ``(x float32, y int32)``: for tests and the small bundled
        sets only; refused above ``max_bytes`` (iterate :meth:`dataset` instead)."""
        table, labels = self.table(split), self.labels(split)
        if len(table.segments) == 1 and isinstance(table.segments[0][0], ArrayRows) and table.dtype == np.float32:
            source, rows = table.segments[0]
            if len(rows) == len(source) and np.array_equal(rows, np.arange(len(rows))):
                return source.x, labels
        return self.take(split, np.arange(len(table)), max_bytes=max_bytes)

    def add_unlabeled(self, spec_or_files, *, data_dir=None):
        """Appends an unlabeled transfer set to the training split (label ``-1``),
        streamed like the rest: ``folder:PATH`` (every image under ``PATH``), a list of
        image files, or another spec (all its splits). Images are resized to this data
        set's input shape and cached under :attr:`cache_dir` when there is one.

        Returns:
            The number of examples added (unreadable files are skipped and counted in
            ``meta["skipped_unlabeled"]``).
        """
        height, _, channels = self.input_shape
        log = CacheLog(self.cache_dir)
        segments, skipped = open_unlabeled(
            spec_or_files, image_size=height, channels=channels, data_dir=data_dir, cache_dir=self.cache_dir, log=log,
        )
        table, labels = self.table("train"), self.labels("train")
        joined = Table(table.segments + segments)
        if not joined.streamable:  # in-memory data without a cache: hold the transfer set too
            x, _ = read_examples(Table(segments), np.arange(sum(len(rows) for _, rows in segments)), ARRAYS_MAX_BYTES,
                                 f"transfer-set images of {spec_or_files} (in memory beside {self.name}; pass cache_dir to stream them)")
            joined = table.append(ArrayRows(x), np.arange(len(x)))
        table = joined
        added = len(table) - len(labels)
        self._tables["train"] = table
        self.y_train = np.concatenate([labels, np.full(added, -1, np.int32)])
        self.meta["transfer_set"] = self.meta.get("transfer_set", 0) + added
        self.meta["skipped_unlabeled"] = self.meta.get("skipped_unlabeled", 0) + len(skipped)
        return added

    # In-memory access, kept for the small sets and older callers (see arrays()).
    def _get_x(split):
        def get(self):
            x, _ = self.arrays(split)
            if len(x) != self.size(split):
                raise ValueError(
                    f"{self.size(split) - len(x)} image(s) of the {split} split of {self.name} failed to decode while "
                    "streaming, so x and y would not line up. Load with cache_dir=... (--cache-dir): the decoding "
                    "pass then skips unreadable images before the split."
                )
            return x

        def set_(self, x):
            self._tables[split] = _as_table(x)

        return property(get, set_, doc=f"The {split} images as one float32 array (arrays('{split}')); "
                                      "assigning an array replaces the split's examples.")

    x_train, x_val, x_test = _get_x("train"), _get_x("val"), _get_x("test")
    del _get_x
