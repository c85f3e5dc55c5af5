import numpy as np
import pytest
import tensorflow as tf

import kdtf
from kdtf import keras
from kdtf.mutual import MutualDistiller

from helpers import CLASSES, tiny_cnn


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def kl(teacher, student, t):
    lt, ls = log_softmax(teacher / t), log_softmax(student / t)
    return (np.exp(lt) * (lt - ls)).sum(-1)


def peers(count=2):
    return [tiny_cnn(4 + 2 * k, 8, f"peer{k}", seed=10 + k) for k in range(count)]


def compiled(model, lr=1e-2):
    model.compile(keras.optimizers.Adam(lr), metrics=["accuracy"])
    return model


def test_each_peer_loss_is_masked_ce_plus_mean_t2_kl_to_the_others_in_numpy(batch):
    x, y = batch
    y = y.copy()
    y[::3] = -1  # unlabeled rows: KL only
    students = peers(3)
    mutual = compiled(MutualDistiller(students, temperature=2.0, peer_weight=0.7))
    logs = mutual.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    z = [s.predict(x, verbose=0).astype(np.float64) for s in students]
    labelled = y >= 0
    total = 0.0
    for k in range(3):
        ce = -log_softmax(z[k])[labelled, y[labelled]].mean()
        peer = 4.0 * np.mean([kl(z[j], z[k], 2.0).mean() for j in range(3) if j != k])
        np.testing.assert_allclose(logs[f"student{k}_ce"], ce, rtol=1e-4)
        np.testing.assert_allclose(logs[f"student{k}_kl"], peer, rtol=1e-4)
        np.testing.assert_allclose(logs[f"student{k}_loss"], ce + 0.7 * peer, rtol=1e-4)
        np.testing.assert_allclose(logs[f"student{k}_accuracy"], np.mean(z[k][labelled].argmax(-1) == y[labelled]), atol=1e-6)
        total += ce + 0.7 * peer
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)


def test_a_peer_loss_has_zero_gradient_wrt_the_other_peers_weights(batch):
    x, y = batch
    students = peers(2)
    mutual = MutualDistiller(students)
    with tf.GradientTape(persistent=True) as tape:
        _, losses = mutual.compute_losses(tf.constant(x), tf.constant(y), training=True)
    for k, other in ((0, 1), (1, 0)):
        own = tape.gradient(losses[k]["loss"], students[k].trainable_variables)
        foreign = tape.gradient(losses[k]["loss"], students[other].trainable_variables,
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
        assert all(float(tf.reduce_max(tf.abs(g))) == 0.0 for g in foreign)
        assert all(float(tf.reduce_max(tf.abs(g))) > 0.0 for g in own)


def test_the_peer_term_pulls_each_peer_toward_the_other(batch):
    x, _ = batch
    students = peers(2)
    mutual = compiled(MutualDistiller(students), lr=3e-2)
    before = kl(*(s.predict(x, verbose=0).astype(np.float64) for s in students), 1.0).mean()
    mutual.fit(x, batch_size=16, epochs=3, verbose=0)  # no labels: the peer term alone
    after = kl(*(s.predict(x, verbose=0).astype(np.float64) for s in students), 1.0).mean()
    assert after < 0.5 * before


def test_beside_a_teacher_the_loss_adds_alpha_weighted_kd(student, teacher, batch):
    x, y = batch
    students = [student, tiny_cnn(6, 8, "peer", seed=5)]
    mutual = compiled(MutualDistiller(students, teacher, temperature=3.0, alpha=0.25, peer_weight=0.5))
    logs = mutual.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    z = [s.predict(x, verbose=0).astype(np.float64) for s in students]
    zt = teacher.predict(x, verbose=0).astype(np.float64)
    ce = -log_softmax(z[1])[np.arange(len(y)), y].mean()
    kd = 9.0 * kl(zt, z[1], 3.0).mean()
    peer = 9.0 * kl(z[0], z[1], 3.0).mean()
    np.testing.assert_allclose(logs["student1_teacher_kl"], kd, rtol=1e-4)
    np.testing.assert_allclose(logs["student1_loss"], 0.25 * ce + 0.75 * kd + 0.5 * peer, rtol=1e-4)


def test_fit_trains_every_peer_and_leaves_the_teacher_bit_identical(student, teacher, batch):
    x, y = batch
    students = [student, tiny_cnn(6, 8, "peer", seed=5)]
    frozen = [w.copy() for w in teacher.get_weights()]
    before = [[w.copy() for w in s.get_weights()] for s in students]
    history = compiled(MutualDistiller(students, teacher)).fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"loss", "student0_accuracy", "student1_accuracy", "student0_kl", "student1_teacher_kl"} <= set(history.history)
    for a, b in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    for s, weights in zip(students, before):
        assert all(not np.array_equal(a, b) for a, b in zip(weights, s.get_weights()))


@pytest.mark.slow
def test_keras_file_reloads_compiled_with_optimizer_state_and_a_peer_exports_as_usual(tmp_path, batch):
    x, y = batch
    mutual = compiled(MutualDistiller(peers(2), temperature=2.0, peer_weight=0.5))
    mutual.fit(x, y, batch_size=16, epochs=1, verbose=0)
    mutual.save(str(tmp_path / "mutual.keras"))
    again = keras.models.load_model(str(tmp_path / "mutual.keras"))
    assert int(again.optimizer.iterations) == 4 and again.temperature == 2.0 and again.peer_weight == 0.5
    before, after = (m.evaluate(x, y, return_dict=True, verbose=0) for m in (mutual, again))
    for key in ("loss", "student0_loss", "student1_kl", "student1_accuracy"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5)
    np.testing.assert_allclose(again.optimizer.variables()[1].numpy(), mutual.optimizer.variables()[1].numpy())
    again.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(again.optimizer.iterations) == 8
    again.students[1].save(str(tmp_path / "peer.keras"))
    peer = keras.models.load_model(str(tmp_path / "peer.keras"))
    np.testing.assert_allclose(peer.predict(x, verbose=0), again.students[1].predict(x, verbose=0), rtol=1e-6)
    assert kdtf.MutualDistiller is MutualDistiller


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0}, r"Expected temperature > 0\. Received: temperature=0"),
    ({"peer_weight": -1}, r"Expected peer_weight >= 0\. Received: peer_weight=-1"),
    ({"alpha": 1.5}, r"Expected alpha in \[0, 1\]\. Received: alpha=1\.5"),
])
def test_bad_hyperparameters_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MutualDistiller(peers(2), **kwargs)


def test_fewer_than_two_peers_or_a_peer_given_twice_is_refused(student):
    with pytest.raises(ValueError, match=r"at least 2 students.*Received: 1 student"):
        MutualDistiller([student])
    with pytest.raises(ValueError, match=r"at least 2 students"):
        MutualDistiller(student)
    with pytest.raises(ValueError, match="same model object"):
        MutualDistiller([student, student])


def test_peers_over_different_classes_are_refused(student):
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(CLASSES + 1)])
    with pytest.raises(ValueError, match="same classes"):
        MutualDistiller([student, other])
