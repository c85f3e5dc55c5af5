"""keras-cv augmentation inside tf.data; the teacher sees the student's augmented batch."""

import numpy as np
import pytest

from kdtf import Distiller, keras
from kdtf._keras import tf
from kdtf.data.augment import AUGMENTATIONS, Augmenter, augment_dataset, parse_augment


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.slow
def test_every_augmentation_runs_in_tf_data_on_grey_and_rgb(channels):
    x = np.random.default_rng(0).random((16, 12, 12, channels), dtype=np.float32)
    y = np.arange(16) % 4
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    out = augment_dataset(ds, ",".join(AUGMENTATIONS), (12, 12, channels), 4, seed=1)
    xb, yb = next(iter(out))
    assert xb.shape == (8, 12, 12, channels) and yb.shape == (8, 4)  # mixup -> one-hot rows
    assert 0 <= float(tf.reduce_min(xb)) and float(tf.reduce_max(xb)) <= 1
    assert not np.allclose(xb.numpy(), x[:8])
    np.testing.assert_allclose(yb.numpy().sum(-1), 1.0, atol=1e-5)


def test_mixing_keeps_unlabeled_rows_without_label_mass():
    augmenter = Augmenter("mixup", (8, 8, 1), 3, seed=0)
    x = tf.random.uniform((6, 8, 8, 1))
    _, y = augmenter(x, tf.constant([-1, -1, -1, -1, -1, -1]))
    np.testing.assert_allclose(y.numpy(), 0.0)


@pytest.mark.parametrize("text, expected", [("", []), ("none", []), ("randaugment,flip", ["flip", "randaugment"])])
def test_parse_augment(text, expected):
    assert parse_augment(text) == expected


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="Unknown augmentation 'rotate' .*Known: flip"):
        parse_augment("flip,rotate")


@pytest.mark.slow
def test_teacher_sees_the_augmented_batch_the_student_sees(teacher, student):
    """KD computed by hand on one materialised augmented batch equals the Distiller's
    loss on that batch: nothing re-augments or caches between student and teacher."""
    from kdtf.losses import kd_loss

    x = np.random.default_rng(1).random((16, 8, 8, 1), dtype=np.float32)
    ds = augment_dataset(tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 4)).batch(16), "crop,randaugment", (8, 8, 1), 4, seed=2)
    xb, yb = next(iter(ds))
    assert not np.allclose(xb.numpy(), x)
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.0)
    distiller.compile(keras.optimizers.SGD(0.0))
    logs = distiller.evaluate(xb, yb, batch_size=16, verbose=0, return_dict=True)
    expected = np.mean(kd_loss(teacher(xb), student(xb), 2.0).numpy())
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)
