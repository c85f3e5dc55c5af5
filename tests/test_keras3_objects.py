"""Keras 3 optimizers, metrics, losses and callbacks handed to kdtf: rebuilt as their
tf_keras twins when exact, else refused in one line naming the replacement."""

import numpy as np
import pytest

import kdtf
from kdtf import Distiller, keras, keras3_objects

keras3 = pytest.importorskip("keras")  # the standalone Keras 3 package


def test_a_keras3_optimizer_becomes_the_same_tf_keras_optimizer():
    converted = keras3_objects.optimizer(keras3.optimizers.Adam(learning_rate=0.01, beta_1=0.8, amsgrad=True, clipnorm=1.0))
    assert isinstance(converted, keras.optimizers.Adam)
    config = converted.get_config()
    assert (config["beta_1"], config["amsgrad"], config["clipnorm"]) == (0.8, True, 1.0)
    np.testing.assert_allclose(config["learning_rate"], 0.01)


def test_the_distiller_compiles_and_fits_with_keras3_optimizer_metric_and_callback(student, teacher, batch):
    x, y = batch
    distiller = Distiller(student, teacher)
    distiller.compile(keras3.optimizers.SGD(0.05, momentum=0.9), metrics=[keras3.metrics.SparseCategoricalAccuracy(name="acc")])
    stop = keras3.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # stops after the 2nd epoch
    history = distiller.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[stop])
    assert isinstance(distiller.optimizer, keras.optimizers.SGD) and "acc" in history.history
    assert len(history.history["loss"]) == 2


def test_a_keras3_loss_trains_a_plain_student_through_kdtf_training(student, batch):
    x, y = batch
    loss = keras3.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert isinstance(keras3_objects.loss(loss), keras.losses.SparseCategoricalCrossentropy)
    history = kdtf.training.fit(student, kdtf.training.as_dataset((x, y), 16), epochs=2, optimizer=keras3.optimizers.Adam(1e-2), loss=loss)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("make, message", [
    (lambda: keras3.optimizers.Adam(keras3.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
     r"Keras 3 optimizer Adam \(its learning_rate is an object \(ExponentialDecay\)\). Use keras.optimizers.Adam"),
    (lambda: keras3.optimizers.Adam(gradient_accumulation_steps=2),
     r"its setting gradient_accumulation_steps=2 has no tf_keras equivalent\). Use keras.optimizers.Adam"),
    (lambda: keras3.optimizers.Lamb(), r"Keras 3 optimizer Lamb \(tf_keras has no class of that name\)"),
])
def test_keras3_optimizers_without_an_exact_twin_are_refused_naming_the_replacement(make, message):
    with pytest.raises(ValueError, match=message):
        keras3_objects.optimizer(make())


def test_a_keras3_callback_that_cannot_be_read_back_is_refused_naming_the_replacement(student, teacher, batch, tmp_path):
    checkpoint = keras3.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match=r"Keras 3 callback ModelCheckpoint .* Use keras.callbacks.ModelCheckpoint instead"):
        Distiller(student, teacher).fit(*batch, epochs=1, verbose=0, callbacks=[checkpoint])


def test_keras_io_compile_keywords_point_to_the_constructor(student, teacher):
    with pytest.raises(ValueError, match=r"takes no student_loss_fn, distillation_loss_fn, alpha, temperature: .*"
                                         r"kdtf.Distiller\(student, teacher, temperature=\.\.\., alpha=\.\.\."):
        Distiller(student, teacher).compile(optimizer="adam", student_loss_fn=keras3.losses.SparseCategoricalCrossentropy(),
                                            distillation_loss_fn=keras3.losses.KLDivergence(), alpha=0.1, temperature=10)


def test_tf_keras_objects_and_strings_pass_through_untouched():
    adam = keras.optimizers.Adam()
    assert keras3_objects.optimizer(adam) is adam and keras3_objects.optimizer("adam") == "adam"
    assert keras3_objects.metrics(["accuracy"]) == ["accuracy"] and keras3_objects.callbacks(None) == []
