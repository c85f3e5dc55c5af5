"""What a split is made of: an ordered table of examples over one or more sources.

A source holds images: in memory (:class:`ArrayRows`, the bundled sets), in the image
cache (:class:`CachedRows`), or as encoded files decoded on every pass
(:class:`FileRows`, no cache). A :class:`Table` is a list of ``(source, rows)``
segments; position ``p`` of a split is row ``rows[p - offset]`` of its segment's
source. Labels are not here: they live on :class:`kdtf.data.Splits`, which the caller
may edit (``keep_labels``, an unlabeled transfer set).
"""

import hashlib

import numpy as np

__all__ = ["ArrayRows", "CachedRows", "FileRows", "Table", "TfdsRows"]


class ArrayRows:
    """Images held in memory, already normalised (float32) or raw uint8."""

    random_access = True

    def __init__(self, x):
        self.x = np.asarray(x)
        self.row_shape, self.dtype = tuple(self.x.shape[1:]), self.x.dtype
        self._digest = None

    def __len__(self):
        return len(self.x)

    def read(self, rows):
        return self.x[rows]

    def identity(self):
        if self._digest is None:
            self._digest = hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest()
        return ["array", self._digest, list(self.x.shape), str(self.x.dtype)]

    def describe(self, row):
        return f"array[{row}]"


class CachedRows:
    """Decoded images in a cache entry (:mod:`kdtf.data.image_cache`); ``names`` are
    the sources' names of the kept rows (file paths), ``key`` the entry's identity."""

    random_access = True

    def __init__(self, reader, key, names):
        self.reader, self.key, self.names = reader, key, names
        self.row_shape, self.dtype = reader.row_shape, reader.dtype

    def __len__(self):
        return len(self.reader)

    def read(self, rows):
        return self.reader.read(rows)

    def identity(self):
        return ["cache", self.key]

    def describe(self, row):
        return str(self.names[row])


class FileRows:
    """Encoded image files decoded inside ``tf.data`` on every pass (no image cache)."""

    random_access = False

    def __init__(self, paths, image_size, channels, key):
        self.paths, self.key = np.asarray(paths, dtype=object), key
        self.row_shape, self.dtype = (image_size, image_size, channels), np.dtype(np.uint8)

    def __len__(self):
        return len(self.paths)

    def identity(self):
        return ["files", self.key]

    def describe(self, row):
        return str(self.paths[row])


class TfdsRows:
    """One TFDS split read in order through ``as_dataset`` on every pass (no image
    cache); see :meth:`kdtf.data.tfds_source.TfdsSource.stream`."""

    random_access = False

    def __init__(self, tfds, split, count, image_size, channels):
        self.tfds, self.split, self.count = tfds, split, int(count)
        self.image_size, self.channels = image_size, channels
        self.row_shape, self.dtype = tfds.row_shape(image_size, channels), np.dtype(np.uint8)

    def __len__(self):
        return self.count

    def identity(self):
        return ["tfds", self.tfds.identity(self.split), self.image_size, self.channels]

    def describe(self, row):
        return f"{self.tfds.name}/{self.split}[{row}]"


class Table:
    """Ordered examples of one split: ``segments`` is a list of ``(source, rows)``."""

    def __init__(self, segments):
        self.segments = [(source, np.asarray(rows, np.int64)) for source, rows in segments]
        shapes = {tuple(source.row_shape) for source, _ in self.segments}
        if len(shapes) > 1:
            raise ValueError(f"Expected examples of one shape in a split. Received: shapes {sorted(shapes)}")
        self.offsets = np.cumsum([0] + [len(rows) for _, rows in self.segments])

    def __len__(self):
        return int(self.offsets[-1])

    @property
    def row_shape(self):
        return tuple(self.segments[0][0].row_shape)

    @property
    def dtype(self):
        """uint8 when every source holds raw pixels, else float32 (normalised)."""
        dtypes = {np.dtype(source.dtype) for source, _ in self.segments}
        return np.dtype(np.uint8) if dtypes == {np.dtype(np.uint8)} else np.dtype(np.float32)

    @property
    def random_access(self):
        return all(source.random_access for source, _ in self.segments)

    @property
    def streamable(self):
        """Whether one pipeline can read the table: random access, or files decoded on
        every pass, or a single TFDS split read in order."""
        kinds = {type(source) for source, _ in self.segments}
        return self.random_access or kinds == {FileRows} or (kinds == {TfdsRows} and len(self.segments) == 1)

    def append(self, source, rows):
        return Table(self.segments + [(source, rows)])

    def locate(self, positions):
        """``[(segment index, mask, rows of the source)]`` for ``positions``."""
        positions = np.asarray(positions, np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"Expected positions in [0, {len(self)}). Received: {positions.min()}..{positions.max()}")
        segment = np.searchsorted(self.offsets, positions, side="right") - 1
        found = []
        for k in np.unique(segment):
            mask = segment == k
            found.append((int(k), mask, self.segments[k][1][positions[mask] - self.offsets[k]]))
        return found

    def read(self, positions, scale=255.0):
        """Images at ``positions`` in :attr:`dtype`; raw uint8 sources are divided by
        ``scale`` when the table mixes them with normalised ones."""
        positions = np.asarray(positions, np.int64).reshape(-1)
        dtype = self.dtype
        out = np.empty((len(positions),) + self.row_shape, dtype)
        for k, mask, rows in self.locate(positions):
            values = self.segments[k][0].read(rows)
            if dtype != values.dtype:
                values = values.astype(np.float32) / np.float32(scale) if values.dtype == np.uint8 else values.astype(dtype)
            out[mask] = values
        return out

    def describe(self, positions):
        """The name of each example (file path, ``array[i]``, ``tfds-name[i]``)."""
        names = np.empty(len(np.atleast_1d(positions)), dtype=object)
        for k, mask, rows in self.locate(positions):
            names[mask] = [self.segments[k][0].describe(int(r)) for r in rows]
        return names.tolist()

    def identity(self):
        """Sources and the rows taken from each: the split's inputs, for fingerprints."""
        digest = hashlib.sha256()
        for source, rows in self.segments:
            digest.update(repr(source.identity()).encode())
            digest.update(np.ascontiguousarray(rows, np.int64).tobytes())
        return digest.hexdigest()
