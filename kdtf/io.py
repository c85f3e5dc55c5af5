"""Atomic file writes: a temporary name in the same folder, then ``os.replace``.

A run killed at any moment leaves either the previous file or the new complete one.
"""

import contextlib
import errno
import gzip
import os
import shutil
import sys
import tempfile

__all__ = ["captured_stderr", "atomic_path", "write_bytes", "write_text", "check_writable_dir", "check_free_space", "gzip_size"]

MIN_FREE_BYTES = 200 * 2**20  # models, epoch checkpoints and reports of a default run need far less


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path``; renames it to ``path`` on success.

    The temporary name keeps ``path``'s extension, so writers that dispatch on it
    (``model.save("x.keras")``) behave the same. On error the temporary file is removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    suffix = base[base.index("."):] if "." in base else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    os.remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device while writing {path!r}; nothing was written there "
                "(a previous version, if any, is unchanged). Free some space, then continue the "
                "run with --resume RUN_DIR",
            ) from None
        raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, data):
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def check_writable_dir(path, argument="output"):
    """Creates ``path`` if needed and checks a file can be written there.

    Raises:
        ValueError: naming the folder and the reason, before any work starts.
    """
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        raise ValueError(
            f"Cannot write to the {argument} folder {path!r}: {error.strerror or error}. "
            "Choose a writable folder."
        ) from None
    return path


def check_free_space(path, argument="output", min_bytes=None):
    """Raises ValueError before any training when the folder's disk has less than
    ``min_bytes`` free (default 200 MiB, ``KDTF_MIN_FREE_MB`` overrides)."""
    if min_bytes is None:
        min_bytes = int(float(os.environ.get("KDTF_MIN_FREE_MB", MIN_FREE_BYTES / 2**20)) * 2**20)
    free = shutil.disk_usage(path).free
    if free < min_bytes:
        raise ValueError(
            f"Only {free / 2**20:.0f} MiB free on the disk of the {argument} folder {path!r}; "
            f"a run needs at least {min_bytes / 2**20:.0f} MiB for its models, checkpoints and "
            "reports. Free some space or choose a folder on another disk."
        )
    return free


def gzip_size(path_or_bytes):
    """Size in bytes after gzip -9: what zeros and shared values save in a download."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    return len(gzip.compress(data, compresslevel=9, mtime=0))


@contextlib.contextmanager
def captured_stderr():
    """Sends what C++ code writes to file descriptor 2 (TensorFlow's start-up lines, the
    converter's MLIR dumps) to a temporary file instead of the terminal; yields a dict
    whose ``"text"`` holds it afterwards."""
    captured = {"text": ""}
    with tempfile.TemporaryFile(mode="w+") as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            captured["text"] = log.read()
