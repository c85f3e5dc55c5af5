"""Replayable augmented views: a view is ``(run seed, example, view index)`` plus a policy.

Every random choice of a view (flip flag, crop box, colour jitter factors, the mixup or
cutmix partner, its ratio and box) is a function of those three numbers alone, so the
same view is rebuilt bit-identically in any batch, epoch, stage or later run. This is
what lets a teacher's outputs on a view be stored once and replayed to the student
(FKD, Shen & Xing, ECCV 2022; "consistent" views, Beyer et al., CVPR 2022); see
:mod:`kdtf.data.view_store`.

The random numbers come from a counter-based hash (MurmurHash3's 32-bit finaliser)
of ``(seed, example, view, draw)``, vectorised over the batch: ``tf.random.stateless_*``
ops take one seed per call, so seeding them per example runs a loop over the batch
(16 ms per batch of 64 measured here, about the cost of a whole student step). The
image operations are batch-wise and per example (``crop_and_resize`` with one box per
image, per-image factors), so a view does not depend on the batch it is built in.

Policy names keep their meaning in :mod:`kdtf.data.augment`:

* ``flip``: horizontal flip with probability 1/2.
* ``crop``: crop 50-100 % of the area, aspect 3/4-4/3, resized back (bilinear).
* ``jitter``: brightness +-0.3, contrast x(0.7-1.3), saturation factor 0.3-0.7 (x0.43-2.33)
  and hue +-0.1 on RGB; brightness and contrast only on grayscale.
* ``mixup``: ratio ~ Beta(0.2, 0.2) with a partner example drawn from the split;
  ``cutmix``: a box of 1 - ratio of the area (ratio ~ Beta(1, 1)) pasted from a partner.
  The partner's pixels are its own view with the same view index; labels become mixed
  one-hot rows (an unlabeled example, ``-1``, is an all-zero row).

``randaugment`` draws its operations inside keras-cv layers that cannot be seeded per
example: :func:`check_replayable` refuses it.
"""

import numpy as np

from kdtf._keras import tf
from kdtf.catalog import parse_augment
from kdtf.view_options import REPLAYABLE, check_views_option

__all__ = ["REPLAYABLE", "ViewPolicy", "check_replayable", "example_reader", "uniforms", "view_batches"]

MIXUP_ALPHA, CUTMIX_ALPHA = 0.2, 1.0
_DRAWS = 16  # flip 0; crop 1-4; jitter 5-8; mixup 9-10; cutmix 11-15
_ORDER_SALT, _MIXUP_SALT, _CUTMIX_SALT = 0x5BD1E995, 0x27D4EB2F, 0x165667B1


def check_replayable(names):
    """The parsed policy; raises ValueError for a name whose randomness cannot be replayed."""
    names = parse_augment(names)
    refused = [n for n in names if n not in REPLAYABLE]
    if refused:  # the same message as --cache-teacher views:K with --augment
        check_views_option("views:1", names)
    return names


def _fmix(h):
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 that mixes every bit."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16)) * tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13)) * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _words(value):
    """The low and high 32-bit words of an int64 tensor, as uint32."""
    value = tf.cast(value, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(value, 0xFFFFFFFF), tf.uint32)
    return low, tf.cast(tf.bitwise.right_shift(value, 32), tf.uint32)


def uniforms(seed, positions, views, count=_DRAWS):
    """``(batch, count)`` float32 numbers in ``[0, 1)``, each a function of ``(seed,
    position, view, draw)`` only (24 random bits each)."""
    positions = tf.cast(tf.reshape(positions, [-1]), tf.int64)
    views = tf.broadcast_to(tf.cast(views, tf.int64), tf.shape(positions))
    h = _fmix(tf.fill(tf.shape(positions), tf.constant((int(seed) ^ 0x9E3779B9) & 0xFFFFFFFF, tf.uint32)))
    for k, word in enumerate((*_words(positions), *_words(views))):
        h = _fmix(tf.bitwise.bitwise_xor(h + tf.constant((k + 1) * 0x632BE5AB & 0xFFFFFFFF, tf.uint32), word))
    draws = _fmix(tf.cast(tf.range(1, count + 1, dtype=tf.int64) * 0x9E3779B1 % 2**32, tf.uint32))[None, :]
    bits = _fmix(tf.bitwise.bitwise_xor(h[:, None], draws))
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / 2**24)


def _beta_quantile(alpha, u, steps=30):
    """Beta(alpha, alpha) at quantile ``u`` by bisection of the regularised incomplete
    beta function: a ratio drawn from a uniform, deterministically."""
    low, high = tf.zeros_like(u), tf.ones_like(u)
    for _ in range(steps):
        mid = (low + high) / 2
        below = tf.math.betainc(alpha, alpha, mid) < u
        low, high = tf.where(below, mid, low), tf.where(below, high, mid)
    return (low + high) / 2


class ViewPolicy:
    """Builds view ``v`` of example ``p`` of a split from ``(seed, p, v)``.

    Args:
        names: replayable augmentation names (see the module doc), list or string.
        input_shape: ``(height, width, channels)``.
        num_classes: classes, for mixed one-hot labels.
        seed: the run seed.
    """

    def __init__(self, names, input_shape, num_classes, seed=0):
        self.names = check_replayable(names)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes, self.seed = int(num_classes), int(seed)

    @property
    def mixes(self):
        """True when views mix two examples (mixup/cutmix): labels become one-hot rows."""
        return any(n in ("mixup", "cutmix") for n in self.names)

    def key(self):
        """What defines the views (for store keys): names, their constants, shape, seed."""
        return {"names": self.names, "seed": self.seed, "input_shape": list(self.input_shape), "version": 1,
                "mixup_alpha": MIXUP_ALPHA, "cutmix_alpha": CUTMIX_ALPHA}

    def images(self, x, positions, views):
        """Image-level operations (flip, crop, jitter) of ``x`` (float32 in ``[0, 1]``)."""
        u = uniforms(self.seed, positions, views)
        height, width, _ = self.input_shape
        if "flip" in self.names:
            x = tf.where((u[:, 0] < 0.5)[:, None, None, None], tf.reverse(x, [2]), x)
        if "crop" in self.names:
            area, aspect = 0.5 + 0.5 * u[:, 1], 3 / 4 + (4 / 3 - 3 / 4) * u[:, 2]
            h, w = tf.minimum(tf.sqrt(area / aspect), 1.0), tf.minimum(tf.sqrt(area * aspect), 1.0)
            y0, x0 = u[:, 3] * (1.0 - h), u[:, 4] * (1.0 - w)
            boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
            x = tf.image.crop_and_resize(x, boxes, tf.range(tf.shape(x)[0]), (height, width))
        if "jitter" in self.names:
            x = self._jitter(x, u)
        return tf.clip_by_value(x, 0.0, 1.0)

    def _jitter(self, x, u):
        x = x + (2 * u[:, 5] - 1)[:, None, None, None] * 0.3
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = tf.clip_by_value((x - mean) * (1 + (2 * u[:, 6] - 1) * 0.3)[:, None, None, None] + mean, 0.0, 1.0)
        if self.input_shape[-1] != 3:
            return x
        saturation = 0.3 + 0.4 * u[:, 7]
        hsv = tf.image.rgb_to_hsv(x)
        hue = tf.math.floormod(hsv[..., 0] + ((2 * u[:, 8] - 1) * 0.1)[:, None, None], 1.0)
        sat = tf.clip_by_value(hsv[..., 1] * (saturation / (1 - saturation))[:, None, None], 0.0, 1.0)
        return tf.image.hsv_to_rgb(tf.stack([hue, sat, hsv[..., 2]], axis=-1))

    def partners(self, positions, views, size):
        """Partner positions for mixup and cutmix: ``{name: (batch,) int64}``, never the
        example itself (a split of one example mixes with itself)."""
        u = uniforms(self.seed, positions, views)
        positions = tf.cast(positions, tf.int64)
        out = {}
        for name, slot in (("mixup", 9), ("cutmix", 11)):
            if name in self.names:
                q = tf.minimum(tf.cast(u[:, slot] * size, tf.int64), size - 1)
                out[name] = tf.where(tf.equal(q, positions), (q + 1) % size, q)
        return out

    def __call__(self, x, y, positions, views, read=None, size=None):
        """View ``views[i]`` of the examples ``positions[i]``, whose images are ``x`` and
        labels ``y`` (sparse; ``-1`` unlabeled). Mixing needs ``read(partners) -> (x,
        y)`` of the same split and its ``size``. Returns ``(x, y)``; ``y`` is a one-hot
        mixture when the policy mixes."""
        x = self.images(x, positions, views)
        if not self.mixes:
            return x, y
        if read is None:
            raise ValueError("Expected read= and size= to fetch mixup/cutmix partners. Received: read=None")
        y = tf.one_hot(tf.cast(y, tf.int32), self.num_classes)  # -1 -> all-zero row
        u = uniforms(self.seed, positions, views)
        for name, partner in self.partners(positions, views, size).items():
            x_q, y_q = read(partner)
            x_q = self.images(x_q, partner, views)
            y_q = tf.one_hot(tf.cast(y_q, tf.int32), self.num_classes)
            if name == "mixup":
                ratio = _beta_quantile(MIXUP_ALPHA, u[:, 10])
                mask = tf.ones_like(x) * ratio[:, None, None, None]
            else:
                mask, ratio = self._cut(u, tf.shape(x))
            x = mask * x + (1 - mask) * x_q
            y = ratio[:, None] * y + (1 - ratio[:, None]) * y_q
        return x, y

    def _cut(self, u, shape):
        """CutMix's mask (1 keeps the example, 0 takes the partner) and its kept share."""
        height, width = self.input_shape[0], self.input_shape[1]
        ratio = u[:, 12] if CUTMIX_ALPHA == 1.0 else _beta_quantile(CUTMIX_ALPHA, u[:, 12])
        side = tf.sqrt(1.0 - ratio)
        cy, cx = u[:, 13] * height, u[:, 14] * width
        y0, y1 = tf.clip_by_value(cy - side * height / 2, 0, height), tf.clip_by_value(cy + side * height / 2, 0, height)
        x0, x1 = tf.clip_by_value(cx - side * width / 2, 0, width), tf.clip_by_value(cx + side * width / 2, 0, width)
        y0, y1, x0, x1 = (tf.round(v) for v in (y0, y1, x0, x1))
        rows, cols = tf.range(height, dtype=tf.float32)[None, :, None], tf.range(width, dtype=tf.float32)[None, None, :]
        inside = ((rows >= y0[:, None, None]) & (rows < y1[:, None, None]) & (cols >= x0[:, None, None]) & (cols < x1[:, None, None]))
        mask = 1.0 - tf.cast(inside, tf.float32)[..., None] * tf.ones([1, 1, 1, shape[3]])
        kept = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
        return mask, kept


def _epoch_order(seed, positions, epoch, views, shuffle=True):
    """This epoch's order of ``positions`` and the view each example shows: view
    ``hash(seed, example, epoch) mod views`` (or ``epoch`` itself when ``views`` is
    ``None``: a fresh view every epoch)."""
    u = uniforms(int(seed) ^ _ORDER_SALT, positions, epoch, 2)
    if views is None:
        chosen = tf.fill(tf.shape(positions), tf.cast(epoch, tf.int64))
    else:
        chosen = tf.minimum(tf.cast(u[:, 1] * views, tf.int64), views - 1)
    if not shuffle:
        return positions, chosen
    order = tf.argsort(u[:, 0], stable=True)
    return tf.gather(positions, order), tf.gather(chosen, order)


def example_reader(data, split):
    """``positions -> (x float32 in [0, 1], y int32)`` of ``split``, in a ``tf`` graph."""
    table = data.table(split)
    if not table.random_access:
        raise ValueError(
            f"Replayable views read examples by position, but the {split} split of {data.name} is read from "
            "encoded files on every pass. Load the data with cache_dir= (--cache-dir) so its images are cached."
        )
    labels = data.labels(split)

    def read(positions):
        x = table.read(positions)
        x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
        return x, labels[positions]

    def read_tf(positions):
        x, y = tf.numpy_function(read, [positions], (tf.float32, tf.int32), stateful=False)
        x.set_shape((None,) + tuple(data.input_shape))
        y.set_shape((None,))
        return x, y

    return read_tf


def view_batches(data, split, batch_size, policy, *, views=None, seed=0, positions=None, shuffle=True, finish=None):
    """Prefetched batches ``(x, y, position, view)`` of replayable views, forever (one shuffled pass
    over ``positions`` per epoch; pass ``steps_per_epoch`` to ``fit``).

    Args:
        data: a :class:`kdtf.data.Splits` whose ``split`` is in memory or in the image cache.
        split: the split.
        batch_size: examples per batch (batches run across epoch boundaries).
        policy: a :class:`ViewPolicy` (its seed defines the views).
        views: each epoch shows one of views ``0..views-1`` per example, drawn with
            ``seed`` and the epoch; ``None``: view ``epoch`` (a new view every epoch).
        seed: seed of the order and of the view drawn.
        positions: the examples (default: the whole split).
        shuffle: ``False`` keeps ``positions`` in order (views still drawn per epoch).
        finish: ``(x, y, position, view) -> element``, applied in the same parallel map
            (the view store attaches its stored outputs there: one map stage, not two).
    """
    size = data.size(split)
    positions = np.arange(size, dtype=np.int64) if positions is None else np.asarray(positions, np.int64)
    if not len(positions):
        raise ValueError(f"Expected at least one example in the {split} split. Received: none")
    read = example_reader(data, split)
    constant = tf.constant(positions)

    def epoch(e):
        return tf.data.Dataset.from_tensor_slices(_epoch_order(seed, constant, e, views, shuffle))

    def build(p, v):
        x, y = read(p)
        x, y = policy(x, y, p, v, read=read, size=size)
        return (x, y, p, v) if finish is None else finish(x, y, p, v)

    ds = tf.data.Dataset.counter().flat_map(epoch).batch(batch_size)
    return ds.map(build, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

