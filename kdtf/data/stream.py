"""The ``tf.data`` pipeline of a split: positions -> (shard, shuffle) -> read -> batch.

Only positions are shuffled (int64s, the whole split at once: an exact shuffle, fresh
every epoch, no buffer of pixels). Images are then read by position:

* in memory or from the image cache (random access): a batch of positions is read in
  one ``tf.numpy_function`` call (``os.pread`` rows of the cache, see
  :mod:`kdtf.data.rowfile`), several batches in parallel;
* encoded files without a cache: each file is read, decoded and resized in a parallel
  ``map`` (AUTOTUNE), unreadable ones dropped (``ignore_errors``), then batched;
* a TFDS split without a cache: read in order, the split's examples kept by index,
  shuffled within a buffer of encoded examples, decoded in a parallel ``map``.

Images stay uint8 until :meth:`kdtf.data.Splits.dataset` maps them to float32.
"""

import numpy as np

from kdtf._keras import tf
from kdtf.data.decode import decode_file
from kdtf.data.table import TfdsRows

__all__ = ["example_batches", "read_examples"]


def _positions(positions, shuffle, seed, repeat):
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(positions, np.int64))
    if shuffle:
        ds = ds.shuffle(max(len(positions), 1), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def _random_access(table, positions, batch_size, shuffle, seed, repeat, drop_remainder):
    shape, dtype = (None,) + table.row_shape, table.dtype

    def read(p):
        x = tf.numpy_function(table.read, [p], tf.as_dtype(dtype), stateful=False)
        x.set_shape(shape)
        return x, p

    ds = _positions(positions, shuffle, seed, repeat).batch(batch_size, drop_remainder=drop_remainder)
    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE)


def _files(table, positions, batch_size, shuffle, seed, repeat, drop_remainder):
    if not table.streamable:
        raise ValueError(
            "Expected image files or in-memory/cached images in one split, not both. "
            "Pass cache_dir to kdtf.data.load (--cache-dir) so every source is cached."
        )
    paths = np.empty(len(table), dtype=object)
    for k, mask, rows in table.locate(np.arange(len(table))):
        paths[mask] = table.segments[k][0].paths[rows]
    paths = tf.constant(paths.astype(str))
    size, _, channels = table.row_shape
    ds = _positions(positions, shuffle, seed, repeat)
    ds = ds.map(lambda p: (decode_file(tf.gather(paths, p), size, channels), p), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors().batch(batch_size, drop_remainder=drop_remainder)


def _tfds(table, positions, batch_size, shuffle, seed, repeat, drop_remainder):
    if len(table.segments) != 1:
        raise ValueError("Expected a TFDS split alone without an image cache. Pass cache_dir to kdtf.data.load (--cache-dir).")
    source, rows = table.segments[0]
    position_of = np.full(len(source), -1, np.int64)
    position_of[rows[positions]] = positions
    ds = source.tfds.stream(source.split, position_of, source.image_size, source.channels, shuffle=shuffle, seed=seed, repeat=repeat)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def example_batches(table, positions, batch_size, *, shuffle=False, seed=0, repeat=False, drop_remainder=False):
    """Batches ``(images, positions)`` of ``table`` at ``positions`` (their order when
    not shuffled; a TFDS stream without a cache yields them in source order).

    Images are the table's dtype: uint8 raw pixels or float32 already normalised.
    """
    args = (table, np.asarray(positions, np.int64), batch_size, shuffle, seed, repeat, drop_remainder)
    if table.random_access:
        return _random_access(*args)
    if any(isinstance(source, TfdsRows) for source, _ in table.segments):
        return _tfds(*args)
    return _files(*args)


def read_examples(table, positions, max_bytes, what="examples"):
    """Images at ``positions`` as one float32 array in ``[0, 1]`` (raw uint8 divided by
    255), in that order, and the positions found (without an image cache, a file that
    fails to decode is left out). Refused above ``max_bytes`` of float32."""
    positions = np.asarray(positions, np.int64).reshape(-1)
    need = len(positions) * int(np.prod(table.row_shape)) * 4
    if need > max_bytes:
        raise ValueError(
            f"{len(positions)} {what} at {table.row_shape} need {need / 2**30:.2f} GiB as float32, above "
            f"max_bytes={max_bytes}. Iterate over Splits.dataset() instead of materialising arrays."
        )
    rows = {}
    for x, index in example_batches(table, np.unique(positions), 256).as_numpy_iterator():
        x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
        rows.update(zip(index.tolist(), x))
    kept = np.asarray([p for p in positions.tolist() if p in rows], np.int64)
    x = np.stack([rows[p] for p in kept.tolist()]) if len(kept) else np.zeros((0,) + tuple(table.row_shape), np.float32)
    return x, kept
