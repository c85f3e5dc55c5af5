import json
import os

import numpy as np
import pytest

import kdtf
from kdtf import keras
from kdtf.losses import KDLoss, kd_loss, softmax_kl

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def numpy_kd(teacher, student, temperature):
    """Independent reference: T^2 * sum p_t * log(p_t / p_s), softmax by exp/sum."""

    def softmax(z):
        e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
        return e / e.sum(-1, keepdims=True)

    p_t, p_s = softmax(teacher.astype(np.float64)), softmax(student.astype(np.float64))
    return temperature**2 * np.sum(p_t * np.log(p_t / p_s), axis=-1)


def load_fixture():
    with open(os.path.join(FIXTURES, "kd_logits.json")) as f:
        return json.load(f)


def test_kd_loss_hand_value_two_classes():
    # p_t = [1/2, 1/2], p_s = [3/4, 1/4]: KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    value = kd_loss(np.array([[0.0, 0.0]]), np.array([[np.log(3.0), 0.0]]), temperature=1.0)
    np.testing.assert_allclose(value.numpy(), [0.5 * np.log(4 / 3)], rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 10.0])
def test_kd_loss_matches_numpy_reference_on_stored_logits(temperature):
    case = load_fixture()
    teacher, student = np.array(case["teacher"]), np.array(case["student"])
    expected = np.array(case["expected"][str(temperature)])
    np.testing.assert_allclose(numpy_kd(teacher, student, temperature), expected, rtol=1e-9)
    np.testing.assert_allclose(kd_loss(teacher, student, temperature).numpy(), expected, rtol=1e-5)
    mean = KDLoss(temperature=temperature)(teacher, student).numpy()
    np.testing.assert_allclose(mean, expected.mean(), rtol=1e-5)


def test_kd_loss_has_t_squared_factor():
    case = load_fixture()
    teacher, student = np.array(case["teacher"]), np.array(case["student"])
    kl = softmax_kl(teacher, student, 3.0).numpy()
    np.testing.assert_allclose(kd_loss(teacher, student, 3.0).numpy(), 9.0 * kl, rtol=1e-6)


def test_kd_loss_zero_when_student_equals_teacher():
    logits = np.random.default_rng(1).normal(size=(16, 10)).astype(np.float32) * 5
    np.testing.assert_allclose(kd_loss(logits, logits, 4.0).numpy(), 0.0, atol=1e-6)


def test_kd_loss_non_negative_on_random_logits():
    rng = np.random.default_rng(2)
    t, s = rng.normal(size=(256, 10)) * 3, rng.normal(size=(256, 10)) * 3
    assert np.all(kd_loss(t, s, 2.0).numpy() >= -1e-6)


@pytest.mark.parametrize("temperature", [0, -1.0, "4", None])
def test_kd_loss_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        KDLoss(temperature=temperature)


def test_kd_loss_config_round_trip_and_registry():
    loss = KDLoss(temperature=3.0)
    clone = KDLoss.from_config(loss.get_config())
    assert clone.temperature == 3.0 and clone.name == "kd_loss"
    again = kdtf.losses.get(keras.losses.serialize(loss))
    assert isinstance(again, KDLoss) and again.temperature == 3.0
    assert isinstance(kdtf.losses.get("kd", temperature=2.0), KDLoss)
    with pytest.raises(ValueError, match="Unknown distillation loss 'nope'"):
        kdtf.losses.get("nope")


def test_kd_loss_trains_a_student_on_precomputed_teacher_logits(student, teacher, batch):
    x, _ = batch
    target = teacher.predict(x, verbose=0)
    student.compile(keras.optimizers.Adam(1e-2), loss=KDLoss(temperature=2.0))
    before = student.evaluate(x, target, verbose=0)
    student.fit(x, target, epochs=20, verbose=0)
    assert student.evaluate(x, target, verbose=0) < 0.5 * before
