"""Nested models are inlined before compression, so pruning and QAT reach the backbone."""

import numpy as np
import pytest

import kdtf
from kdtf import keras
from kdtf.models.flatten import flatten, has_nested_models


def _backbone():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="b_conv1")(inputs)
    x = keras.layers.BatchNormalization(name="b_bn")(x)
    x = keras.layers.ReLU(name="b_relu")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="b_conv2")(x)
    return keras.Model(inputs, keras.layers.Add(name="b_add")([x, y]), name="backbone")


def test_a_nested_sequential_backbone_is_inlined_with_the_same_outputs():
    model = keras.Sequential([keras.Input((8, 8, 3)), _backbone(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    flat = flatten(model)
    assert has_nested_models(model) and not has_nested_models(flat)
    assert {"b_conv1", "b_conv2", "b_add"} <= {layer.name for layer in flat.layers}
    x = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    np.testing.assert_array_equal(flat.predict(x, verbose=0), model.predict(x, verbose=0))


def test_training_false_on_a_nested_call_reaches_its_batchnorm():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(_backbone()(inputs, training=False)))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).random((3, 8, 8, 3), dtype=np.float32) * 5
    np.testing.assert_allclose(flatten(model)(x, training=True).numpy(), model(x, training=True).numpy(), atol=1e-6)


def test_pruning_a_nested_model_reaches_the_backbone_layers():
    model = keras.Sequential([keras.Input((8, 8, 3)), _backbone(), keras.layers.Flatten(), keras.layers.Dense(4)])
    pruned = kdtf.compress.prune(model, 0.5, min_weights=100)
    wrapped = {layer.layer.name for layer in pruned.layers if hasattr(layer, "pruning_obj")}
    assert {"b_conv1", "b_conv2", "dense"} <= wrapped or {"b_conv1", "b_conv2"} <= wrapped


def test_a_nested_subclassed_model_is_refused_with_the_fix():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 4), np.float32))
    model = keras.Sequential([keras.Input((4,)), sub, keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="nests subclassed model.*rebuild them as Sequential or Functional"):
        flatten(model)
