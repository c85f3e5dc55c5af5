"""Decoding and resizing inside ``tf.data``: encoded image -> uint8 ``(size, size, c)``.

Images are resized without keeping the aspect ratio (the Keras default), bilinear with
antialiasing, then rounded back to uint8: they travel as uint8 (a quarter of float32)
until the last step of a pipeline maps them to ``[0, 1]``.
"""

from kdtf._keras import tf

__all__ = ["decode_file", "to_uint8", "looks_like_image", "MAGIC_BYTES"]

MAGIC_BYTES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def to_uint8(image, image_size=None, channels=None):
    """``image`` (uint8, ``(h, w, c)``) with ``channels`` channels, resized to
    ``image_size`` x ``image_size`` where given and different."""
    if channels and image.shape[-1] is not None and image.shape[-1] != channels:
        image = tf.image.grayscale_to_rgb(image) if channels == 3 else tf.image.rgb_to_grayscale(image)
    if not image_size:
        return image
    shape = tf.shape(image)

    def resize():
        resized = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    out = tf.cond(same, lambda: tf.cast(image, tf.uint8), resize)
    return tf.ensure_shape(out, (image_size, image_size, channels or image.shape[-1]))


def decode_file(path, image_size, channels):
    """Reads and decodes one file (JPEG, PNG, BMP, GIF's first frame) in a graph; an
    unreadable file raises ``InvalidArgumentError`` (the pipelines drop it with
    ``ignore_errors``)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    return to_uint8(image, image_size, channels)


def looks_like_image(path):
    """Cheap check of a file's first bytes against the image formats decoded here; used
    where no decoding pass precedes the split (no image cache)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(MAGIC_BYTES)
