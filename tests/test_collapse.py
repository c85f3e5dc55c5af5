import warnings

import numpy as np
import pytest

from kdtf import Distiller, keras
from kdtf.collapse import CollapseError, CollapseGuard, check_collapse, diagnose


def _argmax_data(n=96, seed=0):
    """Three features; the label is the largest one (the identity model gets them all)."""
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return x, x.argmax(-1).astype(np.int32)


def _linear(kernel, bias, name):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="logits")], name=name)
    model.layers[-1].set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return model


def _healthy(name="healthy"):
    return _linear(np.eye(3), np.zeros(3), name)


def _collapsed(name="collapsed"):  # predicts class 0 for every input
    return _linear(np.zeros((3, 3)), [5.0, 0.0, 0.0], name)


def test_a_constant_predictor_is_collapsed_and_a_healthy_model_is_not():
    x, y = _argmax_data()
    constant = np.tile([[5.0, 0.0, 0.0]], (len(x), 1))
    bad = diagnose(constant, y)
    assert bad.collapsed and bad.top_class == 0 and bad.top_share == 1.0
    assert not diagnose(x, y).collapsed  # the logits are the features: 100 %


def test_chance_accuracy_is_collapsed_even_when_classes_are_spread():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 500)
    guesses = np.eye(10)[rng.integers(0, 10, 500)]  # random guesses: ~10 %, every class
    found = diagnose(guesses, y)
    assert found.collapsed and found.top_share < 0.2 and found.accuracy < 0.145


def test_a_few_examples_or_a_truly_unbalanced_split_decide_nothing():
    assert not diagnose(np.tile([[1.0, 0.0]], (8, 1)), [1] * 8).collapsed  # 8 inputs: too few
    y = np.array([0] * 95 + [1] * 5)
    assert not diagnose(np.tile([[1.0, 0.0]], (100, 1)), y).collapsed  # the majority class is the answer


def test_one_hot_and_unlabeled_rows_are_read_like_sparse_labels():
    x, y = _argmax_data()
    one_hot = np.eye(3)[y]
    one_hot[:10] = 0  # unlabeled rows
    found = diagnose(x, one_hot)
    assert found.accuracy == 1.0 and not found.collapsed


def test_check_collapse_names_the_stage_accuracy_and_fixes():
    x, y = _argmax_data()
    with pytest.raises(CollapseError, match=r"stage distilled: the model collapsed: accuracy .*chance 33.3%.*lower the learning rate.*warm-up.*clipping"):
        check_collapse(_collapsed(), x, y, stage="stage distilled")
    assert not check_collapse(_healthy(), x, y).collapsed


def _distiller(student):
    distiller = Distiller(student, _healthy("teacher"), temperature=1.0, alpha=0.5)
    distiller.compile(keras.optimizers.SGD(0.0))  # rate 0: the student stays as built
    return distiller


def test_distiller_fit_warns_when_the_student_collapsed():
    x, y = _argmax_data()
    with pytest.warns(UserWarning, match="distiller \\(student 'collapsed'\\): the model collapsed"):
        _distiller(_collapsed()).fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_distiller_fit_raises_on_request_and_is_silent_when_turned_off_or_healthy():
    x, y = _argmax_data()
    with pytest.raises(CollapseError):
        _distiller(_collapsed()).fit(x, y, batch_size=32, epochs=1, verbose=0, collapse_guard="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _distiller(_collapsed()).fit(x, y, batch_size=32, epochs=1, verbose=0, collapse_guard=None)
        _distiller(_healthy()).fit(x, y, batch_size=32, epochs=1, verbose=0, collapse_guard="raise")


def test_the_guard_reads_the_validation_data_and_a_callback_of_ones_own_replaces_it():
    x, y = _argmax_data()
    val = (x[:48], np.zeros(48, np.int32))  # every label 0: the healthy student scores about 1/3, chance
    with pytest.raises(CollapseError):
        _distiller(_healthy()).fit(x, y, batch_size=32, epochs=1, verbose=0, validation_data=val, collapse_guard="raise")
    import tensorflow as tf

    mine = CollapseGuard(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), action="raise")
    _distiller(_healthy()).fit(x, y, batch_size=32, epochs=1, verbose=0, validation_data=val, callbacks=[mine])
    assert mine.diagnosis.accuracy == 1.0


@pytest.mark.slow
def test_the_missions_sgd_recipe_distils_with_the_default_clip_and_is_stopped_without_it():
    """benchmarks/recipes.py's SGD row in one epoch: 500 labels + 3,499 unlabeled images,
    a teacher_cnn trained 12 epochs on the labels, the BatchNormalization-free student_cnn
    distilled at T = 4 by SGD 0.1 / 0.9 / 5e-4 cosine (20-epoch schedule). Without a clip
    the student dies into one class in its first epoch and the guard names it; with
    kdtf's default clip for SGD (global norm 1.0) it learns."""
    from kdtf.data import keep_labels, load
    from kdtf.models import build
    from kdtf.optim import TrainingSettings, add_kernel_regularization, build_optimizer

    data = load("mnist5k", seed=0)
    x, y = data.x_train, keep_labels(data.y_train, 500, seed=0)
    keras.utils.set_random_seed(0)
    teacher = build("teacher_cnn", data.input_shape, 10)
    teacher.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x[y >= 0], y[y >= 0], batch_size=64, epochs=12, verbose=0)
    fields = dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4, lr_schedule="cosine")

    def distil(clip):  # clip 0: off (as before); None: kdtf's default for SGD
        recipe = TrainingSettings(**fields, clip_norm=clip)
        keras.utils.set_random_seed(1)
        student = add_kernel_regularization(build("student_cnn", data.input_shape, 10), *recipe.kernel_penalties)
        distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5)
        distiller.compile(build_optimizer(recipe, 63, 20))
        distiller.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_data=(data.x_val, data.y_val), collapse_guard="raise")
        return student

    with pytest.raises(CollapseError, match=r"student 'student'\): the model collapsed: accuracy .*lower the learning rate"):
        distil(0)
    healthy = distil(None)
    assert np.mean(healthy.predict(data.x_val, verbose=0).argmax(-1) == data.y_val) > 0.6
