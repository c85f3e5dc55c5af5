"""``cluttered``: the bundled MNIST digits translated onto a cluttered 64 x 64 canvas.

After the "cluttered translated MNIST" of Mnih, Heess, Graves & Kavukcuoglu, "Recurrent
Models of Visual Attention", NIPS 2014 (their 60 x 60 canvas, 4 fragments of 8 x 8): each of
the 5,000 digits of ``mnist5k`` is pasted at a uniformly random position of a 64 x 64
canvas, and ``fragments`` patches of ``fragment_size`` x ``fragment_size`` pixels cut
from *other* digits of the *same split* are pasted at random positions (pixel-wise
maximum, so strokes overlap as ink does). The label is the whole digit's.

Why it exists: at full labels the plain digits are too easy (a large teacher and the
small student end within about a point of each other), so distillation gains drown in
noise. Finding a small digit among digit-like strokes needs capacity a small student
lacks, which opens a measurable teacher - student gap. What it is not: natural images
(no texture, colour or scale change), nor a benchmark with published numbers to compare
against (the canvas, fragment count and source digits differ from the paper's).

Leak-free by construction: the digits are split first (the very train/val/test split
``mnist5k`` gets for the same seed), then each split is composed from its own digits
only, with a random stream derived from ``(seed, split)``. No pixel of a test digit
reaches a training canvas, and the same seed always gives the same images.
"""

import numpy as np

__all__ = ["CANVAS", "FRAGMENTS", "FRAGMENT_SIZE", "compose", "compose_splits"]

CANVAS = 64
FRAGMENTS = 4
FRAGMENT_SIZE = 8
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


def compose(digits, seed, canvas=CANVAS, fragments=FRAGMENTS, fragment_size=FRAGMENT_SIZE):
    """Cluttered canvases from ``digits`` alone.

    Args:
        digits: ``(n, h, w, c)`` images in ``[0, 1]`` (float) — one split's digits.
        seed: seed of the positions and of which digits lend the fragments.
        canvas: side of the square canvas, at least the digit's side.
        fragments: clutter patches per canvas.
        fragment_size: side of each patch; cut from the central part of another digit
            (where its strokes are), never from the digit itself.

    Returns:
        ``(n, canvas, canvas, c)`` float32 images in ``[0, 1]``.
    """
    digits = np.asarray(digits, np.float32)
    n, h, w, c = digits.shape
    if canvas < max(h, w) or not 0 < fragment_size <= min(h, w):
        raise ValueError(f"Expected canvas >= {max(h, w)} and 0 < fragment_size <= {min(h, w)}. "
                         f"Received: canvas={canvas}, fragment_size={fragment_size}")
    if n < 2 and fragments:
        raise ValueError(f"Expected at least 2 digits to cut clutter from other digits. Received: {n}")
    rng = np.random.default_rng(seed)
    margin = (h - fragment_size) // 4  # cut from the inner part of the source digit, where the ink is
    sources = rng.integers(0, n - 1, size=(n, fragments))
    sources += sources >= np.arange(n)[:, None]  # any digit of the split but the canvas's own
    cut_y = rng.integers(margin, h - fragment_size - margin + 1, size=(n, fragments))
    cut_x = rng.integers(margin, w - fragment_size - margin + 1, size=(n, fragments))
    paste = rng.integers(0, canvas - fragment_size + 1, size=(n, fragments, 2))
    place_y, place_x = rng.integers(0, canvas - h + 1, size=n), rng.integers(0, canvas - w + 1, size=n)
    out = np.zeros((n, canvas, canvas, c), np.float32)
    f = fragment_size
    for i in range(n):
        for k in range(fragments):
            patch = digits[sources[i, k], cut_y[i, k]:cut_y[i, k] + f, cut_x[i, k]:cut_x[i, k] + f]
            view = out[i, paste[i, k, 0]:paste[i, k, 0] + f, paste[i, k, 1]:paste[i, k, 1] + f]
            np.maximum(view, patch, out=view)
        view = out[i, place_y[i]:place_y[i] + h, place_x[i]:place_x[i] + w]
        np.maximum(view, digits[i], out=view)
    return out


def compose_splits(splits, seed, **options):
    """``{"train"/"val"/"test": (digits, labels)}`` -> the same with cluttered canvases,
    each split composed from its own digits with the stream ``(seed, split)``."""
    return {
        name: (compose(x, np.random.SeedSequence([int(seed), _SPLIT_STREAMS[name]]), **options), y)
        for name, (x, y) in splits.items()
    }
