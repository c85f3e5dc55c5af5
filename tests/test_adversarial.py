import numpy as np
import pytest
import tensorflow as tf

import kdtf
from kdtf import keras
from kdtf.adversarial import AdversarialDistiller, discriminator_mlp


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softplus(v):
    return np.logaddexp(0.0, v)


def numpy_discriminator(weights, p):
    h = p
    for i in range(0, len(weights) - 2, 2):
        h = np.maximum(h @ weights[i] + weights[i + 1], 0.0)
    return (h @ weights[-2] + weights[-1])[:, 0]


def compiled(distiller, lr=1e-2):
    distiller.compile(keras.optimizers.Adam(lr), metrics=["accuracy"])
    return distiller


def test_losses_equal_the_bce_game_on_softmax_outputs_computed_in_numpy(student, teacher, batch):
    x, y = batch
    distiller = compiled(AdversarialDistiller(student, teacher, temperature=2.0, alpha=0.4, adversarial_weight=0.3,
                                              discriminator_units=[8, 6]))
    plain = compiled(kdtf.Distiller(student, teacher, temperature=2.0, alpha=0.4))
    logs = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    base = plain.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    weights = [w.astype(np.float64) for w in distiller.discriminator.get_weights()]
    ds = numpy_discriminator(weights, softmax(student.predict(x, verbose=0).astype(np.float64)))
    dt = numpy_discriminator(weights, softmax(teacher.predict(x, verbose=0).astype(np.float64)))
    adversarial = softplus(-ds).mean()
    np.testing.assert_allclose(logs["adversarial_loss"], adversarial, rtol=1e-4)
    np.testing.assert_allclose(logs["discriminator_loss"], 0.5 * (softplus(-dt).mean() + softplus(ds).mean()), rtol=1e-4)
    np.testing.assert_allclose(logs["discriminator_accuracy"], np.concatenate([dt > 0, ds <= 0]).mean(), atol=1e-6)
    np.testing.assert_allclose(logs["loss"], base["loss"] + 0.3 * adversarial, rtol=1e-4)
    for key in ("student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(logs[key], base[key], rtol=1e-5)


def test_the_students_optimizer_never_moves_the_discriminator(student, teacher, batch):
    x, y = batch
    frozen_d = AdversarialDistiller(student, teacher, discriminator_optimizer=keras.optimizers.SGD(0.0))
    d_before = [w.copy() for w in frozen_d.discriminator.get_weights()]
    s_before = [w.copy() for w in student.get_weights()]
    compiled(frozen_d).fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(d_before, frozen_d.discriminator.get_weights()):  # the student's optimizer never moves D
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(s_before, student.get_weights()))


@pytest.mark.slow
def test_the_discriminator_learns_on_its_own_optimizer_while_a_frozen_student_stays_put(student, teacher, batch):
    x, y = batch
    s_before = [w.copy() for w in student.get_weights()]
    t_before = [w.copy() for w in teacher.get_weights()]
    frozen_s = AdversarialDistiller(student, teacher, discriminator_optimizer=keras.optimizers.Adam(3e-2))
    frozen_s.compile(keras.optimizers.SGD(0.0))
    first = frozen_s.evaluate(x, y, return_dict=True, verbose=0)["discriminator_loss"]
    frozen_s.fit(x, y, batch_size=16, epochs=5, verbose=0)  # 20 discriminator steps
    for a, b in zip(s_before + t_before, student.get_weights() + teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert frozen_s.evaluate(x, y, return_dict=True, verbose=0)["discriminator_loss"] < first - 0.05
    assert int(frozen_s.discriminator_optimizer.iterations) == 20


def test_cached_teacher_outputs_give_the_same_losses(student, teacher, batch):
    x, y = batch
    distiller = compiled(AdversarialDistiller(student, teacher, adversarial_weight=0.5))
    direct = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    cached = distiller.evaluate(distiller.cached_dataset(x, y, batch_size=64, shuffle=False), return_dict=True, verbose=0)
    for key in ("loss", "adversarial_loss", "discriminator_loss", "distillation_loss"):
        np.testing.assert_allclose(cached[key], direct[key], rtol=1e-5)


@pytest.mark.slow
def test_discriminator_and_its_optimizer_state_survive_save_and_reload(tmp_path, student, teacher, batch):
    x, y = batch
    distiller = compiled(AdversarialDistiller(student, teacher, adversarial_weight=0.5, discriminator_units=[12],
                                              discriminator_optimizer={"class_name": "Adam", "config": {"learning_rate": 0.005}}))
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "adversarial.keras")
    distiller.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again, AdversarialDistiller) and again.adversarial_weight == 0.5 and again.discriminator_units == (12,)
    assert int(again.discriminator_optimizer.iterations) == int(distiller.discriminator_optimizer.iterations) == 4
    np.testing.assert_allclose(float(again.discriminator_optimizer.learning_rate), 0.005)
    saved = distiller.discriminator_optimizer.variables()
    assert len(saved) == 1 + 2 * len(distiller.discriminator.trainable_variables)  # step, then Adam's moments
    for a, b in zip(saved, again.discriminator_optimizer.variables()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(distiller.discriminator.get_weights(), again.discriminator.get_weights()):
        np.testing.assert_array_equal(a, b)
    before, after = (d.evaluate(x, y, return_dict=True, verbose=0) for d in (distiller, again))
    for key in ("loss", "adversarial_loss", "discriminator_loss", "accuracy"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5)
    again.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(again.discriminator_optimizer.iterations) == 8 and int(again.optimizer.iterations) == 8


def test_the_default_discriminator_follows_meal_v2_widths_at_least_16():
    assert [layer.units for layer in discriminator_mlp(10).layers] == [16, 16, 1]
    assert [layer.units for layer in discriminator_mlp(1000).layers] == [500, 250, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"adversarial_weight": -0.1}, r"Expected adversarial_weight >= 0\. Received: adversarial_weight=-0\.1"),
    ({"discriminator_units": [8, 0]}, r"Expected discriminator_units to be a list of positive integers\. Received"),
    ({"discriminator_units": []}, r"at least one hidden width"),
    ({"discriminator_optimizer": "nonsense"}, r"Expected discriminator_optimizer to be a Keras optimizer.*'nonsense'"),
    ({"discriminator_optimizer": 0.0}, r"Expected discriminator_optimizer > 0"),
    ({"temperature": 0}, r"Expected temperature > 0\. Received: temperature=0"),
])
def test_bad_arguments_are_refused_in_one_line(student, teacher, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialDistiller(student, teacher, **kwargs)


def test_summary_lists_the_discriminator_and_its_optimizer(student, teacher):
    lines = []
    distiller = AdversarialDistiller(student, teacher, discriminator_units=[8])
    distiller.summary(print_fn=lines.append)
    params = (4 * 8 + 8) + (8 + 1)
    assert any("discriminator" in line and f"{params:,} params" in line and "Adam" in line for line in lines)


def test_the_discriminator_reads_the_teacher_outputs_the_terms_read_without_a_second_pass(student, teacher, batch):
    x, y = batch
    distiller = AdversarialDistiller(student, teacher)
    distiller.teacher_logits_views = []  # a second teacher pass would have no teacher to run
    losses, adversarial, teacher_p, _ = distiller._adversarial_losses(tf.constant(x), tf.constant(y), None, False)
    np.testing.assert_allclose(teacher_p.numpy(), softmax(teacher.predict(x, verbose=0).astype(np.float64)), atol=1e-5)
    assert np.isfinite(float(adversarial)) and np.isfinite(float(losses.total))
