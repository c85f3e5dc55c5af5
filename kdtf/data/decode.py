"""Decoding and resizing inside ``tf.data``: encoded image -> uint8 ``(size, size, c)``.

Images are resized without keeping the aspect ratio (the Keras default), bilinear with
antialiasing, then rounded back to uint8: they travel as uint8 (a quarter of float32)
until the last step of a pipeline maps them to ``[0, 1]``.
"""

import os

from kdtf._keras import tf

__all__ = ["decode_file", "looks_like_image", "to_uint8"]


def _resize(image, image_size):
    """Bilinear resize to ``image_size`` x ``image_size``, rounded to uint8.
    Antialiasing (a much slower kernel) only where the image shrinks by more than 2x;
    below that, plain bilinear (the Keras ``image_dataset_from_directory`` default)
    touches every source pixel."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = tf.reduce_max(shape) / float(image_size)

    def resized(antialias):
        out = tf.image.resize(image, (image_size, image_size), antialias=antialias)
        return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)

    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], image_size))
    return tf.case([(same, lambda: tf.cast(image, tf.uint8)), (factor > 2.0, lambda: resized(True))], default=lambda: resized(False))


def to_uint8(image, image_size=None, channels=None):
    """``image`` (uint8, ``(h, w, c)``) with ``channels`` channels, resized to
    ``image_size`` x ``image_size`` where given and different."""
    if channels and image.shape[-1] is not None and image.shape[-1] != channels:
        image = tf.image.grayscale_to_rgb(image) if channels == 3 else tf.image.rgb_to_grayscale(image)
    if not image_size:
        return image
    return tf.ensure_shape(_resize(image, image_size), (image_size, image_size, channels or image.shape[-1]))


def _jpeg_at_least(raw, image_size, channels):
    """Decodes a JPEG at the smallest DCT scale (1/1, 1/2, 1/4, 1/8) that keeps both sides
    at least ``image_size``: a 1,000 px photo for 96 px input decodes at 1/8, several
    times faster, and the final resize shrinks by less than 2x."""
    shape = tf.image.extract_jpeg_shape(raw)
    short = tf.minimum(shape[0], shape[1])
    branches = [lambda r=r: tf.io.decode_jpeg(raw, channels=channels, ratio=r) for r in (1, 2, 4, 8)]
    index = tf.add_n([tf.cast(short >= image_size * r, tf.int32) for r in (2, 4, 8)])
    return tf.switch_case(index, branches)


def decode_file(path, image_size, channels):
    """Reads and decodes one file (JPEG, PNG, BMP, GIF's first frame) in a graph; an
    unreadable file raises ``InvalidArgumentError`` (the pipelines drop it with
    ``ignore_errors``)."""
    raw = tf.io.read_file(path)
    image = tf.cond(
        tf.io.is_jpeg(raw),
        lambda: _jpeg_at_least(raw, image_size, channels),
        lambda: tf.io.decode_image(raw, channels=channels, expand_animations=False),
    )
    image.set_shape((None, None, channels))
    return to_uint8(image, image_size, channels)


def _complete(head, tail, size):
    """Whether a file with these first and last bytes ends as its format says."""
    if head.startswith(b"\xff\xd8\xff"):
        return b"\xff\xd9" in tail  # the end-of-image marker (trailing padding allowed)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"IEND" in tail
    if head.startswith((b"GIF87a", b"GIF89a")):
        return b";" in tail[-16:]
    if head.startswith(b"BM"):
        return len(head) >= 6 and size >= int.from_bytes(head[2:6], "little")
    return False


def looks_like_image(path):
    """A cheap check of a file's first and last bytes (format signature, and the end
    marker that an interrupted download lacks); used where no decoding pass precedes
    the split (no image cache)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError:
        return False
    return _complete(head, tail, size)
