"""Domain adaptation while distilling: MMD and CORAL against numpy, the domain term's
rows (teacher on source, student on target) and the target set's labels."""

import numpy as np
import pytest

from kdtf import Distiller, keras, losses
from kdtf._keras import tf
from kdtf.data.target_set import TARGET_LABEL, invert, with_target
from kdtf.spec import TermSpec

import reference_losses as ref
from helpers import CLASSES, INPUT_SHAPE

RNG = np.random.default_rng(3)
SOURCE = RNG.normal(size=(6, 5))
TARGET = RNG.normal(1.0, 2.0, size=(4, 5))


def test_mmd_matches_numpy_with_the_pooled_and_a_fixed_bandwidth():
    np.testing.assert_allclose(losses.mmd_loss(SOURCE, TARGET).numpy(), ref.mmd(SOURCE, TARGET), rtol=1e-4)
    value = losses.MMDLoss(scales=(1.0, 3.0), bandwidth=2.0).call(SOURCE, TARGET).numpy()
    np.testing.assert_allclose(value, ref.mmd(SOURCE, TARGET, scales=(1.0, 3.0), bandwidth=2.0), rtol=1e-4)


def test_coral_matches_numpy_covariances_and_flattens_feature_maps():
    np.testing.assert_allclose(losses.coral_loss(SOURCE, TARGET).numpy(), ref.coral(SOURCE, TARGET), rtol=1e-4)
    maps_s, maps_t = RNG.normal(size=(5, 2, 2, 3)), RNG.normal(size=(7, 2, 2, 3))
    np.testing.assert_allclose(losses.coral_loss(maps_s, maps_t).numpy(), ref.coral(maps_s, maps_t), rtol=1e-4)


def test_alignment_losses_are_zero_for_one_set_against_itself_and_for_too_few_rows():
    assert abs(float(losses.mmd_loss(SOURCE, SOURCE))) < 1e-6
    assert abs(float(losses.coral_loss(SOURCE, SOURCE[::-1]))) < 1e-9
    assert float(losses.mmd_loss(SOURCE, TARGET[:0])) == 0.0
    assert float(losses.coral_loss(SOURCE, TARGET[:1])) == 0.0
    assert float(losses.mmd_loss(SOURCE, TARGET)) > 0.05 and float(losses.coral_loss(SOURCE, TARGET)) > 0.01


def test_mmd_and_coral_losses_round_trip_their_config_and_refuse_bad_options():
    loss = losses.MMDLoss(scales=(0.5, 2.0), bandwidth=3.0)
    again = losses.MMDLoss.from_config(loss.get_config())
    assert again.scales == (0.5, 2.0) and again.bandwidth == 3.0
    assert losses.get("coral").name == "coral_loss"
    with pytest.raises(ValueError, match="bandwidth"):
        losses.MMDLoss(bandwidth=0)
    with pytest.raises(ValueError, match="scales"):
        losses.MMDLoss(scales=(1.0, -1.0))


def _distiller(student, teacher, term):
    distiller = Distiller(student, teacher, distill=["kd", term])
    distiller.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    return distiller, distiller.terms[1]


def _batch():
    x = RNG.normal(size=(10,) + INPUT_SHAPE).astype(np.float32)
    y = np.array([0, 1, 2, 3, -1, TARGET_LABEL, TARGET_LABEL, 1, TARGET_LABEL, TARGET_LABEL], np.int32)
    return x, y


def test_domain_term_compares_teacher_features_on_source_rows_with_student_features_on_target_rows(student, teacher):
    distiller, term = _distiller(student, teacher, TermSpec("mmd", 1.0, "fc", "fc"))
    assert term.adapter is not None  # student fc 8 wide, teacher fc 32: Dense adapter
    x, y = _batch()
    tapped_t = keras.Model(teacher.inputs, teacher.get_layer("fc").output)(x).numpy()
    tapped_s = term.adapter(keras.Model(student.inputs, student.get_layer("fc").output)(x)).numpy()
    target = y == TARGET_LABEL
    value = term([{None: teacher(x), "fc": tf.constant(tapped_t)}], {None: student(x), "fc": tf.constant(
        keras.Model(student.inputs, student.get_layer("fc").output)(x).numpy())}, tf.constant(y))
    np.testing.assert_allclose(float(value), ref.mmd(tapped_t[~target], tapped_s[target]), rtol=1e-3)


def test_domain_term_with_source_student_compares_the_student_with_itself(student, teacher):
    _, term = _distiller(student, teacher, TermSpec("coral", 1.0, options={"source": "student"}))
    x, y = _batch()
    logits = student(x).numpy()
    value = term([{None: tf.constant(np.zeros_like(logits))}], {None: tf.constant(logits)}, tf.constant(y))
    target = y == TARGET_LABEL
    np.testing.assert_allclose(float(value), ref.coral(logits[~target], logits[target]), rtol=1e-3)
    with pytest.raises(ValueError, match="Unknown source of 'mmd' 'both'"):
        _distiller(student, teacher, TermSpec("mmd", 1.0, options={"source": "both"}))


def test_domain_term_needs_sparse_labels_marking_the_target_rows(student, teacher):
    _, term = _distiller(student, teacher, "mmd")
    logits = tf.zeros((4, CLASSES))
    with pytest.raises(ValueError, match="label -2"):
        term([{None: logits}], {None: logits}, tf.one_hot([0, 1, 2, 3], CLASSES))
    with pytest.raises(ValueError, match="label -2"):
        term([{None: logits}], {None: logits}, None)


@pytest.mark.slow
def test_distiller_trains_on_a_batch_with_target_rows_and_scores_labelled_rows_only(student, teacher):
    distiller, _ = _distiller(student, teacher, "mmd:2")
    x, y = _batch()
    logs = distiller.fit(x, y, batch_size=10, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and logs["mmd_loss"][0] > 0
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    predicted = student.predict(x, verbose=0).argmax(-1)
    labelled = y >= 0
    np.testing.assert_allclose(result["accuracy"], np.mean(predicted[labelled] == y[labelled]), atol=1e-6)


def test_with_target_appends_the_target_images_labelled_minus_two():
    x, y = np.zeros((3, 2, 2, 1), np.float32), np.array([0, 1, -1])
    joined, labels = with_target(x, y, invert(np.zeros((2, 2, 2, 1))))
    assert joined.shape == (5, 2, 2, 1) and labels.tolist() == [0, 1, -1, -2, -2]
    assert np.all(joined[3:] == 1.0)
    with pytest.raises(ValueError, match="resize"):
        with_target(x, y, np.zeros((2, 3, 3, 1)))
    _, _, weights = with_target(x, y, np.zeros((2, 2, 2, 1)), target_weight=0)
    assert weights.tolist() == [1, 1, 1, 0, 0]


def test_clutter_keeps_the_strokes_and_fills_the_background_with_bounded_noise():
    from kdtf.data.target_set import clutter

    x = np.zeros((2, 4, 4, 1), np.float32)
    x[:, 1, :] = 1.0
    cluttered = clutter(x, seed=1, strength=0.5)
    assert np.all(cluttered[:, 1, :] == 1.0) and 0 < cluttered[:, 0].max() <= 0.5
    np.testing.assert_array_equal(cluttered, clutter(x, seed=1, strength=0.5))


def test_add_target_set_streams_another_spec_as_target_rows():
    from kdtf.data import load
    from kdtf.data.target_set import add_target_set

    data = load("digits", seed=0)
    before = data.size("train")
    added = add_target_set(data, "digits")
    labels = data.labels("train")
    assert added == 1797 and data.size("train") == before + added
    assert np.all(labels[before:] == TARGET_LABEL) and np.all(labels[:before] >= 0)
    assert data.meta["target_set"] == added and data.meta["transfer_set"] == 0
    x, y = next(iter(data.dataset("train", 4000)))
    assert int(np.sum(y.numpy() == TARGET_LABEL)) == added


def test_config_pairs_the_alignment_terms_with_a_target_set_and_refuses_mixing_augmentation():
    from kdtf.config import DistillConfig

    DistillConfig(distill="kd,mmd@fc1/fc1", target_set="digits").validate()
    with pytest.raises(ValueError, match="go together"):
        DistillConfig(distill="kd,coral").validate()
    with pytest.raises(ValueError, match="go together"):
        DistillConfig(target_set="digits").validate()
    with pytest.raises(ValueError, match="--target-set"):
        DistillConfig(distill="mmd", target_set="nope").validate()
    with pytest.raises(ValueError, match="drop mixup"):
        DistillConfig(distill="mmd", target_set="digits", augment="mixup").validate()


@pytest.mark.slow
def test_distill_script_adds_the_target_set_and_trains_the_alignment_term(tmp_path):
    import json

    from helpers import run_script

    out = tmp_path / "out"
    result = run_script(
        "distill.py", "--dataset", "digits", "--target-set", "digits", "--distill", "kd,mmd:0.5@fc1/fc1",
        "--teacher-epochs", "2", "--epochs", "2", "--prune-epochs", "1", "--qat-epochs", "1", "--latency-runs", "0",
        "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--verbose", "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "target set digits: 1797 unlabeled target-domain images added (label -2)" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["target_set"] == 1797 and report["config"]["target_set"] == "digits"
    int8 = report["stages"][-1]
    assert int8["file"].endswith(".tflite") and 0 < int8["entropy_coded_bytes"] <= int8["size_bytes"]
