"""The view store: a teacher's outputs on K replayable augmented views of every example.

FKD (Shen & Xing, "A Fast Knowledge Distillation Framework for Visual Recognition",
ECCV 2022) stores, once, the teacher's soft labels for many augmented views of each
image, and lets the student's loader replay those exact views, so training runs no
teacher. Here a view is ``(run seed, example, view index)`` and a policy
(:mod:`kdtf.data.views`); one streamed pass writes, for every example of a split
(labelled and unlabeled transfer rows alike) and every view ``v < K``:

* the top-k probabilities ``softmax(z / T)`` of each teacher's logits (float16) and
  their class indices (``top_k="all"`` keeps every class in class order, no indices);
* the tapped teacher features a feature term reads (float32), only when one asks.

Row ``p * K + v`` of each row file (:mod:`kdtf.data.rowfile`) belongs to view ``v`` of
example ``p``. Training then draws one stored view per example and epoch (shuffled,
seeded by the epoch), rebuilds its pixels from its seed and expands the stored top-k as
FKD does: the remaining mass ``1 - sum(top-k)`` is spread evenly over the other
classes. The Distiller receives pseudo-logits ``z' = T log p``, for which
``softmax(z' / T) = p`` exactly, in its usual batch ``({"x": x, "teacher_outputs":
(z', *features)}, y)``, so it needs no change.

The store lives under ``cache_dir`` in a folder named by a digest of its key (the
teachers' weights and taps, the split's fingerprint, the policy, K, k and T). It is
written in ``<folder>.partial`` and renamed when complete: nothing half-written is ever
read. A killed pass resumes where its last completed batch ended (``progress.json``).
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import time

import numpy as np

from kdtf._keras import tf
from kdtf.data.rowfile import RowReader, RowWriter
from kdtf.data.teacher_cache import CACHED_KEY
from kdtf.data.teacher_outputs import TeacherOutputs
from kdtf.data.views import ViewPolicy, example_reader, view_batches
from kdtf.io import write_text
from kdtf.view_options import parse_views_option

__all__ = ["ViewStore", "expand_top_k", "parse_views_option"]

log = logging.getLogger(__name__)

FORMAT = 1
_META, _PROGRESS = "store.json", "progress.json"
IN_MEMORY_BYTES = 64 * 2**20  # stores (and their expanded pseudo-logits) up to this size are held in memory for training
_EXPAND_ROWS = 65536  # rows expanded at once when the pseudo-logits are computed up front
_TINY = 1e-12  # floor of an expanded probability before its log (float16 underflows to 0)


def expand_top_k(probs, indices, num_classes, temperature):
    """Pseudo-logits ``T log p`` of the full distribution rebuilt from top-k probabilities.

    ``p[indices] = probs``; the remaining mass ``max(1 - sum(probs), 0)`` is spread evenly
    over the other classes (FKD's label expansion); ``p`` is then normalised (float16
    rounding) and floored at 1e-12. ``indices=None``: ``probs`` covers every class.

    Args:
        probs: ``(batch, k)`` probabilities (any float dtype).
        indices: ``(batch, k)`` class indices, or ``None``.
        num_classes: classes ``C``.
        temperature: ``T`` of the stored probabilities.

    Returns:
        ``(batch, C)`` float32 ``z'`` with ``softmax(z' / T) = p``.
    """
    p = tf.cast(probs, tf.float32)
    if indices is not None:
        k = p.shape[-1]
        rest = tf.nn.relu(1.0 - tf.reduce_sum(p, axis=-1, keepdims=True)) / max(num_classes - k, 1)
        hot = tf.one_hot(tf.cast(indices, tf.int32), num_classes)  # (batch, k, C)
        taken = tf.reduce_sum(hot, axis=1)
        p = tf.einsum("bk,bkc->bc", p, hot) + rest * (1.0 - taken)
    p = tf.maximum(p / tf.reduce_sum(p, axis=-1, keepdims=True), _TINY)
    return temperature * tf.math.log(p)


def _digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def _fsync(writer):
    writer.handle.flush()
    os.fsync(writer.handle.fileno())


def _compiled(outputs):
    """``x -> [numpy arrays]``: :class:`~kdtf.data.teacher_outputs.TeacherOutputs` in one
    compiled graph (the eager call costs about twice as much per image here)."""
    forward = tf.function(outputs.__call__, reduce_retracing=True)
    return lambda x: [o.numpy() for o in forward(tf.convert_to_tensor(x, tf.float32))]


class ViewStore:
    """Teacher outputs on ``views`` replayable views of every example of a split.

    Build it with :meth:`for_distiller` (or give the teacher function yourself), write
    it with :meth:`build` (reused when complete, resumed when a pass was killed) and
    train from :meth:`dataset`::

        store = ViewStore.for_distiller(distiller, splits, "flip,crop", views=8, top_k=5,
                                        cache_dir="cache").build()
        distiller.fit(store.dataset(64), steps_per_epoch=..., epochs=...)

    Args:
        data: a :class:`kdtf.data.Splits` (in memory or in the image cache).
        policy: a :class:`~kdtf.data.views.ViewPolicy` or augmentation names.
        teacher_fn: ``x -> list of arrays`` (per teacher: logits, then tapped features).
        teacher_key: a string that changes with the teachers' weights and taps.
        output_counts: tensors per teacher (1 + its tapped layers); default ``[1]``.
        views: ``K >= 1`` stored views per example.
        top_k: probabilities kept per view (``"all"``: every class; default 5 or all
            when there are fewer classes).
        temperature: ``T`` of the stored probabilities (the run's).
        cache_dir: folder of the store (or give ``path``).
        path: the store's folder itself; a store there with another key is refused.
        split: the split stored.
        seed: the run seed (of the views, when ``policy`` is names).
        batch_size: examples per batch of the store pass.
        teacher_batch: images per teacher call in the pass (K views of a batch are split).
    """

    def __init__(self, data, policy, teacher_fn, teacher_key, *, output_counts=(1,), views=8, top_k=None,
                 temperature=4.0, cache_dir=None, path=None, split="train", seed=0, batch_size=64,
                 teacher_batch=128):
        if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
            raise ValueError(f"Expected views >= 1 (K views of each example). Received: views={views!r}")
        if not temperature > 0:
            raise ValueError(f"Expected temperature > 0. Received: temperature={temperature}")
        classes = data.num_classes
        top_k = min(5, classes) if top_k is None else top_k
        if top_k == "all" or top_k == classes:
            top_k = classes
        elif isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= classes:
            raise ValueError(
                f"Expected top_k between 1 and the number of classes ({classes}), or 'all'. Received: top_k={top_k!r}"
            )
        if not isinstance(policy, ViewPolicy):
            policy = ViewPolicy(policy, data.input_shape, classes, seed=seed)
        self.data, self.policy, self.split = data, policy, split
        self.teacher_fn, self.views, self.top_k = teacher_fn, int(views), int(top_k)
        self.temperature, self.batch_size = float(temperature), int(batch_size)
        self.teacher_batch = int(teacher_batch)
        self.output_counts = [int(c) for c in output_counts]
        self.logit_slots = [int(s) for s in np.cumsum([0] + self.output_counts[:-1])]
        self.size, self.num_classes = data.size(split), classes
        self.key = {
            "format": FORMAT, "teachers": teacher_key, "data": data.fingerprint(split), "size": self.size,
            "policy": policy.key(), "views": self.views, "top_k": self.top_k, "temperature": self.temperature,
        }
        if path is None:
            if not cache_dir:
                raise ValueError("A view store is written to disk: pass cache_dir= (--cache-dir) or path=.")
            path = os.path.join(cache_dir, f"view-store-{_digest(self.key)}")
        self.path = os.fspath(path)
        self.pass_seconds, self.reused, self.resumed_at = 0.0, False, 0
        self._files = None

    @classmethod
    def for_distiller(cls, distiller, data, policy, **options):
        """The store of ``distiller``'s teachers (logits and the layers its terms tap) at
        its temperature. Terms that read the teacher's logits other than through softened
        probabilities at the run's temperature (``kd``/``dkd`` do) are refused: the store
        keeps probabilities, not logits."""
        temperature = distiller.spec.temperature
        for term in distiller.terms:
            own = getattr(term.loss, "temperature", None)
            if own is not None and own != temperature:
                raise ValueError(
                    f"Term '{term.name}' uses temperature {own}, but a view store keeps probabilities at the run's "
                    f"temperature {temperature}. Give the term the run's temperature, or use --cache-teacher off."
                )
            if own is None and not term.teacher_layers:
                raise ValueError(
                    f"Term '{term.name}' reads the teacher's logits themselves, but a view store keeps softened "
                    "probabilities. Name a teacher layer for it (@student/teacher), or use --cache-teacher off."
                )
        outputs = TeacherOutputs(distiller)
        return cls(data, policy, _compiled(outputs), outputs.key(), output_counts=outputs.counts,
                   temperature=temperature, **options)

    @classmethod
    def from_options(cls, distiller, data, *, augment, views, top_k=None, cache_dir=None, split="train", seed=0,
                     batch_size=64, shuffle=True, labels=True, max_bytes=None):
        """``Distiller.cached_dataset(data, augment=..., views=K, top_k=...)``: the store
        built (or reused) and its training batches, forever."""
        store = cls.for_distiller(distiller, data, augment, views=views, top_k=top_k, cache_dir=cache_dir, split=split,
                                  seed=seed, batch_size=batch_size)
        return store.build(max_bytes=max_bytes).dataset(batch_size, seed=seed, labels=labels, shuffle=shuffle)

    # -- layout --------------------------------------------------------------------
    def _layout(self, outputs):
        """``[(file name, row shape, dtype)]`` from one batch of teacher outputs."""
        files = []
        for slot, output in enumerate(outputs):
            if slot in self.logit_slots:
                files.append((f"probs_{slot}.npy", (self.top_k,), np.float16))
                if self.top_k < self.num_classes:
                    files.append((f"index_{slot}.npy", (self.top_k,), np.int16 if self.num_classes < 2**15 else np.int32))
            else:
                files.append((f"feature_{slot}.npy", tuple(output.shape[1:]), np.float32))
        return files

    def bytes_per_example(self, layout=None):
        """Bytes on disk per example (all K views), from the layout."""
        layout = layout or self._probe()
        return self.views * sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in layout)

    def planned_bytes(self):
        """The whole store's bytes on disk, known before the pass: K x (k probabilities
        (float16) + k class indices + any features) per example, times the examples (one
        teacher call on one image gives the row shapes)."""
        return self.bytes_per_example() * self.size

    def _probe(self):
        x, _ = example_reader(self.data, self.split)(tf.constant([0], tf.int64))
        return self._layout([np.asarray(o) for o in self.teacher_fn(x)])

    @property
    def complete(self):
        return os.path.exists(os.path.join(self.path, _META))

    @property
    def bytes(self):
        """The store's size on disk (complete or partial)."""
        folder = self.path if self.complete else self.path + ".partial"
        if not os.path.isdir(folder):
            return 0
        return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))

    def describe(self):
        """What a report records: K, k, bytes, pass seconds, reused/resumed."""
        return {"views": self.views, "top_k": self.top_k, "policy": self.policy.names, "bytes": self.bytes,
                "bytes_per_example": self.bytes / max(self.size, 1), "pass_s": self.pass_seconds, "reused": self.reused,
                "resumed_at": self.resumed_at, "path": self.path}

    # -- the pass ------------------------------------------------------------------
    def _check_key(self, folder, name):
        with open(os.path.join(folder, name)) as f:
            stored = json.load(f)["key"]
        if stored != self.key:
            differ = sorted(k for k in set(stored) | set(self.key) if stored.get(k) != self.key.get(k))
            return differ
        return []

    def build(self, max_bytes=None):
        """Writes the store unless a complete one with this key is at :attr:`path`;
        resumes a killed pass. Returns ``self``.

        Raises:
            ValueError: a store with another key at ``path``; a store larger than the free
                disk (or ``max_bytes``).
            OSError: ``ENOSPC`` when the disk fills during the pass (one line; the partial
                store is kept and the next call resumes it).
        """
        if self.complete:
            differ = self._check_key(self.path, _META)
            if differ:
                raise ValueError(
                    f"The view store at {self.path!r} was written for another {', '.join(differ)} than this run's. "
                    "Delete that folder, or pass another path= / cache_dir=."
                )
            self.reused = True
            log.info("view store: reusing %s (%d views, top-%d)", self.path, self.views, self.top_k)
            return self
        started = time.perf_counter()
        layout = self._probe()
        need = self.bytes_per_example(layout) * self.size
        partial = self.path + ".partial"
        os.makedirs(os.path.dirname(os.path.abspath(partial)), exist_ok=True)
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(partial))).free
        if need > (free if max_bytes is None else min(free, max_bytes)):
            limit = f"max_bytes={max_bytes}" if max_bytes is not None and max_bytes < free else f"{free / 2**20:.0f} MiB free"
            raise ValueError(
                f"The view store would take {need / 2**20:.1f} MiB ({self.views} views x {self.size} examples), above "
                f"{limit} under {os.path.dirname(os.path.abspath(partial))!r}. Use fewer views or a smaller top-k."
            )
        log.info("view store: %d views x %d examples, %d B per example, %.1f MiB in all -> %s",
                 self.views, self.size, self.bytes_per_example(layout), need / 2**20, self.path)
        done = self._open_partial(partial, layout)
        try:
            self._write(partial, layout, done)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"No space left on the device while writing the view store {partial!r}; "
                              "the batches written so far are kept and the next run resumes from them: free some "
                              "space and run again") from None
            raise
        finally:
            self._close()
        write_text(os.path.join(partial, _META), json.dumps({"key": self.key, "files": [f for f, _, _ in layout]}))
        os.remove(os.path.join(partial, _PROGRESS))
        os.replace(partial, self.path)
        self.pass_seconds = time.perf_counter() - started
        return self

    def _open_partial(self, partial, layout):
        """Opens the row files of a partial store; returns the examples already done."""
        done = 0
        progress = os.path.join(partial, _PROGRESS)
        if os.path.exists(progress):
            if self._check_key(partial, _PROGRESS):
                shutil.rmtree(partial)
            else:
                with open(progress) as f:
                    done = int(json.load(f)["done"])
                log.warning("view store: an earlier pass stopped at example %d of %d; resuming there", done, self.size)
        elif os.path.isdir(partial):
            shutil.rmtree(partial)
        self.resumed_at = done
        os.makedirs(partial, exist_ok=True)
        self._files = []
        for name, shape, dtype in layout:
            file = os.path.join(partial, name)
            handle = open(file, "r+b" if done and os.path.exists(file) else "w+b")
            self._files.append(RowWriter(handle, self.size * self.views, shape, dtype))
        return done

    def _close(self):
        for writer in self._files or []:
            writer.handle.close()
        self._files = None

    def _write(self, partial, layout, done):
        """The pass: per batch of examples, all K views at once (one policy call), the
        teacher over them in chunks of ``teacher_batch`` images, then one write per file
        and the progress mark (after fsync)."""
        policy, views, read = self.policy, self.views, example_reader(self.data, self.split)
        if policy.mixes:
            build = tf.function(lambda x, y, p, v: policy(x, y, p, v, read=read, size=self.size)[0])
        else:
            build = tf.function(lambda x, y, p, v: policy.images(x, p, v))
        for start in range(done, self.size, self.batch_size):
            positions = np.arange(start, min(start + self.batch_size, self.size), dtype=np.int64)
            x, y = read(tf.constant(positions))
            repeat = np.repeat(positions, views)  # rows p * K + v, in order
            xv = build(tf.repeat(x, views, axis=0), tf.repeat(y, views, axis=0), tf.constant(repeat),
                       tf.constant(np.tile(np.arange(views, dtype=np.int64), len(positions))))
            chunks = [self._rows(self.teacher_fn(xv[i:i + self.teacher_batch])) for i in range(0, len(repeat), self.teacher_batch)]
            rows = positions[0] * views + np.arange(len(repeat))
            for k, writer in enumerate(self._files):
                writer.write(rows, np.concatenate([chunk[k] for chunk in chunks]))
                _fsync(writer)
            write_text(os.path.join(partial, _PROGRESS), json.dumps({"key": self.key, "done": int(positions[-1]) + 1}))

    def _rows(self, outputs):
        """The arrays stored for one view of a batch, in layout order."""
        rows = []
        for slot, output in enumerate(outputs):
            output = np.asarray(output)
            if slot not in self.logit_slots:
                rows.append(output.astype(np.float32))
                continue
            probs = tf.nn.softmax(tf.cast(output, tf.float32) / self.temperature)
            if self.top_k == self.num_classes:
                rows.append(probs.numpy().astype(np.float16))
                continue
            values, indices = tf.math.top_k(probs, self.top_k)
            rows += [values.numpy().astype(np.float16), indices.numpy()]
        return rows

    # -- training ------------------------------------------------------------------
    def read(self, positions, views):
        """The stored arrays of views ``views[i]`` of examples ``positions[i]`` (numpy)."""
        readers = self._readers()
        rows = np.asarray(positions, np.int64) * self.views + np.asarray(views, np.int64)
        return [r.read(rows) for r in readers]

    def _readers(self):
        if not self.complete:
            raise ValueError(f"The view store at {self.path!r} is not complete: call build() first.")
        if getattr(self, "_reader_cache", None) is None:
            with open(os.path.join(self.path, _META)) as f:
                names = json.load(f)["files"]
            self._reader_cache = [RowReader(os.path.join(self.path, n)) for n in names]
        return self._reader_cache

    def teacher_outputs(self, stored):
        """The Distiller's cached outputs from stored rows: pseudo-logits per teacher
        (:func:`expand_top_k`), then its features."""
        outputs, k = [], 0
        for slot in range(sum(self.output_counts)):
            if slot in self.logit_slots:
                indices = stored[k + 1] if self.top_k < self.num_classes else None
                outputs.append(expand_top_k(stored[k], indices, self.num_classes, self.temperature))
                k += 1 if indices is None else 2
            else:
                outputs.append(stored[k])
                k += 1
        return tuple(outputs)

    def dataset(self, batch_size=64, *, seed=0, labels=True, sample_weight=None, positions=None, shuffle=True):
        """Batches ``({"x": x, "teacher_outputs": (...)}, y)`` forever: each epoch shows
        one stored view per example (drawn with ``seed`` and the epoch, shuffled), its
        pixels rebuilt from its seed. Pass ``steps_per_epoch`` to ``fit``.

        Args:
            batch_size: examples per batch.
            seed: seed of the order and of the view drawn each epoch.
            labels: yield ``y`` (``False``: label-free distillation).
            sample_weight: one weight per example of the split: batches become
                ``(inputs, y, weight)``.
            positions: only these examples (default all).
            shuffle: shuffle each epoch.
        """
        if sample_weight is not None and not labels:
            raise ValueError("Expected labels=True with sample_weight= (Keras reads (x, y, weight)). Received: labels=False")
        weights = None if sample_weight is None else tf.constant(np.asarray(sample_weight, np.float32))
        outputs = self._outputs_reader()

        def attach(x, y, p, v):
            inputs = {"x": x, CACHED_KEY: outputs(p, v)}
            element = (inputs, y) if labels else (inputs,)
            return element + (tf.gather(weights, p),) if weights is not None else element

        return view_batches(self.data, self.split, batch_size, self.policy, views=self.views, seed=seed,
                            positions=positions, shuffle=shuffle, finish=attach)

    def _outputs_reader(self):
        """``(positions, views) -> the Distiller's teacher outputs`` inside the pipeline's
        graph, the cheapest way memory allows (:data:`IN_MEMORY_BYTES`): the expanded
        pseudo-logits of every view computed once and gathered per batch; else the stored
        rows gathered from memory and expanded per batch; else rows read from disk per
        batch (``pread``, memory bounded) and expanded."""
        readers = self._readers()
        rows = readers[0].rows
        stored_bytes = sum(r.rows * r.row_bytes for r in readers)
        expanded_bytes = rows * 4 * sum(self.num_classes if slot in self.logit_slots else 0
                                        for slot in range(sum(self.output_counts)))
        index = lambda p, v: tf.cast(p, tf.int64) * self.views + tf.cast(v, tf.int64)  # noqa: E731
        if stored_bytes + expanded_bytes <= IN_MEMORY_BYTES:
            stored = [r.read(np.arange(r.rows)) for r in readers]
            tables = [tf.constant(np.concatenate([np.asarray(o) for o in parts]))
                      for parts in zip(*(self.teacher_outputs([a[i:i + _EXPAND_ROWS] for a in stored])
                                         for i in range(0, rows, _EXPAND_ROWS)))]
            return lambda p, v: tuple(tf.gather(t, index(p, v)) for t in tables)
        if stored_bytes <= IN_MEMORY_BYTES:
            tables = [tf.constant(r.read(np.arange(r.rows))) for r in readers]
            return lambda p, v: self.teacher_outputs([tf.gather(t, index(p, v)) for t in tables])
        dtypes = [tf.as_dtype(r.dtype) for r in readers]

        def from_disk(p, v):
            stored = tf.numpy_function(self.read, [p, v], dtypes, stateful=False)
            for tensor, reader in zip(stored, readers):
                tensor.set_shape((None,) + tuple(reader.row_shape))
            return self.teacher_outputs(stored)

        return from_disk
