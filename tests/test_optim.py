"""kdtf.optim: optimizers, schedules and kernel regularisation against numpy references."""

import dataclasses
import functools
import math
import os
import types

import numpy as np
import pytest
import yaml

import kdtf
from kdtf import compress, keras
from kdtf._keras import tf
from kdtf.optim import OPTIMIZERS, SCHEDULES, TrainingSettings, add_kernel_regularization, build_optimizer

from helpers import CLASSES, INPUT_SHAPE, tiny_cnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW_CONFIG_KEYS = {"optimizer", "momentum", "weight_decay", "lr_schedule", "warmup_epochs", "l1"}


def reference_rate(step, lr, total, warmup, schedule, milestones=(0.5, 0.75), gamma=0.1):
    """The closed-form schedule, written independently of the TF code."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / (total - warmup))
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return lr * gamma ** sum(step >= round(m * total) for m in milestones)
    return lr


def _dense_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.normal(size=(8, 3)).astype(np.float32)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, bias_initializer="ones", name="dense")])
    return model, x, y


def _mse_gradients(kernel, bias, x, y):
    error = x @ kernel + bias - y
    scale = 2.0 / error.size
    return scale * x.T @ error, scale * error.sum(0)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_and_schedule_trains_a_few_steps(optimizer, schedule):
    recipe = TrainingSettings(optimizer=optimizer, learning_rate=0.05, weight_decay=1e-3, lr_schedule=schedule, warmup_epochs=1, l1=1e-4)
    model = add_kernel_regularization(tiny_cnn(4, 8, "student"), *recipe.kernel_penalties)
    rng = np.random.default_rng(0)
    x, y = rng.random((16,) + INPUT_SHAPE, np.float32), rng.integers(0, CLASSES, 16)
    before = [w.copy() for w in model.get_weights()]
    model.compile(build_optimizer(recipe, steps_per_epoch=2, epochs=2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 4
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_applied_learning_rate_follows_the_closed_form_schedule(schedule):
    # SGD without momentum on a constant gradient of 1 moves the variable by -lr(step).
    recipe = TrainingSettings(optimizer="sgd", momentum=0.0, learning_rate=0.2, lr_schedule=schedule, warmup_epochs=1)
    optimizer = build_optimizer(recipe, steps_per_epoch=5, epochs=4)
    variable = tf.Variable(0.0)
    applied = []
    for _ in range(20):
        start = float(variable.numpy())
        optimizer.apply_gradients([(tf.constant(1.0), variable)])
        applied.append(start - float(variable.numpy()))
    expected = [reference_rate(s, 0.2, 20, 5, schedule) for s in range(20)]
    np.testing.assert_allclose(applied, expected, rtol=1e-4, atol=1e-6)  # float32 differences
    close = functools.partial(pytest.approx, rel=1e-4)
    assert applied[0] == close(0.04) and applied[4] == close(0.2)  # warm-up 1/5 ... 5/5
    if schedule == "cosine":
        assert applied[5 + 7] == close(0.2 * 0.5 * (1 + math.cos(math.pi * 7 / 15)))
    if schedule == "step":  # x0.1 from step 10 (50 %), x0.01 from step 15 (75 %)
        assert applied[9] == close(0.2) and applied[10] == close(0.02) and applied[15] == close(0.002)


def test_default_recipe_is_plain_adam_at_a_constant_rate():
    optimizer = build_optimizer(TrainingSettings(), steps_per_epoch=3, epochs=2)
    assert type(optimizer) is keras.optimizers.Adam
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_sgd_weight_decay_equals_an_explicit_l2_term_over_two_steps():
    lr, momentum, decay = 0.1, 0.9, 5e-4
    recipe = TrainingSettings(optimizer="sgd", learning_rate=lr, momentum=momentum, weight_decay=decay, clip_norm=0)
    model, x, y = _dense_problem()
    add_kernel_regularization(model, *recipe.kernel_penalties)
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    model.compile(build_optimizer(recipe, steps_per_epoch=1, epochs=2), "mse")
    velocity_k, velocity_b = np.zeros_like(kernel), np.zeros_like(bias)
    for _ in range(2):
        model.train_on_batch(x, y)
        grad_k, grad_b = _mse_gradients(kernel, bias, x, y)
        velocity_k = momentum * velocity_k - lr * (grad_k + decay * kernel)  # PyTorch-style weight decay
        velocity_b = momentum * velocity_b - lr * grad_b  # biases are not decayed
        kernel, bias = kernel + velocity_k, bias + velocity_b
    np.testing.assert_allclose(model.get_weights()[0], kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], bias, rtol=1e-5, atol=1e-6)


def test_adamw_decay_is_decoupled_from_the_adam_moments():
    lr, decay, beta_1, beta_2, eps = 0.01, 0.1, 0.9, 0.999, 1e-7
    recipe = TrainingSettings(optimizer="adamw", learning_rate=lr, weight_decay=decay)
    assert recipe.kernel_penalties == (0.0, 0.0)  # nothing is added to the loss
    model, x, y = _dense_problem()
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    model.compile(build_optimizer(recipe, steps_per_epoch=1, epochs=1), "mse")
    model.train_on_batch(x, y)

    def adam_step(weight, grad):
        m, v = (1 - beta_1) * grad, (1 - beta_2) * grad**2
        return weight - lr * math.sqrt(1 - beta_2) / (1 - beta_1) * m / (np.sqrt(v) + eps)

    grad_k, grad_b = _mse_gradients(kernel, bias, x, y)
    expected_kernel = adam_step(kernel * (1 - lr * decay), grad_k)  # decay outside the moments
    np.testing.assert_allclose(model.get_weights()[0], expected_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], adam_step(bias, grad_b), rtol=1e-5, atol=1e-6)
    coupled = adam_step(kernel, grad_k + decay * kernel)  # L2 through Adam: a different step
    assert np.max(np.abs(coupled - expected_kernel)) > 1e-4


def test_kernel_penalty_equals_numpy_and_survives_pruning_qat_and_cloning_once():
    model = add_kernel_regularization(tiny_cnn(4, 8, "student"), l1=1e-3, l2=1e-2)
    found = compress.kernels(model)
    expected = sum(1e-3 * np.abs(k).sum() + 1e-2 * np.square(k).sum() for k in found.values())
    assert len(model.losses) == len(found) == 3
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    for copy in (compress.prune(model, 0.5), compress.quantize(model), compress.clone_with_weights(model)):
        assert len(copy.losses) == 3
        assert float(sum(copy.losses)) == pytest.approx(expected, rel=1e-5)
    add_kernel_regularization(model, l1=1e-3, l2=1e-2)  # same factors: nothing added
    assert len(model.losses) == 3
    with pytest.raises(ValueError, match="Layer 'conv' already has a kernel_regularizer"):
        add_kernel_regularization(model, l2=0.5)


def test_distiller_objective_includes_the_kernel_penalty():
    # One SGD step with and without L2 differs by exactly -lr * 2 * l2 * w on kernels.
    teacher = tiny_cnn(8, 16, "teacher", seed=1)
    rng = np.random.default_rng(0)
    x, y = rng.random((8,) + INPUT_SHAPE, np.float32), rng.integers(0, CLASSES, 8)
    recipe = TrainingSettings(optimizer="sgd", learning_rate=0.1, momentum=0.0, clip_norm=0)
    updated = []
    for l2 in (0.0, 0.05):
        student = add_kernel_regularization(tiny_cnn(4, 8, "student"), l2=l2)
        distiller = kdtf.Distiller(student, teacher, temperature=2.0, alpha=0.5)
        distiller.compile(build_optimizer(recipe, steps_per_epoch=1, epochs=1))
        start = tiny_cnn(4, 8, "start").get_weights()
        distiller.train_on_batch(x, y)
        updated.append(student.get_weights())
    kernel = start[0]
    np.testing.assert_allclose(updated[1][0] - updated[0][0], -0.1 * 2 * 0.05 * kernel, atol=1e-6)
    np.testing.assert_allclose(updated[1][1], updated[0][1], atol=1e-7)  # the bias is not penalised


def test_cosine_sgd_fine_tunes_a_pruned_student_under_the_distiller_and_checkpoints(tmp_path):
    recipe = TrainingSettings(optimizer="sgd", learning_rate=0.05, weight_decay=5e-4, lr_schedule="cosine")
    student = compress.prune(add_kernel_regularization(tiny_cnn(4, 8, "student"), *recipe.kernel_penalties), 0.5)
    assert len(student.losses) == 3
    distiller = kdtf.Distiller(student, tiny_cnn(8, 16, "teacher", seed=1))
    distiller.compile(build_optimizer(recipe, steps_per_epoch=2, epochs=2), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((16,) + INPUT_SHAPE, np.float32), rng.integers(0, CLASSES, 16)
    distiller.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert int(distiller.optimizer.iterations) == 4
    # The optimizer state (step, hence the schedule position, and momentum) checkpoints.
    saved = tf.train.Checkpoint(optimizer=distiller.optimizer).save(str(tmp_path / "ckpt"))
    fresh = build_optimizer(recipe, steps_per_epoch=2, epochs=2)
    fresh.build(distiller.trainable_student_variables)
    tf.train.Checkpoint(optimizer=fresh).restore(saved).assert_existing_objects_matched()
    assert int(fresh.iterations) == 4
    # the rate of the last step taken (step 3 of 0..3) comes back with it
    assert float(fresh.learning_rate) == pytest.approx(reference_rate(3, 0.05, 4, 0, "cosine"), rel=1e-6)


@pytest.mark.slow
def test_byol_objective_includes_the_encoder_kernel_penalty():
    from kdtf.ssl import BYOL

    rng = np.random.default_rng(0)
    views = (rng.random((8,) + INPUT_SHAPE, np.float32), rng.random((8,) + INPUT_SHAPE, np.float32))
    updated = []
    for l2 in (0.0, 0.05):
        keras.utils.set_random_seed(0)
        encoder = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.GlobalAveragePooling2D()])
        start = encoder.get_weights()[0]
        byol = BYOL(add_kernel_regularization(encoder, l2=l2), projection_dim=4, hidden_dim=8)
        byol.compile(build_optimizer(TrainingSettings(optimizer="sgd", learning_rate=0.1, momentum=0.0, clip_norm=0), steps_per_epoch=1, epochs=1))
        byol.train_on_batch(views)
        updated.append(encoder.get_weights()[0])
    np.testing.assert_allclose(updated[1] - updated[0], -0.1 * 2 * 0.05 * start, atol=1e-6)


@pytest.mark.parametrize(
    ("settings", "flag", "value"),
    [
        ({"optimizer": "rmsprop"}, "--optimizer", "'rmsprop'"),
        ({"lr_schedule": "linear"}, "--lr-schedule", "'linear'"),
        ({"weight_decay": -5e-4}, "--weight-decay", "-0.0005"),
        ({"learning_rate": 0.0}, "--lr", "0.0"),
        ({"momentum": 1.0}, "--momentum", "1.0"),
        ({"l1": -1e-5}, "--l1", "-1e-05"),
        ({"warmup_epochs": -1}, "--warmup-epochs", "-1"),
        ({"warmup_epochs": 1.5}, "--warmup-epochs", "1.5"),
        ({"weight_decay": float("nan")}, "--weight-decay", "nan"),
    ],
)
def test_bad_setting_gives_one_line_naming_the_flag_and_the_value(settings, flag, value):
    with pytest.raises(ValueError) as error:
        TrainingSettings(**settings)
    message = str(error.value)
    assert f"Received: {flag} {value}" in message and "\n" not in message


def test_warmup_as_long_as_the_stage_is_refused():
    with pytest.raises(ValueError, match=r"below the 3 epochs of --epochs\. Received: --warmup-epochs 3$"):
        build_optimizer(TrainingSettings(warmup_epochs=3), steps_per_epoch=10, epochs=3)
    with pytest.raises(ValueError, match=r"Received: --lr -1"):
        build_optimizer(TrainingSettings(), steps_per_epoch=10, epochs=3, learning_rate=-1)


def test_recipe_from_config_reads_the_config_keys():
    config = types.SimpleNamespace(optimizer="adamw", learning_rate=3e-4, weight_decay=0.05, epochs=7, dataset="digits")
    recipe = TrainingSettings.from_config(config)
    assert (recipe.optimizer, recipe.learning_rate, recipe.weight_decay, recipe.lr_schedule) == ("adamw", 3e-4, 0.05, "constant")
    assert dataclasses.replace(recipe, warmup_epochs=2).warmup_epochs == 2


def test_cifar10_resnet_yaml_holds_the_mission_recipe():
    from kdtf.pipeline import DistillConfig

    with open(os.path.join(ROOT, "configs", "cifar10_resnet.yaml")) as f:
        values = yaml.safe_load(f)
    known = {field.name for field in dataclasses.fields(DistillConfig)} | NEW_CONFIG_KEYS
    assert set(values) <= known, sorted(set(values) - known)
    assert values["dataset"] == "tfds:cifar10" and values["labels"] == 0
    assert (values["temperature"], values["alpha"]) == (5.0, 0.5)
    assert (values["teacher"], values["student"]) == ("resnet50", "resnet18_cifar")
    assert values["student"] in kdtf.models.names() and kdtf.models.is_backbone(values["teacher"])
    recipe = TrainingSettings.from_config(types.SimpleNamespace(**values))
    assert (recipe.optimizer, recipe.learning_rate, recipe.momentum, recipe.weight_decay, recipe.lr_schedule) == (
        "sgd", 0.1, 0.9, 5e-4, "cosine"
    )
    for stage in ("teacher_epochs", "epochs", "prune_epochs", "qat_epochs"):
        recipe.check_epochs(values[stage], f"--{stage.replace('_', '-')}")
