import json
import os

import numpy as np
import pytest

import kdtf
from kdtf import keras
from kdtf.losses import KDLoss, kd_loss, softmax_kl

from reference_losses import dkd as numpy_dkd
from reference_losses import kd as numpy_kd

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


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


# -- DKD ------------------------------------------------------------------------------
from kdtf.losses import DKDLoss, dkd_loss  # noqa: E402


def test_dkd_matches_numpy_reference_on_stored_logits():
    with open(os.path.join(FIXTURES, "dkd_logits.json")) as f:
        case = json.load(f)
    teacher, student, labels = np.array(case["teacher"]), np.array(case["student"]), np.array(case["labels"])
    for key, expected in case["expected"].items():
        alpha, beta, temperature = (float(v) for v in key.split(","))
        np.testing.assert_allclose(numpy_dkd(teacher, student, labels, alpha, beta, temperature), expected, rtol=1e-9)
        np.testing.assert_allclose(dkd_loss(teacher, student, labels, alpha, beta, temperature).numpy(), expected, rtol=1e-4, atol=1e-6)
        one_hot = np.eye(teacher.shape[1])[labels]
        np.testing.assert_allclose(dkd_loss(teacher, student, one_hot, alpha, beta, temperature).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_dkd_with_unit_weights_on_the_teacher_class_decomposes_kd():
    # Zhao et al., eq. 4: KD = TCKD + (1 - p_t^teacher) NCKD, so with beta = 1 - p_t
    # per example DKD equals KD.
    rng = np.random.default_rng(3)
    t, s = rng.normal(size=(8, 6)) * 2, rng.normal(size=(8, 6)) * 2
    target = t.argmax(-1)
    p_t = np.exp(t - t.max(-1, keepdims=True))
    p_t = (p_t / p_t.sum(-1, keepdims=True))[np.arange(8), target]
    tckd = dkd_loss(t, s, target, 1.0, 0.0, 1.0).numpy()
    nckd = dkd_loss(t, s, target, 0.0, 1.0, 1.0).numpy()
    np.testing.assert_allclose(tckd + (1 - p_t) * nckd, kd_loss(t, s, 1.0).numpy(), rtol=1e-4)


def test_dkd_zero_when_equal_and_non_negative():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(16, 10)) * 4
    np.testing.assert_allclose(DKDLoss()(z, z).numpy(), 0.0, atol=1e-5)
    assert np.all(dkd_loss(z, rng.normal(size=(16, 10)) * 4).numpy() >= -1e-5)


@pytest.mark.parametrize("kwargs, message", [({"alpha": -1.0}, "Expected alpha >= 0"), ({"beta": "8"}, "Expected beta >= 0"), ({"temperature": 0}, "temperature > 0")])
def test_dkd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DKDLoss(**kwargs)


@pytest.mark.parametrize("name", kdtf.losses.names())
def test_every_registered_loss_round_trips_through_serialization(name):
    loss = kdtf.losses.get(name)
    clone = kdtf.losses.get(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    rng = np.random.default_rng(5)
    shape = {"attention": (4, 2, 5, 5), "hidden": (4, 5, 7)}.get(name, (4, 7))  # attention maps, token states
    t, s = rng.normal(size=shape), rng.normal(size=shape)
    if name == "attention":  # rows of attention weights sum to 1
        t, s = np.exp(t) / np.exp(t).sum(-1, keepdims=True), np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(clone(t, s).numpy(), loss(t, s).numpy(), rtol=1e-6)
