"""Pruning and QAT wrappers: layer choice, bad input, what survives export."""

import numpy as np
import pytest
from conftest import INPUT_SHAPE

from kdtf import compress, export, keras


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
