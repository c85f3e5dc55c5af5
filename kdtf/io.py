"""Atomic file writes: a temporary name in the same folder, then ``os.replace``.

A run killed at any moment leaves either the previous file or the new complete one.
"""

import contextlib
import gzip
import os
import shutil
import tempfile

__all__ = ["atomic_path", "write_bytes", "write_text", "check_writable_dir", "gzip_size"]


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


def gzip_size(path_or_bytes):
    """Size in bytes after gzip -9: what zeros and shared values save in a download."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    return len(gzip.compress(data, compresslevel=9, mtime=0))
