"""The on-disk cache of decoded, resized images (uint8), one file per image source.

A source (the files of a folder or a split folder, one TFDS split) is decoded once, in
parallel inside ``tf.data``, in order, into a row file (:mod:`kdtf.data.rowfile`)
under the cache folder; later epochs and later runs read rows from it. The key is a
hash of everything the pixels depend on: the file paths, sizes and modification times
(or the TFDS name, version and split), the image size and the channels. A changed,
added or removed file gives a new key, so a stale cache is never read.

Two files per entry: ``images-<name>-<key>.npy`` (the rows of the readable images, in
source order) and ``.json`` beside it (the unreadable ones, by index), written last.
Both are written under a temporary name and renamed, and the ``.json`` only after the
``.npy``: an interrupted build leaves no entry that a later run would trust.
"""

import hashlib
import json
import os
import re

import numpy as np

from kdtf._keras import tf
from kdtf.data.native_stderr import without_decoder_noise
from kdtf.data.rowfile import RowReader, write_rows
from kdtf.io import write_text

__all__ = ["CACHE_VERSION", "cache_key", "cached_images", "decode_in_order", "file_identity"]

CACHE_VERSION = 1
BATCH = 64  # images per write while building


def file_identity(files):
    """``[[path, size, mtime_ns], ...]`` of ``files``: what a cache entry is keyed on."""
    rows = []
    for path in files:
        try:
            stat = os.stat(path)
        except OSError as error:
            raise ValueError(f"Cannot read image file {path!r}: {error.strerror}.") from None
        rows.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    return rows


def cache_key(identity):
    """A short hex digest of a JSON-serialisable description of a source."""
    text = json.dumps([CACHE_VERSION, identity], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _paths(cache_dir, name, key):
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-40:] or "data"
    base = os.path.join(cache_dir, f"images-{slug}-{key}")
    return base + ".npy", base + ".json"


def _load_entry(npy, meta, count):
    if not (os.path.exists(npy) and os.path.exists(meta)):
        return None
    try:
        with open(meta) as f:
            skipped = np.asarray(json.load(f)["skipped"], np.int64)
        reader = RowReader(npy)
    except (OSError, ValueError, KeyError):
        return None
    if len(reader) + len(skipped) != count:
        return None
    return reader, skipped


def decode_in_order(elements, count, row_shape, npy):
    """Writes the images of ``elements`` (a dataset of ``(index, uint8 image)`` in index
    order, unreadable ones dropped) as rows of ``npy``; returns the missing indices."""
    kept = []
    with without_decoder_noise(), write_rows(npy, count, row_shape, np.uint8) as writer:
        for index, images in elements.batch(BATCH).prefetch(2).as_numpy_iterator():
            writer.append(images)
            kept.append(index)
        kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        writer.shrink(len(kept))
    return np.setdiff1d(np.arange(count), kept)


def cached_images(cache_dir, name, identity, count, row_shape, elements_fn):
    """Opens the cache entry for a source, building it first when it is missing.

    Args:
        cache_dir: the cache folder (created if needed).
        name: the data set's name, for the file name.
        identity: JSON-serialisable description of everything the pixels depend on.
        count: examples in the source.
        row_shape: ``(size, size, channels)`` of the stored images.
        elements_fn: ``() -> tf.data.Dataset`` of ``(index, uint8 image)``, in order,
            unreadable images dropped; called only when the entry is built.

    Returns:
        ``(RowReader, skipped indices, built)``.
    """
    os.makedirs(cache_dir, exist_ok=True)
    npy, meta = _paths(cache_dir, name, cache_key([identity, list(row_shape)]))
    entry = _load_entry(npy, meta, count)
    if entry is not None:
        return entry + (False,)
    try:
        skipped = decode_in_order(elements_fn(), count, row_shape, npy)
    except tf.errors.OpError as error:
        raise ValueError(f"Could not decode the images of {name!r}: {error.message.splitlines()[0]}") from None
    write_text(meta, json.dumps({"source": name, "rows": count - len(skipped), "skipped": skipped.tolist()}) + "\n")
    return RowReader(npy), skipped, True
