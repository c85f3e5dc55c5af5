"""TensorFlow Datasets: ``tfds:NAME[:CONFIG]``, read from an already prepared folder.

kdtf never downloads. Prepare a data set once on a machine with a network (``tfds
build NAME --data_dir DIR`` or ``tfds.builder(NAME, data_dir=DIR).download_and_prepare()``),
copy ``DIR`` over, and pass ``--data-dir DIR``.

Every read goes through ``builder.as_dataset`` with the image left encoded
(``tfds.decode.SkipDecoding``): the labels of a split are read without decoding a
pixel, the split is made on example indices, and images are decoded in a parallel
``tf.data`` map, once into the image cache or on every pass without one.
"""

import logging
import os

import numpy as np

from kdtf._keras import tf
from kdtf.data.decode import to_uint8

__all__ = ["TfdsSource", "open_tfds", "parse_tfds_name"]

SHUFFLE_BUFFER = 1024  # encoded examples held for shuffling a streamed split (no cache)


def parse_tfds_name(spec_rest):
    """``"cifar10"`` -> ``"cifar10"``; ``"imagenet2012_subset:1pct"`` ->
    ``"imagenet2012_subset/1pct"`` (TFDS's builder name with its config)."""
    name, _, config = spec_rest.partition(":")
    if not name or ":" in config:
        raise ValueError(f"Expected a data set spec tfds:NAME or tfds:NAME:CONFIG. Received: tfds:{spec_rest}")
    return f"{name}/{config}" if config else name


def _default_data_dir():
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


class TfdsSource:
    """A prepared TFDS image-classification builder: its splits, labels and images."""

    def __init__(self, spec_rest, data_dir=None):
        import tensorflow_datasets as tfds

        logging.getLogger("absl").setLevel(logging.ERROR)  # "has no dataset_info.json" noise
        self.tfds, self.spec_rest, self.data_dir = tfds, spec_rest, data_dir
        self.name = parse_tfds_name(spec_rest)
        try:
            self.builder = tfds.builder(self.name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise ValueError(f"Unknown TFDS data set {self.name!r} (spec tfds:{spec_rest}); see `tfds.list_builders()`.") from None
        features = self.builder.info.features
        if "image" not in features or "label" not in features:
            raise ValueError(
                f"TFDS data set {self.name!r} has features {sorted(features)}; kdtf reads image "
                "classification data sets with 'image' and 'label' features."
            )
        self.class_names = list(features["label"].names)
        self.splits = list(self.builder.info.splits) or ["train"]

    def _encoded(self, split):
        try:
            return self.builder.as_dataset(split=split, shuffle_files=False, decoders={"image": self.tfds.decode.SkipDecoding()})
        except AssertionError:
            raise ValueError(
                f"TFDS data set {self.name!r} is not prepared in {self.data_dir or _default_data_dir()!r}, and kdtf "
                f"does not download. On a machine with a network run `tfds build {self.name} --data_dir DIR` (or "
                f"tfds.builder({self.name!r}, data_dir=DIR).download_and_prepare()), copy DIR here, "
                "and pass --data-dir DIR."
            ) from None

    def identity(self, split):
        """What a split's pixels depend on, for cache keys and fingerprints."""
        return [self.name, str(self.builder.info.version), split, os.path.abspath(self.data_dir or _default_data_dir())]

    def labels(self, split):
        """int32 labels of ``split`` in example order; no image is decoded."""
        ds = self._encoded(split).map(lambda example: example["label"]).batch(4096)
        batches = list(ds.as_numpy_iterator())
        return np.concatenate(batches).astype(np.int32) if batches else np.zeros(0, np.int32)

    def row_shape(self, image_size, channels):
        """``(h, w, c)`` of the images after resizing; refused when the images have
        several sizes and no ``image_size`` is given."""
        shape = tuple(self.builder.info.features["image"].shape)
        c = channels or shape[-1]
        if image_size:
            return (image_size, image_size, c)
        if None in shape[:2]:
            raise ValueError(f"TFDS data set {self.name!r} has images of several sizes (shape {shape}); pass --image-size.")
        return (shape[0], shape[1], c)

    def _decode(self, encoded, image_size, channels):
        image = self.builder.info.features["image"].decode_example(encoded)
        return to_uint8(image, image_size, channels)

    def images(self, split, image_size, channels):
        """``(index, uint8 image)`` of every example of ``split``, in order (the image cache)."""
        ds = self._encoded(split).enumerate()
        return ds.map(lambda i, ex: (i, self._decode(ex["image"], image_size, channels)), num_parallel_calls=tf.data.AUTOTUNE)

    def stream(self, split, position_of, image_size, channels, shuffle=False, seed=0, repeat=False):
        """``(uint8 image, position)`` of the examples of ``split`` that belong to a
        kdtf split, read in order (``position_of[i]`` is the position of example ``i``,
        -1 when it belongs elsewhere); shuffled within a buffer of encoded examples."""
        table = tf.constant(np.asarray(position_of, np.int64))
        ds = self._encoded(split).enumerate().map(lambda i, ex: (tf.gather(table, i), ex["image"]))
        ds = ds.filter(lambda p, _: p >= 0)
        if shuffle:
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        return ds.map(lambda p, raw: (self._decode(raw, image_size, channels), p), num_parallel_calls=tf.data.AUTOTUNE)


def open_tfds(spec_rest, data_dir=None):
    """A :class:`TfdsSource` for ``tfds:NAME[:CONFIG]`` (TFDS is imported here, lazily)."""
    return TfdsSource(spec_rest, data_dir)
