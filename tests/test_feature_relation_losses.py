"""Feature, attention, relational and representation losses against stored numpy references."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kdtf import losses

import reference_losses as ref

with open(os.path.join(os.path.dirname(__file__), "fixtures", "feature_relation.json")) as f:
    CASE = json.load(f)
X = {k: np.array(v) for k, v in CASE["inputs"].items()}
E = CASE["expected"]


def test_stored_references_still_match_the_numpy_implementations():
    fresh = ref.expected(X)
    for key, value in E.items():
        np.testing.assert_allclose(fresh[key], value, rtol=1e-9, err_msg=key)


def test_hint_loss_matches_reference_and_average_pools_larger_student_maps():
    np.testing.assert_allclose(losses.hint_loss(X["teacher_map"], X["student_map_same"]).numpy(), E["hint_same"], rtol=1e-5)
    np.testing.assert_allclose(losses.hint_loss(X["teacher_map"], X["student_map_big5"]).numpy(), E["hint_pooled"], rtol=1e-5)


def test_hint_loss_names_the_channel_mismatch_and_the_fix():
    with pytest.raises(ValueError, match="student 2, teacher 5.*adapter"):
        losses.hint_loss(X["teacher_map"], X["student_map_big"])


def test_attention_transfer_matches_reference_and_handles_other_sizes_and_channels():
    np.testing.assert_allclose(losses.attention_transfer_loss(X["teacher_map"], X["student_map_same"]).numpy(), E["at_same"], rtol=1e-5)
    np.testing.assert_allclose(losses.AttentionTransferLoss(p=1.0).call(X["teacher_map"], X["student_map_same"]).numpy(), E["at_p1"], rtol=1e-5)
    value = losses.attention_transfer_loss(X["teacher_map"], X["student_map_big"]).numpy()  # 8x8x2 vs 4x4x5
    assert value.shape == (3,) and np.all(np.isfinite(value)) and np.all(value >= 0)


def test_relational_losses_match_references():
    t, s = X["teacher_emb"], X["student_emb"]  # widths 6 and 3: relations need no adapter
    np.testing.assert_allclose(losses.rkd_distance_loss(t, s).numpy(), [E["rkd_distance"]] * 5, rtol=1e-4)
    np.testing.assert_allclose(losses.rkd_angle_loss(t, s).numpy(), [E["rkd_angle"]] * 5, rtol=1e-4)
    np.testing.assert_allclose(losses.similarity_preserving_loss(X["teacher_map"], X["student_map_big"]).numpy(), [E["sp"]] * 3, rtol=1e-4)


def test_embedding_loss_matches_reference_and_bounds():
    t = X["teacher_emb"]
    np.testing.assert_allclose(losses.embedding_loss(t, t[:, ::-1] + 0.5).numpy(), E["embedding_cosine"], rtol=1e-5)
    np.testing.assert_allclose(losses.embedding_loss(t, -t).numpy(), 2.0, rtol=1e-6)
    np.testing.assert_allclose(losses.EmbeddingLoss("mse")(t, t).numpy(), 0.0, atol=1e-7)


@pytest.mark.parametrize("fn, t, s", [
    (losses.hint_loss, "teacher_map", "teacher_map"),
    (losses.attention_transfer_loss, "teacher_map", "teacher_map"),
    (losses.rkd_distance_loss, "teacher_emb", "teacher_emb"),
    (losses.rkd_angle_loss, "teacher_emb", "teacher_emb"),
    (losses.similarity_preserving_loss, "teacher_map", "teacher_map"),
    (losses.embedding_loss, "teacher_emb", "teacher_emb"),
])
def test_zero_when_student_equals_teacher(fn, t, s):
    np.testing.assert_allclose(fn(X[t], X[s]).numpy(), 0.0, atol=1e-5)


def test_relational_losses_are_invariant_to_scaling_the_student():
    # RKD normalises distances by their mean, and angles ignore scale: x10 changes nothing
    t, s = X["teacher_emb"], X["student_emb"]
    np.testing.assert_allclose(losses.rkd_distance_loss(t, 10 * s).numpy(), losses.rkd_distance_loss(t, s).numpy(), rtol=1e-4)
    np.testing.assert_allclose(losses.rkd_angle_loss(t, 10 * s).numpy(), losses.rkd_angle_loss(t, s).numpy(), rtol=1e-4)


@pytest.mark.parametrize("fn", [losses.hint_loss, losses.attention_transfer_loss, losses.similarity_preserving_loss])
def test_gradients_reach_the_student_feature(fn):
    s = tf.Variable(X["student_map_same"], dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(fn(tf.constant(X["teacher_map"], tf.float32), s))
    grad = tape.gradient(value, s)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="Expected p > 0"):
        losses.AttentionTransferLoss(p=0)
    with pytest.raises(ValueError, match="Unknown metric 'l1'"):
        losses.EmbeddingLoss("l1")
