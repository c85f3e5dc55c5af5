"""The teacher-output cache on disk, keyed by example position in a split.

The teacher runs once over a split (logits and tapped features); each output is stored
as a row file (:mod:`kdtf.data.rowfile`) whose row ``i`` belongs to the example at
position ``i`` of the split. Training pipelines then carry each batch's rows with the
images, whatever the shuffling, so ``train_step`` runs no teacher forward pass::

    ds = splits.dataset("train", 64, with_index=True)          # deterministic order
    paths = write_teacher_outputs(TeacherOutputs(distiller).predict, ds, splits.size("train"), path)
    train = attach_teacher_outputs(splits.dataset("train", 64, shuffle=True, with_index=True), paths)

Valid only while the inputs are the same every epoch: no augmentation (with
``with_index=True``, ``Splits.dataset`` refuses it). A cache folder is keyed by the
split's fingerprint and the teacher's identity (:func:`teacher_cache_path`) and
written under a temporary name, then renamed: a half-written cache is never read.
"""

import contextlib
import hashlib
import json
import os
import shutil

import numpy as np

from kdtf._keras import tf
from kdtf.data.rowfile import RowReader, write_rows
from kdtf.io import atomic_path

__all__ = [
    "CACHED_KEY",
    "MAX_BYTES",
    "attach_teacher_outputs",
    "cached_teacher_outputs",
    "teacher_cache_path",
    "weights_digest",
    "write_teacher_outputs",
]

CACHED_KEY = "teacher_outputs"  # the Distiller's key for cached outputs in a batch
MAX_BYTES = 2 * 2**30
_META = "outputs.json"


def weights_digest(model):
    """A hex digest of a model's weights (with its name): a teacher's identity."""
    digest = hashlib.sha256(model.name.encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def teacher_cache_path(cache_dir, fingerprint, teacher_key):
    """The cache folder for one split (``Splits.fingerprint``) and one teacher (any
    string that changes with its weights and taps, e.g. :func:`weights_digest` plus the
    tapped layer names)."""
    digest = hashlib.sha256(f"{fingerprint}|{teacher_key}".encode()).hexdigest()[:20]
    return os.path.join(cache_dir, f"teacher-outputs-{digest}")


def _as_arrays(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(o) for o in outputs]


def _check_size(outputs, size, names, max_bytes):
    names = list(names or [f"output {k}" for k in range(len(outputs))])
    per_example = [int(np.prod(o.shape[1:])) * o.dtype.itemsize for o in outputs]
    total = sum(per_example) * size
    if total > max_bytes:
        parts = ", ".join(f"{n}: {b:,} B" for n, b in zip(names, per_example))
        raise ValueError(
            f"Caching the teacher's outputs ({parts} per example) would take {total / 2**30:.2f} GiB for "
            f"{size} examples, above max_bytes={max_bytes}. Tap smaller layers, or train without the cache."
        )
    return names


def _split_element(element):
    if not isinstance(element, (tuple, list)) or len(element) != 3:
        raise ValueError("Expected batches (x, y, index) from Splits.dataset(..., with_index=True). Received: another structure")
    return element


def write_teacher_outputs(teacher_fn, dataset_with_index, size, path, *, names=None, max_bytes=MAX_BYTES):
    """Runs ``teacher_fn`` over a split once and stores its outputs by position.

    Args:
        teacher_fn: ``x_batch -> tuple of arrays`` (logits, then tapped features), e.g.
            ``TeacherOutputs(distiller).predict``.
        dataset_with_index: batches ``(x, y, index)`` covering the split
            (``Splits.dataset(split, batch_size, with_index=True)``).
        size: examples in the split (rows of each file).
        path: the cache folder to create (see :func:`teacher_cache_path`).
        names: a name per output (layers), for the size message.
        max_bytes: refuse when the outputs would take more than this on disk.

    Returns:
        The paths of the row files, one per output.
    """
    if os.path.isdir(path):  # an older cache at this key: replaced as a whole
        shutil.rmtree(path)
    with atomic_path(path) as tmp, contextlib.ExitStack() as files:
        os.makedirs(tmp)
        writers, written = None, 0
        for element in dataset_with_index:
            x, _, index = _split_element(element)
            outputs = _as_arrays(teacher_fn(x))
            if writers is None:
                names = _check_size(outputs, size, names, max_bytes)
                writers = [
                    files.enter_context(write_rows(os.path.join(tmp, f"output_{k}.npy"), size, o.shape[1:], o.dtype))
                    for k, o in enumerate(outputs)
                ]
            for writer, output in zip(writers, outputs):
                writer.write(np.asarray(index), output)
            written += len(np.asarray(index))
        if writers is None:
            raise ValueError("Expected at least one batch to cache teacher outputs for. Received: an empty dataset")
        files.close()
        with open(os.path.join(tmp, _META), "w") as f:
            json.dump({"size": int(size), "written": int(written), "names": names, "files": len(writers)}, f)
    return _paths(path, len(writers))


def _paths(path, count):
    return [os.path.join(path, f"output_{k}.npy") for k in range(count)]


def cached_teacher_outputs(teacher_fn, dataset_with_index, size, path, **options):
    """The paths of the cache at ``path``, written by :func:`write_teacher_outputs`
    first when it is not there (``options`` go to it)."""
    meta = os.path.join(path, _META)
    if os.path.exists(meta):
        with open(meta) as f:
            info = json.load(f)
        paths = _paths(path, info["files"])
        if info["size"] == size and all(os.path.exists(p) for p in paths):
            return paths
    return write_teacher_outputs(teacher_fn, dataset_with_index, size, path, **options)


def attach_teacher_outputs(dataset_with_index, paths, labels=True):
    """Batches ``({"x": x, "teacher_outputs": (...)}, y)`` (``labels=False``: without
    ``y``) that carry each example's cached outputs, read by position.

    Args:
        dataset_with_index: batches ``(x, y, index)``, shuffled or not, of the split the
            cache was written for.
        paths: from :func:`write_teacher_outputs`.
        labels: keep the labels (``False`` for label-free distillation).
    """
    readers = [RowReader(p) for p in paths]
    dtypes = [tf.as_dtype(r.dtype) for r in readers]

    def read(index):
        return [r.read(index) for r in readers]

    def attach(x, y, index):
        outputs = tf.numpy_function(read, [index], dtypes, stateful=False)
        for output, reader in zip(outputs, readers):
            output.set_shape((None,) + tuple(reader.row_shape))
        inputs = {"x": x, CACHED_KEY: tuple(outputs)}
        return (inputs, y) if labels else (inputs,)

    return dataset_with_index.map(attach, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
