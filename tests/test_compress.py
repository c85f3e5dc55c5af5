"""Pruning and QAT wrappers: layer choice, bad input, what survives export."""

import numpy as np
import pytest

from kdtf import compress, export, keras
from kdtf.training import FineTuner

from helpers import INPUT_SHAPE


def test_prune_skips_small_layers_by_min_weights(student):
    # conv: 36 weights, fc: 128, logits: 32
    pruned = compress.prune(student, 0.5, min_weights=100)
    wrapped = [layer.name for layer in pruned.layers if "prune_low_magnitude" in layer.name]
    assert wrapped == ["prune_low_magnitude_fc"]


def test_prune_by_name_and_skip(student):
    pruned = compress.prune(student, 0.5, layers=["conv", "fc"], skip=["fc"])
    assert [layer.name for layer in pruned.layers if "prune" in layer.name] == ["prune_low_magnitude_conv"]


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, "0.5"])
def test_prune_rejects_sparsity_outside_unit_interval(student, sparsity):
    with pytest.raises(ValueError, match=r"Expected sparsity in \[0, 1\)"):
        compress.prune(student, sparsity)


def test_prune_rejects_unknown_layer_names_listing_the_real_ones(student):
    with pytest.raises(ValueError, match=r"Unknown layer name\(s\) in `layers`: \['fc9'\].*'conv'"):
        compress.prune(student, 0.5, layers=["fc9"])


def test_prune_rejects_subclassed_models():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="cannot be wrapped by TF-MOT: rebuild it as a Sequential or Functional"):
        compress.prune(model, 0.5)


@pytest.mark.slow
def test_quantize_folds_conv_batchnorm_relu_and_exports_int8():
    inputs = keras.Input(INPUT_SHAPE)
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(h))
    qat = compress.quantize(keras.Model(inputs, outputs))
    assert compress.is_quantized(qat)
    x = np.random.default_rng(0).random((8,) + INPUT_SHAPE, dtype=np.float32)
    qat(x, training=True)  # ranges from one batch
    flatbuffer = export.to_tflite(qat, "int8")
    assert export.list_ops(flatbuffer) == ["CONV_2D", "FULLY_CONNECTED", "RESHAPE"]


def test_quantize_names_an_unsupported_layer_and_the_fix():
    inputs = keras.Input((4,))
    odd = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(odd))
    with pytest.raises(ValueError, match=r"cannot quantize layer\(s\) 'doubler' \(Lambda\).*skip=\['doubler'\]"):
        compress.quantize(model)
    assert compress.is_quantized(compress.quantize(model, skip=["doubler"]))


@pytest.mark.slow
def test_pqat_keeps_pruned_zeros_through_qat_and_tflite(student, batch):
    x, y = batch
    pruned = compress.prune(student, 0.75, schedule="constant", frequency=1, layers=["fc"])
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=compress.pruning_callbacks())
    stripped = compress.strip_pruning(pruned)
    assert compress.kernel_sparsity(stripped)[0]["fc"] == pytest.approx(0.75, abs=0.01)
    qat = compress.quantize(stripped, preserve="sparsity")
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert compress.kernel_sparsity(qat)[0]["quant_fc"] == pytest.approx(0.75, abs=0.01)
    per_tensor, _ = export.weight_sparsity(export.to_tflite(qat, "int8"), min_size=64)
    fc = [v for k, v in per_tensor.items() if "quant_fc/" in k]
    assert fc and fc[0] == pytest.approx(0.75, abs=0.01)


def test_quantize_refuses_a_model_still_wrapped_for_pruning(student):
    with pytest.raises(ValueError, match="still holds pruning wrappers"):
        compress.quantize(compress.prune(student, 0.5))


# -- clustering ----------------------------------------------------------------------
def test_cluster_then_strip_leaves_at_most_k_values_per_kernel(student, batch):
    x, y = batch
    clustered = compress.cluster(student, 4, layers=["fc"])
    clustered.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clustered.fit(x, y, epochs=1, verbose=0)
    stripped = compress.strip_clustering(clustered)
    assert compress.unique_weights(stripped)["fc"] <= 4
    assert compress.unique_weights(stripped)["conv"] > 4  # not chosen, left alone


@pytest.mark.parametrize("clusters", [1, 0, 2.5, True])
def test_cluster_rejects_fewer_than_two_clusters(student, clusters):
    with pytest.raises(ValueError, match="Expected clusters to be an integer >= 2"):
        compress.cluster(student, clusters)


def test_cluster_rejects_unknown_init_and_layer(student):
    with pytest.raises(ValueError, match="Unknown centroid initialisation 'kmeans'"):
        compress.cluster(student, 4, init="kmeans")
    with pytest.raises(ValueError, match=r"Unknown layer name\(s\) in `layers`: \['nope'\]"):
        compress.cluster(student, 4, layers=["nope"])


# -- low-rank ------------------------------------------------------------------------
def test_full_rank_factorization_reproduces_the_outputs(student, batch):
    x, _ = batch
    full, ranks = compress.factorize(student, rank={"conv": 4, "fc": 8, "logits": 4}, only_if_smaller=False)
    assert ranks == {"conv": 4, "fc": 8, "logits": 4}
    np.testing.assert_allclose(full.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-5)


def test_factorized_parameter_count_equals_the_formula(student):
    low, ranks = compress.factorize(student, rank={"fc": 2})
    fc = student.get_layer("fc")  # Dense 64 -> 8 with bias
    assert ranks == {"fc": 2}
    assert compress.factorized_params(fc, 2) == 2 * (64 + 8) + 8
    assert low.count_params() == student.count_params() - fc.count_params() + 2 * (64 + 8) + 8
    conv = student.get_layer("conv")  # 3x3x1 -> 4 filters with bias
    assert compress.factorized_params(conv, 1) == 1 * (3 * 3 * 1 + 4) + 4


def test_factorize_functional_model_with_branches():
    inputs = keras.Input((12,))
    a, b = keras.layers.Dense(6, name="a")(inputs), keras.layers.Dense(6, name="b")(inputs)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Add(name="add")([a, b]))
    model = keras.Model(inputs, outputs)
    full, _ = compress.factorize(model, rank={"a": 6, "b": 6, "out": 3}, only_if_smaller=False)
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    np.testing.assert_allclose(full.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_rank_for_energy_picks_the_smallest_rank():
    assert compress.rank_for_energy(np.array([3.0, 2.0, 1.0]), 9 / 14) == 1
    assert compress.rank_for_energy(np.array([3.0, 2.0, 1.0]), 0.92) == 2  # 13/14 = 0.929
    assert compress.rank_for_energy(np.array([3.0, 2.0, 1.0]), 1.0) == 3


def test_factorize_rejects_impossible_rank_and_unknown_layer(student):
    with pytest.raises(ValueError, match=r"Rank 9 is impossible for layer 'fc': its kernel is a 64 x 8 matrix, so the rank must be in \[1, 8\]"):
        compress.factorize(student, rank={"fc": 9})
    with pytest.raises(ValueError, match=r"Unknown layer name\(s\) in `layers`: \['fc2'\]"):
        compress.factorize(student, rank=2, layers=["fc2"])
    with pytest.raises(ValueError, match="would not shrink it"):
        compress.factorize(student, rank=8, layers=["fc"])


# -- recipe and verification in the exported file ---------------------------------------
@pytest.mark.parametrize("text, message", [
    ("prune:1.0", r"Expected sparsity in \[0, 1\)"),
    ("qat,prune:0.5", "'qat' must be the last"),
    ("prune:0.5,lowrank:0.9", "'lowrank' must be the first"),
    ("cluster:1", "Expected clusters to be an integer >= 2"),
    ("squeeze:3", "Unknown compression step 'squeeze:3'"),
    ("prune:lots", "Bad value in compression step 'prune:lots'"),
    ("", "Expected compression steps like"),
])
def test_recipe_rejects_bad_steps(text, message):
    with pytest.raises(ValueError, match=message):
        compress.Recipe.parse(text)


@pytest.mark.parametrize("text, check", [
    ("prune:0.5,qat", "sparsity"),
    ("2:4,qat", "2:4"),
    ("cluster:4,qat", "clusters"),
    ("prune:0.5,cluster:4,qat", "clusters"),
])
@pytest.mark.slow
def test_recipe_under_the_distiller_survives_int8_export(student, teacher, batch, text, check):
    import tensorflow as tf

    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    recipe = compress.Recipe.parse(text, compress.StepDefaults(epochs=2, qat_epochs=1, min_weights=100))  # only "fc" (64 x 8)
    model, results = recipe.run(student, FineTuner(teacher, ds))
    assert [r.step for r in results] == [s.name for s in recipe.steps]
    assert [r.epochs for r in results] == [2] * (len(recipe.steps) - 1) + [1]
    verified = results.verify(export.to_tflite(model, "int8"))
    assert check in verified
    if check == "sparsity":
        assert verified["sparsity"]["fc"] == pytest.approx(0.5, abs=0.01)
    if check == "clusters":
        assert verified["clusters"]["fc"] <= 4
    if text.startswith("prune:0.5,cluster"):  # PCQAT: the zeros survive as well
        assert verified["sparsity"]["fc"] == pytest.approx(0.5, abs=0.01)


def test_verify_reports_a_layer_whose_sparsity_was_lost(student):
    flatbuffer = export.to_tflite(student)  # dense weights
    with pytest.raises(ValueError, match=r"differs from the target by more than 1%: measured \{'fc': 0.0\}"):
        compress.verify_sparsity(flatbuffer, {"fc": 0.5})
    with pytest.raises(ValueError, match="2:4 sparsity pattern broken"):
        compress.verify_m_by_n(flatbuffer, ["fc"])
    with pytest.raises(ValueError, match=r"No weight tensor for layer\(s\) \['ghost'\]"):
        compress.verify_sparsity(flatbuffer, {"ghost": 0.5})


def test_recipe_without_teacher_fine_tunes_by_cross_entropy(student, batch):
    import tensorflow as tf

    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model, results = compress.Recipe([compress.Prune(0.5, min_weights=100)]).run(student, FineTuner(None, ds), epochs=2)
    assert results[0].layer_sparsity["fc"] == pytest.approx(0.5, abs=0.01)
    assert results.records()[0]["target_sparsity"] == 0.5 and results.records()[0]["epochs"] == 2


@pytest.mark.slow
def test_pruning_schedule_reaches_its_target_even_in_one_epoch(student, teacher, batch):
    import tensorflow as tf

    from kdtf.compress.steps import _pruning_schedule_steps

    assert _pruning_schedule_steps(252, 63) == (180, 15)  # 4 epochs: target one epoch early
    assert _pruning_schedule_steps(63, 63) == (30, 15)  # 1 epoch: half-way, on an update
    assert _pruning_schedule_steps(4, 4) == (2, 1)
    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    recipe = compress.Recipe([compress.Prune(0.75, min_weights=100)])
    model, results = recipe.run(student, FineTuner(teacher, ds), epochs=1)
    assert results.verify(export.to_tflite(model))["sparsity"]["fc"] == pytest.approx(0.75, abs=0.01)


def test_recipe_run_with_a_teacher_instead_of_a_fine_tuner_names_the_fix(student, teacher, batch):
    with pytest.raises(ValueError, match=r"fine-tune callable, e.g. Recipe.run\(student, kdtf.FineTuner"):
        compress.Recipe.parse("qat").run(student, teacher, epochs=1)


def test_int8_calibration_takes_an_array_a_dataset_or_batches_and_names_a_wrong_shape(student, batch):
    import tensorflow as tf

    x, y = batch
    for data in (x, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), [x[:32], x[32:]]):
        assert "CONV_2D" in export.list_ops(export.to_tflite(student, "int8", representative_data=data))
    with pytest.raises(ValueError, match=r"examples shaped \(8, 8, 1\).*Received: an array of shape \(64, 4, 4\)"):
        export.to_tflite(student, "int8", representative_data=x[:, :4, :4, 0])
