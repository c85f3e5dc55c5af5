"""Images from a folder: ``folder:PATH`` with one subfolder per class, as a file list.

Two layouts are read (the Keras ``image_dataset_from_directory`` / Stanford Dogs ones)::

    PATH/<class>/*.jpg                    one pool, split by kdtf with a seed
    PATH/<split>/<class>/*.jpg            split folders: train, and val and/or test

Nothing here reads pixels: a folder becomes sorted file paths with int32 labels. The
files are decoded inside ``tf.data`` (:mod:`kdtf.data.decode`), once into the image
cache or on every epoch without one.
"""

import os

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_NAMES", "check_classes", "list_class_folders", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


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


def _list_classes(path, class_names):
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
    return files, np.asarray(labels, np.int32)


def _layout(path):
    """``{"all" or split name: root folder}`` and the class names."""
    if not os.path.isdir(path):
        raise ValueError(f"Image folder not found: {path!r} (from the data set spec folder:{path}).")
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
    return roots, class_names


def list_class_folders(path):
    """Lists ``path`` in either layout.

    Returns:
        ``(parts, class_names)``: ``parts`` maps ``"all"`` or split names (``"train"``,
        ``"val"``, ``"test"``) to ``(files, labels)``, files sorted by class then name.
    """
    roots, class_names = _layout(path)
    parts = {}
    for split, root in roots.items():
        names = _subfolders(root)
        if split != "all" and split != "train" and set(names) != set(class_names):
            raise ValueError(
                f"Split folder {root!r} has classes {names}, but train has {class_names}; "
                "every split needs the same class subfolders."
            )
        parts[split] = _list_classes(root, class_names)
    return parts, class_names


def check_classes(labels, class_names, skipped, path):
    """Refuses a part of a folder where a class kept no readable image."""
    empty = [class_names[c] for c in range(len(class_names)) if not np.any(labels == c)]
    if empty:
        raise ValueError(
            f"No readable image in class folder(s) {', '.join(empty)} under {path!r} "
            f"({len(skipped)} unreadable file(s), e.g. {skipped[0]!r})."
        )
