"""Image sources for a split: a file list or a TFDS split, cached or streamed.

With a cache folder, a source is decoded once into the image cache
(:mod:`kdtf.data.image_cache`) and read from there; the decoding pass also finds the
unreadable files, so they are skipped before the split is made (the split is the one
an in-memory loader would make) and never decoded twice. Without one, files are
decoded on every pass, and unreadable files are found by a cheap check of their first
and last bytes (:func:`kdtf.data.decode.looks_like_image`: format signature and end
marker, which catches non-images and truncated files); a file that passes it but
still fails to decode is dropped from the batches.
"""

import functools
import time

import numpy as np

from kdtf._keras import tf
from kdtf.data.decode import decode_file, looks_like_image
from kdtf.data.image_cache import cache_key, cached_images, file_identity
from kdtf.data.table import CachedRows, FileRows, TfdsRows

__all__ = ["CacheLog", "open_files", "open_tfds_split"]


class CacheLog:
    """What the image cache did during one load: entries built (and the seconds spent
    decoding) or reused; ``as_meta()`` goes into ``Splits.meta["image_cache"]``."""

    def __init__(self, cache_dir):
        self.cache_dir, self.built, self.reused, self.decode_s, self.decoded = cache_dir, 0, 0, 0.0, 0

    def record(self, built, seconds, count):
        if built:
            self.built, self.decode_s, self.decoded = self.built + 1, self.decode_s + seconds, self.decoded + count
        else:
            self.reused += 1

    def as_meta(self):
        return {
            "dir": self.cache_dir, "built": self.built, "reused": self.reused,
            "decoded": self.decoded, "decode_s": round(self.decode_s, 3),
        }


def _file_elements(files, image_size, channels):
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(files, dtype=str), np.arange(len(files), dtype=np.int64)))
    ds = ds.map(lambda f, i: (i, decode_file(f, image_size, channels)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors()


def open_files(files, image_size, channels, cache_dir=None, name="folder", log=None):
    """A source for image ``files``.

    Returns:
        ``(source, kept, skipped)``: the :class:`~kdtf.data.table.CachedRows` or
        :class:`~kdtf.data.table.FileRows`, the indices of ``files`` it holds (in order)
        and the paths of the unreadable files.
    """
    files = np.asarray(list(files), dtype=object)
    identity = ["files", file_identity(files), image_size, channels]
    shape = (image_size, image_size, channels)
    if cache_dir:
        start = time.perf_counter()
        elements = functools.partial(_file_elements, files, image_size, channels)  # called only to build
        reader, skipped, built = cached_images(cache_dir, name, identity, len(files), shape, elements)
        if log is not None:
            log.record(built, time.perf_counter() - start, len(files))
        kept = np.setdiff1d(np.arange(len(files)), skipped)
        return CachedRows(reader, cache_key([identity, list(shape)]), files[kept]), kept, [str(f) for f in files[skipped]]
    readable = np.asarray([looks_like_image(f) for f in files], bool)
    kept = np.flatnonzero(readable)
    return FileRows(files[kept], image_size, channels, cache_key(identity)), kept, [str(f) for f in files[~readable]]


class _TfdsNames:
    """``names[row]`` of a cached TFDS split without a list of a million strings."""

    def __init__(self, name, split):
        self.name, self.split = name, split

    def __getitem__(self, row):
        return f"{self.name}/{self.split}[{row}]"


def open_tfds_split(tfds, split, image_size, channels, cache_dir=None, log=None):
    """A source for one TFDS split and its int32 labels (read without decoding)."""
    labels = tfds.labels(split)
    if not cache_dir:
        return TfdsRows(tfds, split, len(labels), image_size, channels), labels
    identity = ["tfds", tfds.identity(split), image_size, channels]
    shape = tfds.row_shape(image_size, channels)
    start = time.perf_counter()
    reader, skipped, built = cached_images(
        cache_dir, f"tfds-{tfds.name}-{split}", identity, len(labels), shape, lambda: tfds.images(split, image_size, channels)
    )
    if log is not None:
        log.record(built, time.perf_counter() - start, len(labels))
    if len(skipped):
        raise ValueError(f"TFDS data set {tfds.name!r} split {split!r}: {len(skipped)} example(s) could not be decoded.")
    return CachedRows(reader, cache_key([identity, list(shape)]), _TfdsNames(tfds.name, split)), labels
