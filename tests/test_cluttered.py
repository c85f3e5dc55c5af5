import numpy as np
import pytest

from kdtf.data import load
from kdtf.data.cluttered import compose, compose_splits


def _marked_digits(value, n=20, seed=0):
    """Digits whose ink is ``value`` everywhere: a canvas shows which split lent its pixels."""
    x = (np.random.default_rng(seed).random((n, 28, 28, 1)) > 0.5).astype(np.float32) * value
    return x, np.arange(n) % 10


def test_each_split_is_cluttered_with_its_own_digits_only():
    splits = {"train": _marked_digits(0.25), "val": _marked_digits(0.5, seed=1), "test": _marked_digits(0.75, seed=2)}
    composed = compose_splits(splits, seed=3)
    for name, value in (("train", 0.25), ("val", 0.5), ("test", 0.75)):
        x, y = composed[name]
        assert x.shape == (20, 64, 64, 1) and x.dtype == np.float32
        assert set(np.unique(x)) == {0.0, value}  # no pixel of another split
        np.testing.assert_array_equal(y, splits[name][1])


def test_clutter_comes_from_other_digits_and_the_digit_is_pasted_whole():
    x = np.zeros((3, 28, 28, 1), np.float32)
    x[0], x[1], x[2] = 0.2, 0.4, 0.6  # uniform "digits": the digit fills a 28 x 28 block
    canvas = compose(x, seed=0)
    for i, value in enumerate((0.2, 0.4, 0.6)):
        ink = canvas[i, ..., 0]
        assert ink.max() >= value and np.isclose(ink, value).sum() >= 1
        assert (np.isclose(ink, value) | (ink > value)).sum() >= 28 * 28  # the digit itself, at one place
        assert np.all(np.abs(ink[..., None] - np.array([0.0, 0.2, 0.4, 0.6])).min(-1) < 1e-6)  # nothing but digits' ink


@pytest.fixture(scope="module")
def cluttered():
    return load("cluttered", seed=0)


def test_cluttered_loads_64px_canvases_over_mnist5ks_own_split(cluttered):
    digits = load("mnist5k", seed=0)
    assert cluttered.input_shape == (64, 64, 1) and cluttered.num_classes == 10
    assert (len(cluttered.x_train), len(cluttered.x_val), len(cluttered.x_test)) == (len(digits.x_train), len(digits.x_val), len(digits.x_test))
    np.testing.assert_array_equal(cluttered.y_test, digits.y_test)
    assert 0.0 <= cluttered.x_train.min() and cluttered.x_train.max() <= 1.0
    for i in range(3):  # each test canvas holds its own mnist5k test digit somewhere, untouched or overdrawn
        canvas, digit = cluttered.x_test[i, ..., 0], digits.x_test[i, ..., 0]
        windows = np.lib.stride_tricks.sliding_window_view(canvas, (28, 28))
        assert np.any(np.all(windows >= digit - 1e-6, axis=(-2, -1)))


def test_cluttered_is_deterministic_for_a_seed(cluttered):
    again = load("cluttered", seed=0)
    np.testing.assert_array_equal(again.x_train, cluttered.x_train)
    np.testing.assert_array_equal(again.x_test, cluttered.x_test)
    other = load("cluttered", seed=1)
    assert not np.array_equal(other.x_test[:10], cluttered.x_test[:10])


def test_cluttered_is_not_a_transfer_set():
    from kdtf.data.loaders import open_spec

    with pytest.raises(ValueError, match="composed split by split"):
        open_spec("cluttered")
