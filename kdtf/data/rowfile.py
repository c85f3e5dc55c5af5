"""Arrays on disk, written once and read by rows: the image cache and the teacher-output
cache.

A row file is a plain ``.npy`` file (``np.load(path, mmap_mode="r")`` opens it) whose
header has a fixed length, so the row count can be corrected after writing (images that
failed to decode are not known in advance). Rows are read with ``os.pread``, not a
memory map: pages read from a map count as the process's resident memory, pages read
with ``pread`` live in the kernel's page cache, which the kernel drops under pressure.
A 1.8 GB cache therefore adds nothing to a run's peak RSS.
"""

import contextlib
import itertools
import os

import numpy as np

from kdtf.io import atomic_path

__all__ = ["RowReader", "RowWriter", "write_rows"]

HEADER_BYTES = 128  # magic, version, length, dict padded with spaces, newline
_CHUNK_ROWS = 64  # rows per pread when reading a contiguous run


def _header(rows, row_shape, dtype):
    shape = (int(rows),) + tuple(int(d) for d in row_shape)
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    prefix = b"\x93NUMPY\x01\x00" + (HEADER_BYTES - 10).to_bytes(2, "little")
    body = text.encode("latin1").ljust(HEADER_BYTES - 11) + b"\n"
    if len(body) != HEADER_BYTES - 10:
        raise ValueError(f"Expected a row shape that fits a {HEADER_BYTES}-byte .npy header. Received: shape={shape}")
    return prefix + body


class RowWriter:
    """Writes rows of a fixed shape and dtype into an open file (see :func:`write_rows`)."""

    def __init__(self, handle, rows, row_shape, dtype):
        self.handle, self.rows = handle, int(rows)
        self.row_shape, self.dtype = tuple(int(d) for d in row_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.appended = 0
        handle.write(_header(self.rows, self.row_shape, self.dtype))
        handle.truncate(HEADER_BYTES + self.rows * self.row_bytes)

    def _check(self, values, count):
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape != (count,) + self.row_shape:
            raise ValueError(f"Expected rows of shape {(count,) + self.row_shape}. Received: shape={values.shape}")
        return values

    def append(self, values):
        """Writes ``values`` after the rows appended so far."""
        values = self._check(values, len(values))
        self.write(np.arange(self.appended, self.appended + len(values)), values)
        self.appended += len(values)

    def write(self, positions, values):
        """Writes ``values[i]`` at row ``positions[i]``."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        values = self._check(values, len(positions))
        if len(positions) and (positions.min() < 0 or positions.max() >= self.rows):
            raise ValueError(f"Expected row positions in [0, {self.rows}). Received: {positions.min()}..{positions.max()}")
        fd = self.handle.fileno()
        for start, stop in _runs(positions):
            os.pwrite(fd, values[start:stop].tobytes(), HEADER_BYTES + int(positions[start]) * self.row_bytes)

    def shrink(self, rows):
        """Keeps only the first ``rows`` rows (after skipped images)."""
        self.rows = int(rows)
        os.pwrite(self.handle.fileno(), _header(self.rows, self.row_shape, self.dtype), 0)
        self.handle.truncate(HEADER_BYTES + self.rows * self.row_bytes)


@contextlib.contextmanager
def write_rows(path, rows, row_shape, dtype):
    """Yields a :class:`RowWriter` for a new row file at ``path``; the file appears there
    (atomically renamed from a temporary name) only when the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, "w+b") as handle:
        yield RowWriter(handle, rows, row_shape, dtype)
        handle.flush()
        os.fsync(handle.fileno())


def _runs(positions):
    """``(start, stop)`` slices of ``positions`` whose values are consecutive integers."""
    if not len(positions):
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    edges = np.concatenate([[0], breaks, [len(positions)]])
    return list(itertools.pairwise(edges))


class RowReader:
    """Reads rows of a row file (or any version-1 ``.npy`` file) by position."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"Expected a C-ordered .npy row file. Received: {self.path!r}")
        self.rows, self.row_shape, self.dtype = shape[0], tuple(shape[1:]), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        expected = self.offset + self.rows * self.row_bytes
        if os.path.getsize(self.path) != expected:
            raise ValueError(f"Row file {self.path!r} is {os.path.getsize(self.path)} bytes, expected {expected}; delete it.")
        self._fd = os.open(self.path, os.O_RDONLY)

    def read(self, positions):
        """Rows at ``positions`` (any order, repeats allowed) as one array."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= self.rows):
            raise IndexError(f"Row positions {positions.min()}..{positions.max()} outside [0, {self.rows}) of {self.path!r}")
        order = np.argsort(positions, kind="stable")
        ordered = positions[order]
        out = np.empty((len(positions),) + self.row_shape, self.dtype)
        if not len(positions):
            return out
        flat = out.reshape(len(positions), -1).view(np.uint8)
        for start, stop in _runs(ordered):
            for chunk in range(start, stop, _CHUNK_ROWS):
                end = min(chunk + _CHUNK_ROWS, stop)
                data = os.pread(self._fd, (end - chunk) * self.row_bytes, self.offset + int(ordered[chunk]) * self.row_bytes)
                flat[order[chunk:end]] = np.frombuffer(data, np.uint8).reshape(end - chunk, -1)
        return out

    def __len__(self):
        return self.rows

    def close(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()
