"""Teacher-output caching: same losses as running the teacher, refused with augmentation."""

import numpy as np
import pytest

from kdtf import Distiller, keras
from kdtf._keras import tf


def _logs(distiller, data):
    """The logs of one evaluation batch: ``data`` is a batch of a pipeline or ``(x, y)``."""
    distiller.compile("adam")
    return distiller.evaluate(tf.data.Dataset.from_tensors(data), return_dict=True, verbose=0)


@pytest.mark.parametrize("distill", ["kd", "kd:1.0,fitnets:0.5@conv/conv,sp:2@fc/fc"])
def test_cached_step_gives_the_same_losses_as_the_uncached_step(teacher, student, batch, distill):
    x, y = batch
    y = np.where(np.arange(len(y)) % 3 == 0, -1, y).astype(np.int32)  # a transfer set too
    distiller = Distiller(student, teacher, temperature=3.0, alpha=0.4, distill=distill)
    cached = next(iter(distiller.cached_dataset(x, y, batch_size=64, shuffle=False)))
    assert set(cached[0]) == {"x", "teacher_outputs"}
    from_cache, from_teacher = _logs(distiller, cached), _logs(distiller, (tf.constant(x), tf.constant(y)))
    assert set(from_cache) == set(from_teacher)
    for key in from_teacher:
        np.testing.assert_allclose(from_cache[key], from_teacher[key], rtol=1e-6, err_msg=key)


def test_training_from_the_cache_matches_training_with_the_teacher(teacher, batch):
    from helpers import tiny_cnn

    x, y = batch
    weights = []
    for use_cache in (False, True):
        student = tiny_cnn(4, 8, "student", seed=5)
        distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
        distiller.compile(keras.optimizers.SGD(0.1))
        ds = distiller.cached_dataset(x, y, batch_size=16, shuffle=False) if use_cache else tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        distiller.fit(ds, epochs=2, verbose=0)
        weights.append(student.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_label_free_cache_and_predict_take_the_cached_inputs(teacher, student, batch):
    x, _ = batch
    distiller = Distiller(student, teacher, alpha=0.0)
    distiller.compile("adam")
    history = distiller.fit(distiller.cached_dataset(x, batch_size=32), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("augment", ["flip", ["crop"], "randaugment,mixup"])
def test_caching_is_refused_when_augmentation_is_on(teacher, student, batch, augment):
    with pytest.raises(ValueError, match="Teacher-output caching needs a deterministic input pipeline.*teacher must run on the very batch"):
        Distiller(student, teacher).cached_dataset(batch[0], batch[1], augment=augment)


def test_cache_refuses_datasets_and_oversized_features(teacher, student, batch):
    distiller = Distiller(student, teacher, distill="kd,fitnets@conv/conv")
    with pytest.raises(ValueError, match="numpy array"):
        distiller.cached_dataset(tf.data.Dataset.from_tensor_slices(batch[0]))
    with pytest.raises(ValueError, match=r"would take .* GiB for 64 examples, above max_bytes=1000"):
        distiller.cached_dataset(batch[0], batch[1], max_bytes=1000)


def test_a_cache_built_for_other_terms_is_refused(teacher, student, batch):
    taps = Distiller(student, teacher, distill="kd,fitnets@conv/conv")
    ds = taps.cached_dataset(batch[0], batch[1], batch_size=64, shuffle=False)
    plain = Distiller(student, teacher)
    with pytest.raises(ValueError, match="carries 2 cached teacher output.*read 1"):
        _logs(plain, next(iter(ds)))
