"""Transformer distillation losses: attention matrices and hidden states, block by block.

``y_true`` is the teacher's tensor, ``y_pred`` the student's (hidden states already passed
through :func:`hidden_adapter` where widths differ; the Distiller's term owns the adapter).

Token counts. When teacher and student see different token grids (other patch sizes),
the teacher's tensor is brought to the student's grid, in this order:

1. the leading special tokens (a ``[class]`` token) are dropped from both tensors (rows
   and columns of an attention map, positions of a hidden state); attention rows are
   renormalised to sum to 1;
2. the teacher's patch tokens, laid out on their ``rows x cols`` grid, are resized
   bilinearly (``tf.image.resize``, half-pixel centres, no antialiasing) to the
   student's grid, along the query axis and the key axis of an attention map;
3. attention rows are renormalised to sum to 1.

Equal token counts are compared as they are, special tokens included. A grid is
inferred from the token count ``n`` as a square (``n = g^2``, no special token, or
``n = 1 + g^2``, one class token); other layouts (rectangular images, text) pass
``teacher_grid`` / ``student_grid`` as ``(rows, cols)``.
"""

import math

from kdtf._keras import keras, tf
from kdtf.losses.base import DistillationLoss
from kdtf.taps import find_layer
from kdtf.terms import BlockTerm, register_term

__all__ = [
    "attention_matrix_loss",
    "AttentionMatrixLoss",
    "hidden_state_loss",
    "HiddenStateLoss",
    "hidden_adapter",
    "token_layout",
    "match_attention",
    "AttentionMatrixTerm",
    "HiddenStateTerm",
]


def token_layout(tokens, grid=None, argument="grid"):
    """``(special, (rows, cols))``: leading special tokens and the patch grid of a
    sequence of ``tokens`` (see the module docstring for the inference rule)."""
    if grid is not None:
        rows, cols = (int(g) for g in grid)
        if rows < 1 or cols < 1 or rows * cols > tokens:
            raise ValueError(f"Expected a (rows, cols) grid of at most {tokens} tokens. Received: {argument}={grid!r}")
        return tokens - rows * cols, (rows, cols)
    for special in (0, 1):
        side = math.isqrt(tokens - special)
        if side > 0 and side * side == tokens - special:
            return special, (side, side)
    raise ValueError(
        f"Cannot infer the patch grid of {tokens} tokens (neither g^2 nor 1 + g^2). Pass "
        f"{argument}=(rows, cols), the patch tokens per column and row."
    )


def _resize_axis(x, axis, source, target):
    """Bilinear resize of token axis ``axis`` of ``x`` from grid ``source`` to ``target``."""
    rank = x.shape.rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    moved = tf.transpose(x, perm)
    lead = tf.shape(moved)[:-1]
    images = tf.reshape(moved, tf.concat([[-1], source, [1]], 0))
    resized = tf.image.resize(images, target, method="bilinear")
    moved = tf.reshape(resized, tf.concat([lead, [target[0] * target[1]]], 0))
    return tf.transpose(moved, [perm.index(i) for i in range(rank)])


def _normalise_rows(a):
    return a / tf.maximum(tf.reduce_sum(a, axis=-1, keepdims=True), 1e-12)


def _layouts(teacher_tokens, student_tokens, teacher_grid, student_grid):
    return token_layout(teacher_tokens, teacher_grid, "teacher_grid"), token_layout(student_tokens, student_grid, "student_grid")


def _check_rank(tensor, rank, argument, shape_text):
    if tensor.shape.rank != rank:
        raise ValueError(f"Expected {argument} of shape {shape_text}. Received: {argument} of shape {tuple(tensor.shape)}")


def match_attention(teacher_attention, student_attention, teacher_grid=None, student_grid=None):
    """Teacher and student attention maps brought to one shape: head-averaged when head
    counts differ, the teacher resized to the student's token grid when token counts
    differ (module docstring). Returns ``(teacher, student)`` float32 tensors."""
    t = tf.cast(teacher_attention, tf.float32)
    s = tf.cast(student_attention, tf.float32)
    _check_rank(t, 4, "teacher_attention", "(batch, heads, queries, keys)")
    _check_rank(s, 4, "student_attention", "(batch, heads, queries, keys)")
    if t.shape[1] != s.shape[1]:
        t, s = tf.reduce_mean(t, axis=1, keepdims=True), tf.reduce_mean(s, axis=1, keepdims=True)
    if t.shape[-1] == s.shape[-1]:
        return t, s
    (t_special, t_grid), (s_special, s_grid) = _layouts(t.shape[-1], s.shape[-1], teacher_grid, student_grid)
    t = _normalise_rows(t[:, :, t_special:, t_special:])
    s = _normalise_rows(s[:, :, s_special:, s_special:])
    t = _resize_axis(_resize_axis(t, 3, t_grid, s_grid), 2, t_grid, s_grid)
    return _normalise_rows(t), s


def attention_matrix_loss(teacher_attention, student_attention, teacher_grid=None, student_grid=None):
    """Attention-matrix distillation, one value per example:

    ``L = 1/(H * Q) * sum_h sum_q sum_k (A_t[h, q, k] - A_s[h, q, k])^2``

    with ``A`` the softmax attention weights ``(batch, heads, queries, keys)``: the
    squared difference summed over the key axis, averaged over heads and queries (the
    batch mean, ``1/N``, is the Keras reduction), i.e. ``1/(N*H) sum_n sum_h
    ||A_n^h - S_n^h||^2`` per query row. Head-averaged maps (``H = 1``) when head counts
    differ; the teacher's token grid resized to the student's when token counts differ
    (module docstring).

    References: Jiao et al., "TinyBERT: Distilling BERT for Natural Language
    Understanding", Findings of EMNLP 2020 (arXiv:1909.10351), MSE between attention
    matrices head by head; Wang et al., "MiniLM: Deep Self-Attention Distillation for
    Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020
    (arXiv:2002.10957), which transfers the attention distributions (by KL) of the
    last block.
    """
    t, s = match_attention(teacher_attention, student_attention, teacher_grid, student_grid)
    return tf.reduce_mean(tf.reduce_sum(tf.square(t - s), axis=-1), axis=[1, 2])


def hidden_state_loss(teacher_hidden, student_hidden, teacher_grid=None, student_grid=None):
    """Hidden-state (layer-wise) distillation, one value per example:

    ``L = 1/(T * D) * sum_t sum_d (H_t[t, d] - H_s W[t, d])^2``

    the mean squared error between a teacher block's output ``(batch, tokens, D)`` and
    the student's, the student first mapped to width ``D`` by a learnable linear ``W``
    (:func:`hidden_adapter`) where widths differ. Token grids are matched as in the
    module docstring. Reference: Jiao et al., "TinyBERT", Findings of EMNLP 2020
    (arXiv:1909.10351), Eq. 8 (``MSE(H^S W_h, H^T)``).
    """
    t = tf.cast(teacher_hidden, tf.float32)
    s = tf.cast(student_hidden, tf.float32)
    _check_rank(t, 3, "teacher_hidden", "(batch, tokens, width)")
    _check_rank(s, 3, "student_hidden", "(batch, tokens, width)")
    if s.shape[-1] != t.shape[-1]:
        raise ValueError(
            f"Hidden-state loss needs the same width: student {s.shape[-1]}, teacher {t.shape[-1]}. "
            "Pass the student's hidden state through kdtf.losses.transformer.hidden_adapter(student_dim, teacher_dim)."
        )
    if t.shape[1] != s.shape[1]:
        (t_special, t_grid), (s_special, s_grid) = _layouts(t.shape[1], s.shape[1], teacher_grid, student_grid)
        t = _resize_axis(t[:, t_special:], 1, t_grid, s_grid)
        s = s[:, s_special:]
    return tf.reduce_mean(tf.square(t - s), axis=[1, 2])


def hidden_adapter(student_dim, teacher_dim, name="hidden_adapter"):
    """The learnable linear map ``W`` of :func:`hidden_state_loss`: a bias-free Dense
    from ``student_dim`` to ``teacher_dim`` features, built for ``(batch, tokens,
    student_dim)`` inputs. Train it with the student; it is not part of the exported model."""
    for argument, value in (("student_dim", student_dim), ("teacher_dim", teacher_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected `{argument}` to be an integer >= 1. Received: {argument}={value!r}")
    adapter = keras.layers.Dense(teacher_dim, use_bias=False, name=name)
    adapter.build((None, None, student_dim))
    return adapter


def _grid_config(grid):
    return None if grid is None else [int(g) for g in grid]


@keras.saving.register_keras_serializable(package="kdtf")
class AttentionMatrixLoss(DistillationLoss):
    """Attention-matrix distillation (see :func:`attention_matrix_loss`):
    ``1/(N*H) sum_n sum_h ||A_n^h - S_n^h||^2``, summed over keys, averaged over
    queries. ``y_true``: teacher attention weights, ``y_pred``: student's, both
    ``(batch, heads, queries, keys)``.

    References: Jiao et al., "TinyBERT", Findings of EMNLP 2020; Wang et al., "MiniLM",
    NeurIPS 2020.

    Args:
        teacher_grid, student_grid: ``(rows, cols)`` patch grids, needed only when token
            counts differ and a grid is not square.
    """

    def __init__(self, teacher_grid=None, student_grid=None, reduction="auto", name="attention_loss"):
        super().__init__(attention_matrix_loss, reduction, name, teacher_grid=_grid_config(teacher_grid),
                         student_grid=_grid_config(student_grid))


@keras.saving.register_keras_serializable(package="kdtf")
class HiddenStateLoss(DistillationLoss):
    """Hidden-state distillation (see :func:`hidden_state_loss`): ``mean((H_t - H_s W)^2)``
    per example. ``y_true``: a teacher block's output, ``y_pred``: the student's after
    its adapter ``W``, both ``(batch, tokens, width)``.

    Reference: Jiao et al., "TinyBERT", Findings of EMNLP 2020 (arXiv:1909.10351).

    Args:
        teacher_grid, student_grid: as for :class:`AttentionMatrixLoss`.
    """

    def __init__(self, teacher_grid=None, student_grid=None, reduction="auto", name="hidden_loss"):
        super().__init__(hidden_state_loss, reduction, name, teacher_grid=_grid_config(teacher_grid),
                         student_grid=_grid_config(student_grid))


@register_term("attention")
class AttentionMatrixTerm(BlockTerm):
    """Attention matrices (:class:`AttentionMatrixLoss`), head by head (head-averaged
    when head counts differ)."""

    kind = "attention"
    loss_class = AttentionMatrixLoss


@register_term("hidden")
class HiddenStateTerm(BlockTerm):
    """Hidden states (:class:`HiddenStateLoss`) through one learnable linear adapter per
    block pair where widths differ (:func:`hidden_adapter`)."""

    kind = "hidden"
    loss_class = HiddenStateLoss

    def check(self, student, teachers):
        super().check(student, teachers)
        adapters = []
        for i, (s_name, t_name) in enumerate(self.pairs):
            s_dim = int(find_layer(student, s_name).output.shape[-1])
            t_dim = int(find_layer(teachers[self.teacher], t_name).output.shape[-1])
            adapters.append(None if s_dim == t_dim else hidden_adapter(s_dim, t_dim, name=f"adapter_hidden_{i}_{s_name}"))
        self.adapter = adapters if any(a is not None for a in adapters) else None
