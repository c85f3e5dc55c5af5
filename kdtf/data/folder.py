"""Images from a folder: ``folder:PATH`` with one subfolder per class.

Two layouts are read (the Keras ``image_dataset_from_directory`` / Stanford Dogs ones)::

    PATH/<class>/*.jpg                    one pool, split by kdtf with a seed
    PATH/<split>/<class>/*.jpg            split folders: train, and val and/or test

Images are decoded with ``tf.io.decode_image`` (JPEG, PNG, BMP, GIF), converted to the
requested number of channels and resized to ``image_size`` x ``image_size`` without
keeping the aspect ratio (the Keras default). Unreadable files are skipped and counted
(``Splits.meta["skipped"]``); a class left without any readable image is refused.
"""

import os
import warnings

import numpy as np

from kdtf._keras import tf

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_NAMES", "read_class_folders", "read_images", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
MAX_BYTES = 6 * 2**30  # the decoded float32 arrays of one data set


def _subfolders(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def list_images(path, recursive=False):
    """Image files under ``path`` (sorted), by extension."""
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return found


def _check_memory(count, image_size, channels, path):
    size = count * image_size * image_size * channels * 4
    if size > MAX_BYTES:
        raise ValueError(
            f"{count} images at {image_size}x{image_size}x{channels} from {path} need "
            f"{size / 2**30:.1f} GiB as float32; kdtf keeps a data set in memory (limit "
            f"{MAX_BYTES / 2**30:.0f} GiB). Use a smaller --image-size or a subset of the folder."
        )


def read_images(files, image_size, channels):
    """Decodes and resizes ``files``. Returns ``(images uint8-range float32, kept
    indices, skipped paths)``."""
    images, kept, skipped = [], [], []
    for i, name in enumerate(files):
        try:
            raw = tf.io.read_file(name)
            image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError):
            skipped.append(name)
            continue
        image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), antialias=True)
        images.append(np.clip(image.numpy(), 0, 255))
        kept.append(i)
    stacked = np.stack(images).astype(np.float32) if images else np.zeros((0, image_size, image_size, channels), np.float32)
    return stacked, kept, skipped


def _read_classes(path, class_names, image_size, channels):
    files, labels = [], []
    for index, name in enumerate(class_names):
        found = list_images(os.path.join(path, name), recursive=True)
        if not found:
            raise ValueError(
                f"Class folder {os.path.join(path, name)!r} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images."
            )
        files += found
        labels += [index] * len(found)
    _check_memory(len(files), image_size, channels, path)
    x, kept, skipped = read_images(files, image_size, channels)
    y = np.asarray(labels, np.int32)[kept]
    empty = [class_names[c] for c in range(len(class_names)) if not np.any(y == c)]
    if empty:
        raise ValueError(
            f"No readable image in class folder(s) {', '.join(empty)} under {path!r} "
            f"({len(skipped)} unreadable file(s), e.g. {skipped[0]!r})."
        )
    return x, y, skipped


def read_class_folders(path, image_size, channels=3):
    """Reads ``path`` in either layout.

    Returns:
        ``(parts, class_names, skipped)`` where ``parts`` maps ``"all"`` or split names
        (``"train"``, ``"val"``, ``"test"``) to ``(x, y)``, ``x`` float32 in ``[0, 255]``.
    """
    if not os.path.isdir(path):
        raise ValueError(f"Image folder not found: {path!r} (from the data set spec folder:{path}).")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"Expected an image size of at least 8 pixels. Received: image_size={image_size!r}")
    top = _subfolders(path)
    if not top:
        loose = list_images(path)
        hint = f" It holds {len(loose)} loose image(s): put them in one subfolder per class." if loose else ""
        raise ValueError(f"Image folder {path!r} has no class subfolders (expected PATH/<class>/*.jpg).{hint}")
    split_layout = all(name.lower() in SPLIT_NAMES for name in top)
    roots = {SPLIT_NAMES[n.lower()]: os.path.join(path, n) for n in top} if split_layout else {"all": path}
    if split_layout and "train" not in roots:
        raise ValueError(f"Split folders under {path!r} ({', '.join(top)}) lack a 'train' folder.")
    class_names = _subfolders(roots.get("train", path))
    if len(class_names) < 2:
        raise ValueError(
            f"Image folder {roots.get('train', path)!r} has {len(class_names)} class subfolder(s) "
            f"({', '.join(class_names) or 'none'}); classification needs at least 2."
        )
    parts, skipped = {}, []
    for split, root in roots.items():
        names = _subfolders(root)
        if split_layout and split != "train" and set(names) != set(class_names):
            raise ValueError(
                f"Split folder {root!r} has classes {names}, but train has {class_names}; "
                "every split needs the same class subfolders."
            )
        x, y, bad = _read_classes(root, class_names, image_size, channels)
        parts[split] = (x, y)
        skipped += bad
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable image(s) under {path!r}, e.g. {skipped[0]!r}.", stacklevel=2)
    return parts, class_names, skipped
