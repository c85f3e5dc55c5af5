"""TensorFlow Datasets: ``tfds:NAME[:CONFIG]``, read from an already prepared folder.

kdtf never downloads: ``download=False`` always. Prepare a data set once on a machine
with a network (``tfds build NAME --data_dir DIR`` or
``tfds.builder(NAME, data_dir=DIR).download_and_prepare()``), copy ``DIR`` over, and
pass ``--data-dir DIR``.
"""

import logging
import os

import numpy as np

from kdtf._keras import tf

__all__ = ["read_tfds", "parse_tfds_name"]


def parse_tfds_name(spec_rest):
    """``"cifar10"`` -> ``"cifar10"``; ``"imagenet2012_subset:1pct"`` ->
    ``"imagenet2012_subset/1pct"`` (TFDS's builder name with its config)."""
    name, _, config = spec_rest.partition(":")
    if not name or ":" in config:
        raise ValueError(f"Expected a data set spec tfds:NAME or tfds:NAME:CONFIG. Received: tfds:{spec_rest}")
    return f"{name}/{config}" if config else name


def _default_data_dir():
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def read_tfds(spec_rest, data_dir=None, image_size=None, channels=None):
    """Reads every split of a prepared TFDS image-classification data set.

    Returns:
        ``(parts, class_names)``: ``parts`` maps TFDS split names to ``(x, y)`` with
        ``x`` float32 in ``[0, 255]``.
    """
    import tensorflow_datasets as tfds

    logging.getLogger("absl").setLevel(logging.ERROR)  # "has no dataset_info.json" noise
    name = parse_tfds_name(spec_rest)
    where = data_dir or _default_data_dir()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"Unknown TFDS data set {name!r} (spec tfds:{spec_rest}); see `tfds.list_builders()`.") from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(
            f"TFDS data set {name!r} has features {sorted(features)}; kdtf reads image "
            "classification data sets with 'image' and 'label' features."
        )
    class_names = list(features["label"].names)
    splits = list(builder.info.splits) or ["train"]
    try:
        loaded = tfds.load(name, split=splits, data_dir=data_dir, download=False, as_supervised=True)
    except AssertionError:
        raise ValueError(
            f"TFDS data set {name!r} is not prepared in {where!r}, and kdtf does not download. "
            f"On a machine with a network run `tfds build {name} --data_dir DIR` (or "
            f"tfds.builder({name!r}, data_dir=DIR).download_and_prepare()), copy DIR here, "
            "and pass --data-dir DIR."
        ) from None
    parts = {}
    for split, ds in zip(splits, loaded):
        xs, ys = [], []
        for image, label in ds.as_numpy_iterator():
            image = tf.convert_to_tensor(image)
            if channels and image.shape[-1] != channels:
                image = tf.image.grayscale_to_rgb(image) if channels == 3 else tf.image.rgb_to_grayscale(image)
            image = tf.cast(image, tf.float32)
            if image_size:
                image = tf.image.resize(image, (image_size, image_size), antialias=True)
            xs.append(image.numpy())
            ys.append(label)
        if not xs:
            continue
        shapes = {x.shape for x in xs}
        if len(shapes) > 1:
            raise ValueError(
                f"TFDS data set {name!r} has images of several sizes (e.g. {sorted(shapes)[:2]}); pass --image-size."
            )
        parts[split] = (np.clip(np.stack(xs), 0, 255).astype(np.float32), np.asarray(ys, np.int32))
    if not parts:
        raise ValueError(f"TFDS data set {name!r} in {where!r} has no examples.")
    return parts, class_names
