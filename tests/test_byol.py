"""BYOL: loss, tau schedule and EMA against numpy, gradients to the online network only,
two different views, and scripts/byol.py's bad flags (its whole chain on tiny settings, killed
and resumed, is tests/test_resume.py::test_byol_run_killed_in_its_second_stage_resumes_and_writes_every_artifact)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from kdtf import keras
from kdtf._keras import tf
from kdtf.ssl import BYOL, byol_loss, tau_schedule

from helpers import byol_batch_views, byol_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_loss_is_0_for_identical_and_4_for_opposite_normalised_vectors():
    v = tf.constant([[1.0, 2.0, -3.0], [0.5, 0.0, 0.1]])
    np.testing.assert_allclose(byol_loss(v, 3.0 * v).numpy(), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(byol_loss(v, -v).numpy(), [4.0, 4.0], atol=1e-6)
    a, b = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    np.testing.assert_allclose(byol_loss(a, b).numpy(), 2 - 2 * np.cos(np.pi / 4), rtol=1e-6)


def test_tau_rises_from_base_to_1_by_a_cosine():
    assert tau_schedule(0, 100, 0.996) == pytest.approx(0.996)
    assert tau_schedule(50, 100, 0.996) == pytest.approx(1 - 0.004 / 2)
    assert tau_schedule(100, 100, 0.996) == pytest.approx(1.0)
    assert float(tau_schedule(tf.constant(25), tf.constant(100), 0.9)) == pytest.approx(1 - 0.1 * (np.cos(np.pi / 4) + 1) / 2, rel=1e-6)


@pytest.mark.slow
def test_ema_update_matches_numpy_reference():
    byol = BYOL(byol_encoder(), base_tau=0.9, total_steps=4, projection_dim=4, hidden_dim=8)
    byol.compile(keras.optimizers.SGD(0.5))
    target_before = [w.numpy().copy() for w in byol.target_encoder.trainable_weights + byol.target_projector.trainable_weights]
    byol.train_on_batch(byol_batch_views(), return_dict=True)  # step k = 0: tau = base_tau
    online_after = [w.numpy() for w in byol.encoder.trainable_weights + byol.projector.trainable_weights]
    target_after = [w.numpy() for w in byol.target_encoder.trainable_weights + byol.target_projector.trainable_weights]
    tau = 0.9
    for before, online, after in zip(target_before, online_after, target_after):
        np.testing.assert_allclose(after, tau * before + (1 - tau) * online, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(b, a) for b, a in zip(target_before, target_after))


@pytest.mark.slow
def test_gradients_reach_the_online_network_only():
    byol = BYOL(byol_encoder(), base_tau=1.0, total_steps=10, projection_dim=4, hidden_dim=8)  # tau = 1: no EMA
    byol.compile(keras.optimizers.SGD(0.5))
    v1, v2 = byol_batch_views()
    with tf.GradientTape(persistent=True) as tape:
        loss = byol._symmetric_loss(v1, v2, True)
    target_vars = byol.target_encoder.trainable_variables + byol.target_projector.trainable_variables
    assert all(g is None for g in tape.gradient(loss, target_vars))
    assert all(g is not None for g in tape.gradient(loss, byol.online_variables))
    target_before = [w.numpy().copy() for w in target_vars]
    online_before = [w.numpy().copy() for w in byol.online_variables]
    byol.train_on_batch((v1, v2))
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(target_before, target_vars))
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(online_before, byol.online_variables))


@pytest.mark.slow
def test_fit_sets_total_steps_and_logs_loss_and_tau():
    byol = BYOL(byol_encoder(), projection_dim=4, hidden_dim=8)
    byol.compile(keras.optimizers.Adam(1e-3))
    v1, v2 = byol_batch_views(n=32)
    history = byol.fit(tf.data.Dataset.from_tensor_slices((v1, v2)).batch(8), epochs=2, verbose=0)
    assert int(byol.total_steps.numpy()) == 8
    assert 0 <= history.history["loss"][0] <= 8 and history.history["tau"][-1] > history.history["tau"][0]


def test_bad_encoders_and_settings_are_refused():
    flat = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)], name="maps")
    with pytest.raises(ValueError, match=r"must output one vector per image.*end it with pooling"):
        BYOL(flat)
    with pytest.raises(ValueError, match="Expected base_tau in"):
        BYOL(byol_encoder(), base_tau=1.5)
    byol = BYOL(byol_encoder())
    byol.compile("adam")
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        byol.fit(tf.data.Dataset.from_tensor_slices(byol_batch_views()).batch(4).repeat(), epochs=1)


@pytest.mark.slow
def test_the_two_views_differ_and_stay_in_range():
    from kdtf.data.augment import byol_views

    x = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    v1, v2 = next(iter(byol_views(x, 8, seed=1)))
    assert v1.shape == (8, 28, 28, 1) and float(tf.reduce_min(v1)) >= 0 and float(tf.reduce_max(v2)) <= 1
    assert float(tf.reduce_mean(tf.abs(v1 - v2))) > 0.01


@pytest.mark.slow
def test_byol_under_mirrored_strategy_matches_one_device():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scripts", "byol_mirrored.py")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    online, target = (float(v) for v in result.stdout.strip().splitlines()[-1].split())
    assert online < 1e-5 and target < 1e-5  # float32 reduction order only


@pytest.mark.parametrize("args, message", [
    (["--pretrain-epochs", "0"], "Expected pretrain_epochs to be a positive integer"),
    (["--base-tau", "2"], "Expected base_tau in [0, 1]"),
    (["--teacher", "resnet"], "Unknown teacher encoder 'resnet'"),
    (["--dataset", "nope"], "Unknown data set spec 'nope' (--dataset)"),
    (["--crop-area", "0"], "Expected crop_area in (0, 1]"),
    (["--compress", "prune:0.5,qat", "--sparsity", "0.3"], "Say it in the steps instead: --compress 'prune:0.3,qat'"),
])
def test_byol_script_bad_flags_exit_2_with_one_line(tmp_path, capsys, args, message):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import byol

    out = tmp_path / "out"
    assert byol.main([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
