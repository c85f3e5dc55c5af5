import numpy as np
import pytest

from kdtf.data import keep_labels, labelled_dataset, load


def test_mnist5k_splits_are_deterministic_stratified_and_normalised():
    a, b = load("mnist5k", seed=3), load("mnist5k", seed=3)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (3999, 501, 500)
    assert np.bincount(a.y_test).tolist() == [50] * 10
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert not np.array_equal(load("mnist5k", seed=4).y_test, a.y_test)


def test_digits_loads_offline():
    d = load("digits")
    assert d.input_shape == (8, 8, 1) and d.num_classes == 10 and d.normalization == "x / 16"


def test_unknown_spec_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown data set spec 'mnist'. Known: cluttered, digits, mnist5k"):
        load("mnist")


def test_keep_labels_keeps_exactly_n_stratified_and_deterministic():
    y = load("mnist5k").y_train
    kept = keep_labels(y, 500, seed=1)
    assert (kept >= 0).sum() == 500
    counts = np.bincount(kept[kept >= 0], minlength=10)
    assert counts.min() >= 48 and counts.max() <= 52  # proportional to the class sizes
    np.testing.assert_array_equal(kept[kept >= 0], y[kept >= 0])  # kept labels are the true ones
    np.testing.assert_array_equal(keep_labels(y, 500, seed=1), kept)
    assert not np.array_equal(keep_labels(y, 500, seed=2), kept)


@pytest.mark.parametrize("n", [5, 10**6, -1, 2.5])
def test_keep_labels_rejects_impossible_counts(n):
    with pytest.raises(ValueError, match="Expected labels between the number of classes"):
        keep_labels(np.repeat(np.arange(10), 20), n)


def test_labelled_dataset_yields_only_labelled_examples():
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    y = np.where(np.arange(40) % 4 == 0, np.arange(40) % 10, -1).astype(np.int32)
    ds, steps = labelled_dataset(x, y, batch_size=8, steps_per_epoch=5)
    seen = np.concatenate([b[1].numpy() for b in ds.take(steps)])
    assert len(seen) == 40 and (seen >= 0).all()
