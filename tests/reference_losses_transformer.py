"""Independent float64 numpy references for kdtf.losses.transformer, with explicit loops.

Bilinear resizing follows TensorFlow's half-pixel convention (``tf.image.resize``,
antialias off): output pixel ``i`` samples input position ``(i + 0.5) * in / out - 0.5``,
clamped to the edges, interpolated linearly between its two neighbours.
"""

import math

import numpy as np


def linear_weights(source, target):
    """``(target, source)`` matrix of 1-D linear interpolation weights."""
    w = np.zeros((target, source))
    for i in range(target):
        position = (i + 0.5) * source / target - 0.5
        lower = math.floor(position)
        frac = position - lower
        for index, weight in ((lower, 1.0 - frac), (lower + 1, frac)):
            w[i, min(max(index, 0), source - 1)] += weight
    return w


def resize_grid(values, source, target):
    """Resizes the last axis of ``values`` (tokens on a ``source`` (rows, cols) grid) to a
    ``target`` grid, looping over output tokens."""
    wr, wc = linear_weights(source[0], target[0]), linear_weights(source[1], target[1])
    out = np.zeros(values.shape[:-1] + (target[0] * target[1],))
    for r in range(target[0]):
        for c in range(target[1]):
            for sr in range(source[0]):
                for sc in range(source[1]):
                    out[..., r * target[1] + c] += wr[r, sr] * wc[c, sc] * values[..., sr * source[1] + sc]
    return out


def layout(tokens):
    for special in (0, 1):
        side = math.isqrt(tokens - special)
        if side * side == tokens - special:
            return special, (side, side)
    raise ValueError(tokens)


def _rows(a):
    return a / a.sum(-1, keepdims=True)


def attention_matrix(t, s, t_grid=None, s_grid=None):
    t, s = np.asarray(t, np.float64), np.asarray(s, np.float64)
    if t.shape[1] != s.shape[1]:
        t, s = t.mean(1, keepdims=True), s.mean(1, keepdims=True)
    if t.shape[-1] != s.shape[-1]:
        (ts, tg), (ss, sg) = (layout(t.shape[-1]) if t_grid is None else (t.shape[-1] - t_grid[0] * t_grid[1], t_grid),
                              layout(s.shape[-1]) if s_grid is None else (s.shape[-1] - s_grid[0] * s_grid[1], s_grid))
        t, s = _rows(t[:, :, ts:, ts:]), _rows(s[:, :, ss:, ss:])
        t = resize_grid(t, tg, sg)  # keys
        t = np.swapaxes(resize_grid(np.swapaxes(t, 2, 3), tg, sg), 2, 3)  # queries
        t = _rows(t)
    n, h, q, _ = s.shape
    out = np.zeros(n)
    for i in range(n):
        out[i] = sum(((t[i, j, k] - s[i, j, k]) ** 2).sum() for j in range(h) for k in range(q)) / (h * q)
    return out


def hidden_state(t, s):
    t, s = np.asarray(t, np.float64), np.asarray(s, np.float64)
    if t.shape[1] != s.shape[1]:
        (ts, tg), (ss, sg) = layout(t.shape[1]), layout(s.shape[1])
        t = np.swapaxes(resize_grid(np.swapaxes(t[:, ts:], 1, 2), tg, sg), 1, 2)
        s = s[:, ss:]
    return ((t - s) ** 2).reshape(len(t), -1).mean(1)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
