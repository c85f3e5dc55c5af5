"""Attention-matrix and hidden-state losses against the numpy references in
reference_losses_transformer.py (float64 loops)."""

import numpy as np
import pytest
import tensorflow as tf

from kdtf import keras
from kdtf.losses import transformer as tl

import reference_losses_transformer as ref

RNG = np.random.default_rng(7)


def attention(batch, heads, tokens, sharpness=3.0):
    return ref.softmax(sharpness * RNG.normal(size=(batch, heads, tokens, tokens))).astype(np.float32)


def test_attention_loss_is_key_sum_averaged_over_heads_and_queries():
    t, s = attention(3, 4, 17), attention(3, 4, 17)
    np.testing.assert_allclose(tl.attention_matrix_loss(t, s).numpy(), ref.attention_matrix(t, s), rtol=1e-5)
    # by hand for one example: heads x queries rows, each a sum over keys
    by_hand = np.mean(np.sum((t[0] - s[0]) ** 2, axis=-1))
    np.testing.assert_allclose(tl.attention_matrix_loss(t, s).numpy()[0], by_hand, rtol=1e-5)
    np.testing.assert_allclose(tl.attention_matrix_loss(t, t).numpy(), 0.0, atol=1e-7)


def test_attention_loss_averages_heads_when_head_counts_differ():
    t, s = attention(2, 4, 16), attention(2, 2, 16)
    expected = ref.attention_matrix(t, s)
    np.testing.assert_allclose(tl.attention_matrix_loss(t, s).numpy(), expected, rtol=1e-5)
    averaged = ((t.mean(1) - s.mean(1)) ** 2).sum(-1).mean(-1)
    np.testing.assert_allclose(expected, averaged, rtol=1e-6)


@pytest.mark.parametrize(
    "teacher_tokens, student_tokens",
    [(50, 16), (16, 50), (49, 17), (17, 26)],  # with or without a class token, down- and upsampling
)
def test_attention_loss_resizes_the_teacher_grid_to_the_students(teacher_tokens, student_tokens):
    t, s = attention(2, 3, teacher_tokens), attention(2, 3, student_tokens)
    np.testing.assert_allclose(tl.attention_matrix_loss(t, s).numpy(), ref.attention_matrix(t, s), rtol=1e-4)


def test_resized_attention_rows_are_distributions_on_the_student_grid():
    t, s = tl.match_attention(attention(2, 4, 50), attention(2, 4, 17))
    assert t.shape == s.shape == (2, 4, 16, 16)
    np.testing.assert_allclose(tf.reduce_sum(t, -1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tf.reduce_sum(s, -1).numpy(), 1.0, rtol=1e-5)


def test_explicit_rectangular_grids_are_used_when_tokens_do_not_form_a_square():
    t, s = attention(2, 2, 1 + 6), attention(2, 2, 4)  # teacher 2x3 grid + class token, student 2x2
    value = tl.attention_matrix_loss(t, s, teacher_grid=(2, 3), student_grid=(2, 2)).numpy()
    np.testing.assert_allclose(value, ref.attention_matrix(t, s, (2, 3), (2, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match="Cannot infer the patch grid of 7 tokens.*teacher_grid"):
        tl.attention_matrix_loss(t, s)


def test_linear_resize_reference_agrees_with_tf_image_resize():
    x = RNG.normal(size=(7, 5)).astype(np.float32)
    for target in [(4, 3), (9, 8)]:
        expected = tf.image.resize(x[None, :, :, None], target, method="bilinear").numpy()[0, :, :, 0]
        got = ref.resize_grid(x.reshape(1, -1), (7, 5), target).reshape(target)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_hidden_state_loss_is_the_mse_and_resizes_token_grids():
    t, s = RNG.normal(size=(3, 17, 8)).astype(np.float32), RNG.normal(size=(3, 17, 8)).astype(np.float32)
    np.testing.assert_allclose(tl.hidden_state_loss(t, s).numpy(), ((t - s) ** 2).mean((1, 2)), rtol=1e-5)
    t2, s2 = RNG.normal(size=(2, 50, 6)).astype(np.float32), RNG.normal(size=(2, 16, 6)).astype(np.float32)
    np.testing.assert_allclose(tl.hidden_state_loss(t2, s2).numpy(), ref.hidden_state(t2, s2), rtol=1e-5)


def test_hidden_state_loss_names_the_width_mismatch_and_the_adapter():
    t, s = np.zeros((2, 4, 8), np.float32), np.zeros((2, 4, 6), np.float32)
    with pytest.raises(ValueError, match="student 6, teacher 8.*hidden_adapter"):
        tl.hidden_state_loss(t, s)
    adapter = tl.hidden_adapter(6, 8, name="block0_adapter")
    assert adapter.name == "block0_adapter" and adapter.kernel.shape == (6, 8) and not adapter.use_bias
    assert tl.hidden_state_loss(t, adapter(s)).shape == (2,)
    with pytest.raises(ValueError, match="student_dim"):
        tl.hidden_adapter(0, 8)


def test_losses_reject_tensors_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"teacher_attention of shape \(batch, heads, queries, keys\)"):
        tl.attention_matrix_loss(np.zeros((2, 4, 4), np.float32), attention(2, 1, 4))
    with pytest.raises(ValueError, match=r"student_hidden of shape \(batch, tokens, width\)"):
        tl.hidden_state_loss(np.zeros((2, 4, 3), np.float32), np.zeros((2, 12), np.float32))


def test_student_gets_finite_gradients_through_the_resize():
    logits = tf.Variable(RNG.normal(size=(2, 2, 17, 17)).astype(np.float32))
    teacher = attention(2, 4, 50)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(tl.attention_matrix_loss(teacher, tf.nn.softmax(logits)))
    grad = tape.gradient(value, logits).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


@pytest.mark.parametrize("cls, fn", [(tl.AttentionMatrixLoss, tl.attention_matrix_loss), (tl.HiddenStateLoss, tl.hidden_state_loss)])
def test_loss_classes_round_trip_and_reduce_to_the_batch_mean(cls, fn):
    loss = cls(teacher_grid=(7, 7), student_grid=(4, 4))
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    assert restored.teacher_grid == [7, 7] and restored.student_grid == [4, 4]
    if cls is tl.AttentionMatrixLoss:
        t, s = attention(3, 2, 50), attention(3, 2, 17)
    else:
        t, s = RNG.normal(size=(3, 50, 4)).astype(np.float32), RNG.normal(size=(3, 17, 4)).astype(np.float32)
    np.testing.assert_allclose(restored(t, s).numpy(), fn(t, s).numpy().mean(), rtol=1e-5)
