"""Augmentation with keras-cv, inside ``tf.data`` only (never inside an exported model).

This is the only kdtf module that imports keras-cv (frozen upstream; replace it here
alone if it stops working). Images are expected in ``[0, 1]``.

Names for ``--augment`` (comma-separated, applied in this order):

* ``flip``: random horizontal flip.
* ``crop``: ``RandomCropAndResize``, 50-100 % of the area, aspect 3/4-4/3, back to the
  input size.
* ``randaugment``: ``RandAugment``, 2 operations per image, magnitude 0.3.
* ``jitter``: ``RandomColorJitter`` (brightness, contrast, saturation, hue).
* ``mixup`` / ``cutmix``: mix pairs of images and their one-hot labels (Zhang et al.,
  2018; Yun et al., 2019). Labels become one-hot rows; an unlabeled example (label -1)
  is an all-zero row, so a labelled image mixed with an unlabeled one keeps only its own
  share of the label and the Distiller's cross-entropy counts that share.

Colour operations need three channels: on grayscale input they run on the image
repeated to RGB and the result is turned back to one channel.

The teacher sees exactly the augmented batch the student sees, because the Distiller
computes the teacher's outputs inside ``train_step`` on the batch ``tf.data`` yields.
"""

from kdtf._keras import tf
from kdtf.catalog import AUGMENTATIONS, parse_augment

__all__ = ["AUGMENTATIONS", "Augmenter", "ByolViews", "augment_dataset", "byol_views", "mixes_labels", "parse_augment", "quiet_map"]

_MIXING = ("mixup", "cutmix")


def mixes_labels(names):
    """True when the augmentations turn labels into mixed one-hot rows."""
    return any(n in _MIXING for n in parse_augment(names))


class _OnRGB:
    """Runs a colour layer on grayscale images by repeating them to three channels."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, images, training=True):
        rgb = tf.image.grayscale_to_rgb(images)
        return tf.image.rgb_to_grayscale(self.layer(rgb, training=training))


class Augmenter:
    """Maps a batch ``(x, y)`` to an augmented batch.

    Args:
        names: augmentation names or a comma-separated string (see the module doc).
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: classes, for the one-hot labels of MixUp/CutMix.
        seed: seed of the random layers.
    """

    def __init__(self, names, input_shape, num_classes, seed=0):
        import keras_cv

        self.names = parse_augment(names)
        height, width, channels = (int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        layers = keras_cv.layers
        image_layers = []
        for name in self.names:
            if name == "flip":
                image_layers.append(layers.RandomFlip("horizontal", seed=seed))
            elif name == "crop":
                image_layers.append(layers.RandomCropAndResize(
                    (height, width), crop_area_factor=(0.5, 1.0), aspect_ratio_factor=(3 / 4, 4 / 3), seed=seed))
            elif name == "randaugment":
                layer = layers.RandAugment(value_range=(0, 1), augmentations_per_image=2, magnitude=0.3, seed=seed)
                image_layers.append(_OnRGB(layer) if channels == 1 else layer)
            elif name == "jitter":
                layer = layers.RandomColorJitter(
                    value_range=(0, 1), brightness_factor=0.3, contrast_factor=0.3,
                    saturation_factor=(0.3, 0.7), hue_factor=0.1, seed=seed)
                image_layers.append(_OnRGB(layer) if channels == 1 else layer)
        self.image_layers = image_layers
        self.mix_layers = [
            layers.MixUp(seed=seed) if n == "mixup" else layers.CutMix(seed=seed) for n in self.names if n in _MIXING
        ]

    def __call__(self, x, y=None):
        for layer in self.image_layers:
            x = layer(x, training=True)
        x = tf.clip_by_value(tf.cast(x, tf.float32), 0.0, 1.0)
        if self.mix_layers:
            if y is None:
                raise ValueError("MixUp/CutMix mix labels; the batch has none. Drop mixup/cutmix from --augment.")
            if y.shape.rank == 1:  # sparse labels; -1 (unlabeled) becomes an all-zero row
                y = tf.one_hot(tf.cast(y, tf.int32), self.num_classes)
            for layer in self.mix_layers:
                out = layer({"images": x, "labels": tf.cast(y, tf.float32)}, training=True)
                x, y = out["images"], out["labels"]
        return x if y is None else (x, y)


def quiet_map(ds, fn):
    """``ds.map(fn)`` in parallel, without keras-cv's "Using a while_loop for converting
    ..." warning for every op it traces."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    finally:
        logger.setLevel(level)


def augment_dataset(ds, names, input_shape, num_classes, seed=0):
    """Applies :class:`Augmenter` to a batched ``(x, y)`` dataset (after ``batch``)."""
    names = parse_augment(names)
    if not names:
        return ds
    return quiet_map(ds, Augmenter(names, input_shape, num_classes, seed))


class ByolViews:
    """The two asymmetric augmentation pipelines of BYOL (Grill et al., 2020, table 6).

    ``jitter``, ``blur`` and ``solarize`` switch those operations off (ablations);
    ``blur_sigma`` is the range of the Gaussian blur's standard deviation.

    Both views: random crop-and-resize (``crop_area`` of the image, aspect 3/4-4/3),
    horizontal flip (``flip``), colour jitter with probability 0.8 (brightness 0.4,
    contrast 0.4, saturation 0.2, hue 0.1) and grayscale with probability 0.2.
    View 1: Gaussian blur always, no solarisation. View 2: blur with probability 0.1,
    solarisation with probability 0.2. Adapted to grayscale input: jitter runs on the
    image repeated to RGB (brightness and contrast are what survive), grayscale is
    skipped (already grey); the blur kernel is about a tenth of the image side.
    """

    def __init__(self, input_shape, seed=0, crop_area=(0.3, 1.0), flip=True, jitter=True, blur=True, solarize=True, blur_sigma=(0.1, 2.0)):
        import keras_cv

        layers = keras_cv.layers
        height, width, channels = (int(d) for d in input_shape)
        self.grey = channels == 1
        common = [layers.RandomCropAndResize((height, width), crop_area_factor=crop_area, aspect_ratio_factor=(3 / 4, 4 / 3), seed=seed)]
        if flip:
            common.append(layers.RandomFlip("horizontal", seed=seed))
        if jitter:
            colour = layers.RandomColorJitter(
                value_range=(0, 1), brightness_factor=0.4, contrast_factor=0.4,
                saturation_factor=(0.4, 0.6), hue_factor=0.1, seed=seed)
            common.append(_Maybe(_OnRGB(colour) if self.grey else colour, 0.8, seed))
        if not self.grey:
            common.append(_Maybe(layers.Grayscale(output_channels=3), 0.2, seed))
        kernel = max(3, (min(height, width) // 10) | 1)
        blurring = layers.RandomGaussianBlur(kernel_size=kernel, factor=blur_sigma, seed=seed)
        solarization = layers.Solarization(value_range=(0, 1), threshold_factor=(0.5, 0.5))
        self.pipelines = (
            common + ([_Maybe(blurring, 1.0, seed)] if blur else []),
            common + ([_Maybe(blurring, 0.1, seed)] if blur else []) + ([_Maybe(solarization, 0.2, seed)] if solarize else []),
        )

    def view(self, images, which):
        """Augmented copy of a batch of ``[0, 1]`` images for view 0 or 1."""
        for layer in self.pipelines[which]:
            images = layer(images, training=True)
        return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)

    def __call__(self, images):
        return self.view(images, 0), self.view(images, 1)


class _Maybe:
    """Applies ``layer`` to each image of a batch with probability ``rate``."""

    def __init__(self, layer, rate, seed):
        self.layer, self.rate, self.seed = layer, float(rate), seed

    def __call__(self, images, training=True):
        if self.rate >= 1.0:
            return self.layer(images, training=training)
        changed = tf.cast(self.layer(images, training=training), images.dtype)
        keep = tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < self.rate
        return tf.where(keep, changed, images)


def byol_views(x, batch_size, seed=0, shuffle=True, split="train", **options):
    """A ``tf.data`` pipeline of BYOL view pairs ``(view_1, view_2)``, full batches only
    (BatchNorm needs them), prefetched. ``options`` go to :class:`ByolViews`.

    ``x``: images in ``[0, 1]`` as a numpy array, or a :class:`kdtf.data.Splits`, whose
    ``split`` is streamed (labels, -1 included, are dropped).
    """
    if hasattr(x, "dataset"):
        views = ByolViews(x.input_shape, seed=seed, **options)
        return x.dataset(split, batch_size, shuffle=shuffle, seed=seed, augment=lambda images, _: views(images), drop_remainder=True)
    views = ByolViews(x.shape[1:], seed=seed, **options)
    ds = tf.data.Dataset.from_tensor_slices(x)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return quiet_map(ds.batch(batch_size, drop_remainder=True), views).prefetch(tf.data.AUTOTUNE)
