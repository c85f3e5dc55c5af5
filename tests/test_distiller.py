import os

import numpy as np
import pytest
import tensorflow as tf

import kdtf
from kdtf import Distiller, keras

from helpers import CLASSES, INPUT_SHAPE, tiny_cnn


def numpy_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def compiled(distiller, lr=1e-2):
    distiller.compile(keras.optimizers.Adam(lr), metrics=["accuracy"])
    return distiller


def test_fit_updates_student_and_leaves_teacher_bit_identical(student, teacher, batch):
    x, y = batch
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    compiled(Distiller(student, teacher)).fit(x, y, batch_size=16, epochs=1, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    changed = [not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights())]
    assert all(changed)


def test_loss_equals_alpha_ce_plus_t2_kl_computed_in_numpy(student, teacher, batch):
    x, y = batch
    distiller = compiled(Distiller(student, teacher, temperature=3.0, alpha=0.3))
    logs = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    zs, zt = student.predict(x, verbose=0).astype(np.float64), teacher.predict(x, verbose=0).astype(np.float64)
    ce = -numpy_log_softmax(zs)[np.arange(len(y)), y].mean()
    lt, ls = numpy_log_softmax(zt / 3), numpy_log_softmax(zs / 3)
    kd = 9.0 * (np.exp(lt) * (lt - ls)).sum(-1).mean()
    np.testing.assert_allclose(logs["student_loss"], ce, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], kd, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.3 * ce + 0.7 * kd, rtol=1e-4)
    accuracy = np.mean(zs.argmax(-1) == y)
    np.testing.assert_allclose(logs["accuracy"], accuracy, atol=1e-6)


def test_sparse_and_one_hot_labels_give_the_same_losses(student, teacher, batch):
    x, y = batch
    def evaluate(labels):  # Keras resolves "accuracy" once per compile, so compile each time
        distiller = compiled(Distiller(student, teacher))
        return distiller.evaluate(x, labels, batch_size=64, return_dict=True, verbose=0)

    sparse, column, one_hot = evaluate(y), evaluate(y[:, None]), evaluate(np.eye(CLASSES, dtype=np.float32)[y])
    for logs in (column, one_hot):
        for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
            np.testing.assert_allclose(logs[key], sparse[key], rtol=1e-5)


def test_fit_logs_losses_metrics_and_validation(student, teacher, batch):
    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = compiled(Distiller(student, teacher)).fit(ds, validation_data=ds, epochs=2, verbose=0)
    assert set(history.history) == {
        "loss", "student_loss", "distillation_loss", "accuracy",
        "val_loss", "val_student_loss", "val_distillation_loss", "val_accuracy",
    }
    assert all(np.isfinite(v).all() for v in history.history.values())


def test_predict_returns_student_outputs(student, teacher, batch):
    x, _ = batch
    distiller = compiled(Distiller(student, teacher))
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)


def test_fit_without_labels_trains_on_distillation_alone(student, teacher, batch):
    x, _ = batch
    distiller = compiled(Distiller(student, teacher, alpha=0.5))
    history = distiller.fit(x, batch_size=16, epochs=3, verbose=0)
    assert history.history["student_loss"] == [0.0, 0.0, 0.0]
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(history.history["loss"], history.history["distillation_loss"])


def test_standard_callbacks_work(tmp_path, student, teacher, batch):
    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    ckpt = str(tmp_path / "ckpt" / "weights")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
        keras.callbacks.ModelCheckpoint(ckpt, save_weights_only=True, monitor="val_loss"),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
    ]
    distiller = compiled(Distiller(student, teacher))
    distiller.fit(ds, validation_data=ds, epochs=3, callbacks=callbacks, verbose=0)
    assert os.path.exists(ckpt + ".index")
    assert any("events" in name for _, _, files in os.walk(tmp_path / "tb") for name in files)
    # The checkpoint restores into a fresh Distiller and predicts the same.
    fresh = compiled(Distiller(tiny_cnn(4, 8, "student", seed=9), tiny_cnn(16, 32, "teacher", seed=8)))
    fresh.load_weights(ckpt).expect_partial()
    np.testing.assert_allclose(fresh.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-5)


def test_saved_student_reloads_and_predicts_the_same(tmp_path, student, teacher, batch):
    x, y = batch
    compiled(Distiller(student, teacher)).fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "student.keras")
    student.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)


def test_get_config_round_trips_hyperparameters(student, teacher):
    distiller = Distiller(student, teacher, temperature=2.5, alpha=0.25, name="d")
    clone = Distiller.from_config(distiller.get_config())
    assert (clone.temperature, clone.alpha, clone.name) == (2.5, 0.25, "d")
    assert clone.student.get_config() == student.get_config()
    assert clone.teacher.get_config() == teacher.get_config()
    assert clone.get_config() == distiller.get_config()


# -- bad input ----------------------------------------------------------------------
def test_rejects_output_shape_mismatch_naming_both_shapes(teacher):
    other = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Flatten(), keras.layers.Dense(7)], name="s7")
    with pytest.raises(ValueError, match=r"student 's7' outputs \(None, 7\), teacher 'teacher' outputs \(None, 4\)"):
        Distiller(other, teacher)


@pytest.mark.parametrize("temperature", [0, -2.0])
def test_rejects_non_positive_temperature(student, teacher, temperature):
    with pytest.raises(ValueError, match=f"Expected temperature > 0. Received: temperature={temperature}"):
        Distiller(student, teacher, temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.5", True])
def test_rejects_alpha_outside_unit_interval(student, teacher, alpha):
    with pytest.raises(ValueError, match=r"Expected alpha in \[0, 1\]. Received: alpha="):
        Distiller(student, teacher, alpha=alpha)


@pytest.mark.parametrize("bad", ["student.keras", None, keras.layers.Dense(4)])
def test_rejects_student_or_teacher_that_is_not_a_keras_model(student, teacher, bad):
    with pytest.raises(ValueError, match="Expected `student` to be a tf_keras Model"):
        Distiller(bad, teacher)
    with pytest.raises(ValueError, match="Expected `teacher` to be a tf_keras Model"):
        Distiller(student, bad)


def test_teacher_ending_in_dense_softmax_is_read_as_logits(student, batch):
    x, y = batch
    soft = tiny_cnn(16, 32, "soft_teacher", seed=1, final_activation="softmax")
    distiller = Distiller(student, soft)
    logits = distiller.teacher_logits.predict(x, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), soft.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
    plain = tiny_cnn(16, 32, "teacher", seed=1)  # same seed: same weights, no softmax
    np.testing.assert_allclose(logits, plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_teacher_ending_in_softmax_layer_shares_weights(student, teacher, batch):
    x, _ = batch
    wrapped = keras.Sequential([keras.Input(INPUT_SHAPE), teacher, keras.layers.Softmax()], name="wrapped")
    distiller = Distiller(student, wrapped)
    np.testing.assert_allclose(distiller.teacher_logits.predict(x, verbose=0), teacher.predict(x, verbose=0), rtol=1e-6)


def test_rejects_student_ending_in_dense_softmax(teacher):
    soft = tiny_cnn(4, 8, "soft_student", final_activation="softmax")
    with pytest.raises(ValueError, match="ends in layer 'logits' with activation='softmax'"):
        Distiller(soft, teacher)


def test_compile_rejects_a_loss(student, teacher):
    with pytest.raises(ValueError, match="Distiller.compile\\(\\) takes no loss"):
        Distiller(student, teacher).compile("adam", loss="mse")


def test_non_finite_loss_stops_training_with_a_message(student, teacher, batch):
    x, y = batch
    labels = np.eye(CLASSES, dtype=np.float32)[y]
    labels[20:] = np.nan  # the second batch of 16 holds the first NaN
    with pytest.raises(kdtf.NonFiniteLossError, match=r"loss became nan at epoch 1, batch 2.*lower the learning rate"):
        compiled(Distiller(student, teacher)).fit(x, labels, batch_size=16, epochs=2, shuffle=False, verbose=0)


def test_pruning_under_the_distiller_attaches_update_pruning_step(student, teacher, batch):
    x, y = batch
    pruned = kdtf.compress.prune(student, 0.5, schedule="constant", frequency=1)
    compiled(Distiller(pruned, teacher)).fit(x, y, batch_size=16, epochs=2, verbose=0)
    per_layer, _ = kdtf.compress.kernel_sparsity(kdtf.compress.strip_pruning(pruned))
    for name in ("conv", "fc", "logits"):
        assert per_layer[name] == pytest.approx(0.5, abs=0.01)
    # the model passed in keeps its dense weights
    assert kdtf.compress.kernel_sparsity(student)[1] < 0.01


# -- transfer-set distillation (unlabeled examples marked -1) --------------------------
def test_masked_loss_is_labelled_only_ce_plus_kd_over_all_examples(student, teacher, batch):
    x, y = batch
    masked = y.copy()
    masked[::3] = -1  # a third of the batch unlabeled
    labelled = masked >= 0
    distiller = compiled(Distiller(student, teacher, temperature=2.0, alpha=0.4))
    logs = distiller.evaluate(x, masked, batch_size=64, return_dict=True, verbose=0)
    zs, zt = student.predict(x, verbose=0).astype(np.float64), teacher.predict(x, verbose=0).astype(np.float64)
    ce = -numpy_log_softmax(zs)[np.arange(len(y)), y][labelled].mean()
    lt, ls = numpy_log_softmax(zt / 2), numpy_log_softmax(zs / 2)
    kd = 4.0 * (np.exp(lt) * (lt - ls)).sum(-1).mean()
    np.testing.assert_allclose(logs["student_loss"], ce, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], kd, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.4 * ce + 0.6 * kd, rtol=1e-4)
    np.testing.assert_allclose(logs["accuracy"], np.mean(zs.argmax(-1)[labelled] == y[labelled]), atol=1e-6)
    one_hot = np.eye(CLASSES, dtype=np.float32)[y]
    one_hot[~labelled] = 0
    logs_one_hot = compiled(Distiller(student, teacher, temperature=2.0, alpha=0.4)).evaluate(
        x, one_hot, batch_size=64, return_dict=True, verbose=0)
    np.testing.assert_allclose(logs_one_hot["loss"], logs["loss"], rtol=1e-5)


@pytest.mark.slow
def test_all_unlabeled_batches_train_on_distillation_alone(student, teacher, batch):
    x, _ = batch
    unlabeled = np.full(len(x), -1, np.int32)
    before = [w.copy() for w in student.get_weights()]
    history = compiled(Distiller(student, teacher)).fit(x, unlabeled, batch_size=16, epochs=2, verbose=0)
    assert history.history["student_loss"] == [0.0, 0.0]
    assert all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(before[0], student.get_weights()[0])


# -- sample weights and the losses' reduction -----------------------------------------
def test_sample_weights_weight_ce_among_labelled_and_kd_over_the_batch(student, teacher, batch):
    x, y = batch
    masked = y.copy()
    masked[::4] = -1
    w = np.random.default_rng(3).uniform(0.2, 2.0, size=len(y)).astype(np.float32)
    logs = compiled(Distiller(student, teacher, temperature=2.0, alpha=0.3)).evaluate(
        x, masked, sample_weight=w, batch_size=64, return_dict=True, verbose=0)
    zs, zt = student.predict(x, verbose=0).astype(np.float64), teacher.predict(x, verbose=0).astype(np.float64)
    labelled = masked >= 0
    ce_each = -numpy_log_softmax(zs)[np.arange(len(y)), y]
    ce = np.sum((ce_each * w)[labelled]) / labelled.sum()  # weighted sum over labelled / their count
    lt, ls = numpy_log_softmax(zt / 2), numpy_log_softmax(zs / 2)
    kd = np.mean(w * 4.0 * (np.exp(lt) * (lt - ls)).sum(-1))
    np.testing.assert_allclose(logs["student_loss"], ce, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], kd, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.3 * ce + 0.7 * kd, rtol=1e-4)


def test_sample_weights_change_training(student, teacher, batch):
    x, y = batch
    clone = keras.models.clone_model(student)
    clone.set_weights(student.get_weights())
    w = np.zeros(len(y), np.float32)
    w[:8] = 1.0  # only 8 examples count
    compiled(Distiller(student, teacher)).fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    compiled(Distiller(clone, tiny_cnn(16, 32, "teacher", seed=1))).fit(
        x, y, sample_weight=w, batch_size=64, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(student.get_weights()[0], clone.get_weights()[0])


def test_the_distiller_honours_a_terms_reduction(student, teacher, batch):
    x, y = batch
    logs = []
    for reduction in ("sum_over_batch_size", "sum"):
        distiller = Distiller(student, teacher, distill=[kdtf.TermSpec("kd", options={"reduction": reduction})])
        distiller.compile("adam")
        logs.append(distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0))
    np.testing.assert_allclose(logs[1]["distillation_loss"], len(x) * logs[0]["distillation_loss"], rtol=1e-5)


def test_spec_object_or_fields_but_not_both(student, teacher):
    spec = kdtf.DistillSpec(temperature=2.0, alpha=0.2, terms="kd")
    assert Distiller(student, teacher, spec).temperature == 2.0
    with pytest.raises(ValueError, match="Pass either spec= or its fields"):
        Distiller(student, teacher, spec, temperature=3.0)


# -- the keras.Model contract -----------------------------------------------------------
def test_summary_lists_student_adapters_and_frozen_teacher(student, teacher, batch):
    lines = []
    distiller = compiled(Distiller(student, teacher, distill="kd,fitnets:0.5@fc/fc"))
    distiller.summary(print_fn=lines.append)  # before fit: built from the start
    distiller.fit(*batch, epochs=1, verbose=0)
    lines.clear()
    distiller.summary(print_fn=lines.append)
    text = "\n".join(lines)
    adapter = 8 * 32 + 32
    assert f"Trainable params: {student.count_params() + adapter:,} (student and adapters)" in text
    assert f"Non-trainable params: {teacher.count_params():,}" in text and "teacher" in text and "(frozen)" in text


@pytest.mark.slow
def test_keras_file_reloads_compiled_with_its_terms_and_optimizer_state(tmp_path, student, teacher, batch):
    x, y = batch
    distiller = compiled(Distiller(student, teacher, temperature=2.0, alpha=0.3, distill="kd,fitnets:0.5@fc/fc"))
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    again = keras.models.load_model(path)
    assert again.optimizer is not None and int(again.optimizer.iterations) == int(distiller.optimizer.iterations) == 4
    before = distiller.evaluate(x, y, return_dict=True, verbose=0)
    after = again.evaluate(x, y, return_dict=True, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss", "kd_loss", "fitnets_loss", "accuracy"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5)
    np.testing.assert_allclose(again.optimizer.variables()[1].numpy(), distiller.optimizer.variables()[1].numpy())
    history = again.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and int(again.optimizer.iterations) == 8


@pytest.mark.parametrize("path", ["distiller_savedmodel", "distiller.h5"])
def test_formats_that_would_lose_the_losses_are_refused_with_the_fix(tmp_path, student, teacher, path):
    with pytest.raises(ValueError, match=r"saves as a \.keras file.*distiller\.student\.save"):
        Distiller(student, teacher).save(str(tmp_path / path))


def test_evaluate_without_labels_reports_the_distillation_terms_only(student, teacher, batch):
    logs = compiled(Distiller(student, teacher)).evaluate(batch[0], return_dict=True, verbose=0)
    assert set(logs) == {"loss", "student_loss", "distillation_loss"} and logs["distillation_loss"] > 0


def test_backup_and_restore_gives_no_warning(tmp_path, student, teacher, batch, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        compiled(Distiller(student, teacher)).fit(
            *batch, epochs=1, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert "must be built" not in caplog.text


def test_keras3_models_are_converted_and_distilled(teacher, batch):
    import keras as keras3

    k3 = keras3.Sequential([keras3.Input(INPUT_SHAPE), keras3.layers.Flatten(), keras3.layers.Dense(8, activation="relu"),
                            keras3.layers.Dense(CLASSES)], name="k3_student")
    distiller = compiled(Distiller(k3, teacher))
    assert isinstance(distiller.student, keras.Model) and distiller.student.name == "k3_student"
    np.testing.assert_allclose(distiller.student.predict(batch[0], verbose=0), k3.predict(batch[0], verbose=0), atol=1e-5)
    assert np.isfinite(distiller.fit(*batch, epochs=1, verbose=0).history["loss"][0])
    back = kdtf.to_keras3(distiller.student)
    np.testing.assert_allclose(back.predict(batch[0], verbose=0), distiller.student.predict(batch[0], verbose=0), atol=1e-5)


def test_a_distiller_of_keras3_models_saves_reloads_compiled_and_fits_again(tmp_path, batch):
    import keras as keras3

    x, y = batch
    make = lambda width, name: keras3.Sequential([keras3.Input(INPUT_SHAPE), keras3.layers.Conv2D(width, 3, activation="relu"),
                                                  keras3.layers.Flatten(), keras3.layers.Dense(CLASSES)], name=name)
    distiller = compiled(Distiller(make(4, "k3_student"), make(16, "k3_teacher"), temperature=3.0))
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.save(str(tmp_path / "k3.keras"))
    again = keras.models.load_model(str(tmp_path / "k3.keras"))
    before, after = (d.evaluate(x, y, return_dict=True, verbose=0) for d in (distiller, again))
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5)
    assert again.temperature == 3.0 and np.isfinite(again.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0])
