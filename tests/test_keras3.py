"""Keras 3 models in and out (kdtf.keras3): the rebuilt model computes the same function,
the weights travel by name, and what cannot be rebuilt is refused naming the layer."""

import logging

import numpy as np
import pytest

import kdtf
from kdtf import keras
from kdtf import keras3 as k3_convert
from kdtf.keras3 import as_tf_keras, from_keras3, is_keras3_file, to_keras3
from kdtf.models.zoo import student_cnn
from kdtf.saving import load_model, save_model

keras3 = pytest.importorskip("keras")  # the standalone Keras 3 package (TensorFlow >= 2.16)
L = keras3.layers

APPLICATIONS = {
    "MobileNetV2": lambda: keras3.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, **_HEAD),
    "MobileNetV3Small": lambda: keras3.applications.MobileNetV3Small(input_shape=(32, 32, 3), **_HEAD),
    "MobileNetV3Large": lambda: keras3.applications.MobileNetV3Large(input_shape=(32, 32, 3), **_HEAD),
    "ResNet50": lambda: keras3.applications.ResNet50(input_shape=(32, 32, 3), **_HEAD),
    "EfficientNetB0": lambda: keras3.applications.EfficientNetB0(input_shape=(32, 32, 3), **_HEAD),
}
_HEAD = {"weights": None, "classes": 10, "classifier_activation": None}


def _randomize(model, seed=0):
    """Random weights everywhere (positive variances), so a weight copied to the wrong
    place, or not at all, changes the outputs."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            variable.assign((0.3 * rng.standard_normal(shape)).astype("float32"))
    return model


def _images(n=3, shape=(32, 32, 3), seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n,) + shape).astype("float32")


def _assert_same_outputs(a, b, x, tol=1e-5):
    expected = a.predict(x, verbose=0)
    received = b.predict(x, verbose=0)
    for e, r in zip(expected if isinstance(expected, list) else [expected], received if isinstance(received, list) else [received]):
        np.testing.assert_allclose(r, e, rtol=tol, atol=tol)


def _every_layer_model():
    """A Keras 3 Functional model holding every layer kdtf converts, activations whose
    formula differs between the Kerases, scalar arithmetic, and two outputs."""
    inputs = keras3.Input((16, 16, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    adapted = L.Normalization(name="norm_adapted")
    adapted.adapt(np.random.default_rng(2).normal(0.5, 2.0, (64, 16, 16, 3)).astype("float32"))
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 0.5], name="norm_given")(adapted(x))
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Conv2D(8, 3, strides=2, activation="hard_silu", name="conv")(x)
    x = L.LeakyReLU(negative_slope=0.3, name="leaky")(L.BatchNormalization(name="bn")(x))
    a = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
    b = L.SeparableConv2D(8, 3, padding="same", activation="silu", name="sep")(x)
    x = L.Add(name="merge")([a, b])
    x = L.Multiply(name="gate")([x, L.Activation("hard_sigmoid", name="hsig")(x)])
    x = L.Concatenate(name="cat")([L.MaxPooling2D(2, name="max")(x), L.AveragePooling2D(2, name="avg")(x)])
    x = L.ReLU(max_value=6.0, name="relu")(L.Activation("hard_swish", name="hswish")(x))
    x = L.Subtract(name="sub")([x, L.ELU(name="elu")(x)])
    tokens = L.Reshape((16, 16), name="tokens")(x)
    attended = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(tokens, tokens)
    tokens = L.LayerNormalization(name="ln")(L.Add(name="residual")([tokens, attended]))
    tokens = L.Conv1D(8, 3, padding="same", activation="gelu", name="conv1d")(tokens)
    pooled = L.Concatenate(name="pooled")(
        [L.GlobalAveragePooling1D(name="gap1")(tokens), L.GlobalMaxPooling1D(name="gmp1")(tokens),
         L.GlobalAveragePooling2D(name="gap2")(x), L.GlobalMaxPooling2D(name="gmp2")(x),
         L.Flatten(name="flat")(x)]
    )  # fmt: skip
    y = L.Dense(16, activation="leaky_relu", name="fc")(L.Dropout(0.3, name="drop")(pooled))
    y = L.Average(name="mean")([y, L.Maximum(name="hi")([y, 2.0 - y]), L.Minimum(name="lo")([y, y * 0.5 + 1.0])])
    logits = L.Dense(5, name="logits")(L.Activation("softmax", name="soft_act")(y / 4.0))
    return _randomize(keras3.Model(inputs, [logits, L.Softmax(name="probs")(logits)], name="every_layer"))


@pytest.fixture(scope="module")
def every_layer():
    return _every_layer_model()


def test_every_listed_layer_converts_with_outputs_within_1e5(every_layer):
    converted = from_keras3(every_layer)
    assert isinstance(converted, keras.Model) and converted.name == "every_layer"
    _assert_same_outputs(every_layer, converted, _images(4, (16, 16, 3)))
    for name in ("conv", "bn", "mha", "sep", "ln", "fc", "logits"):  # same names, same weights
        for a, b in zip(every_layer.get_layer(name).get_weights(), converted.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert converted.get_layer("leaky").alpha == pytest.approx(0.3)


def test_keras3_tf_keras_keras3_round_trip_keeps_outputs(every_layer):
    back = to_keras3(from_keras3(every_layer))
    assert isinstance(back, keras3.Model) and not isinstance(back, keras.Model)
    _assert_same_outputs(every_layer, back, _images(4, (16, 16, 3)))


def test_tf_keras_student_goes_to_keras3_as_sequential_with_same_outputs():
    student = student_cnn()
    back = to_keras3(student)
    assert isinstance(back, keras3.Sequential) and [layer.name for layer in back.layers] == [layer.name for layer in student.layers]
    _assert_same_outputs(student, back, _images(5, (28, 28, 1)) / 255)


def _tiny_backbone():
    inputs = keras3.Input((32, 32, 3))
    x = L.Conv2D(4, 3, strides=2, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    # hard_swish has no tf_keras layer: this inner Sequential comes back as a Functional
    inner = keras3.Sequential([keras3.Input(x.shape[1:]), L.DepthwiseConv2D(3, name="dw"), L.Activation("hard_swish")], name="block")
    return keras3.Model(inputs, inner(x), name="tiny_backbone")


@pytest.mark.parametrize(
    "backbone",
    [
        pytest.param(_tiny_backbone, id="tiny"),
        pytest.param(
            lambda: keras3.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None),
            marks=pytest.mark.slow, id="MobileNetV2",
        ),
    ],
)
@pytest.mark.slow
def test_keras3_sequential_with_nested_backbone_stays_nested_and_frozen(backbone):
    keras3.utils.set_random_seed(0)
    model = keras3.Sequential([keras3.Input((32, 32, 3)), backbone(), L.GlobalAveragePooling2D(), L.Dense(3)], name="clf")
    _randomize(model).layers[0].trainable = False
    converted = from_keras3(model)
    assert isinstance(converted, keras.Sequential) and isinstance(converted.layers[0], keras.Model)
    assert not converted.layers[0].trainable and converted.layers[-1].trainable
    assert len(converted.trainable_weights) == len(model.trainable_weights) == 2
    _assert_same_outputs(model, converted, _images(3) / 255)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras3_application_converts_with_logits_within_1e5(name):
    keras3.utils.set_random_seed(0)
    model = APPLICATIONS[name]()
    converted = from_keras3(model)
    assert len(converted.trainable_weights) == len(model.trainable_weights)
    _assert_same_outputs(model, converted, _images(3))


def test_conversion_logs_one_info_line_through_logging_and_prints_nothing(caplog, capsys):
    model = keras3.Sequential([keras3.Input((4,)), L.Dense(2, name="d")], name="tiny")
    with caplog.at_level(logging.INFO, logger="kdtf"):
        from_keras3(model)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("kdtf.")]
    assert len(lines) == 1 and "Keras 3 model 'tiny' to tf_keras" in lines[0] and "outputs match" in lines[0]
    assert "[kdtf]" not in capsys.readouterr().out  # the library prints nothing: the scripts decide


def test_keras3_file_loads_through_load_model_as_tf_keras(tmp_path, every_layer):
    path = str(tmp_path / "k3.keras")
    every_layer.save(path)
    assert is_keras3_file(path)
    model = load_model(path)
    assert isinstance(model, keras.Model)
    _assert_same_outputs(every_layer, model, _images(2, (16, 16, 3)))
    tf_path = save_model(model, str(tmp_path / "tf.keras"))
    assert not is_keras3_file(tf_path) and not is_keras3_file(str(tmp_path / "missing.keras"))


def test_keras3_file_with_lambda_is_refused_by_load_model(tmp_path):
    inputs = keras3.Input((4,))
    model = keras3.Model(inputs, L.Lambda(lambda t: t * 2.0, name="double")(L.Dense(2)(inputs)))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match="saved by Keras 3.*Lambda") as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_lambda_layer_is_refused_naming_it():
    inputs = keras3.Input((4,))
    model = keras3.Model(inputs, L.Lambda(lambda t: t * 2.0, name="double")(inputs))
    with pytest.raises(ValueError, match="Layer 'double' is a Lambda layer.*built-in layers") as error:
        from_keras3(model)
    assert "\n" not in str(error.value)


def test_subclassed_model_is_refused_naming_it():
    class Tiny(keras3.Model):
        def __init__(self):
            super().__init__(name="tiny_subclass")
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="subclassed model 'tiny_subclass'.*Functional") as error:
        from_keras3(model)
    assert "\n" not in str(error.value)


def test_custom_layer_raw_op_and_keras3_only_argument_are_refused_naming_them():
    class Scale(L.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras3.Input((4,))
    for outputs, message in [
        (Scale(name="scale")(inputs), "Layer 'scale' .*Scale.*SUPPORTED_LAYERS"),
        (keras3.ops.sin(inputs), "operation 'sin'.*built-in layer"),
        (L.Dense(2, lora_rank=2, name="lora")(inputs), "Layer 'lora' \\(Dense\\) sets lora_rank=2"),
    ]:
        with pytest.raises(ValueError, match=message):
            from_keras3(keras3.Model(inputs, outputs))
    with pytest.raises(ValueError, match="Expected a built Keras 3 model.*keras.Input"):
        from_keras3(keras3.Sequential([L.Dense(2)], name="unbuilt"))


def test_verify_refuses_a_conversion_that_changes_the_function(monkeypatch):
    # tf_keras's hard_sigmoid is 0.2 x + 0.5, Keras 3's relu6(x + 3) / 6: mapping the names
    # one to one (the pitfall the converter avoids) must be caught by the output check.
    monkeypatch.setitem(k3_convert._SAME_ACTIVATIONS, "hard_sigmoid", "hard_sigmoid")
    inputs = keras3.Input((4,))
    model = keras3.Model(inputs, L.Activation("hard_sigmoid")(L.Dense(4)(inputs)), name="hsig_model")
    with pytest.raises(ValueError, match="rebuild of 'hsig_model' gives outputs up to"):
        from_keras3(model)


def test_as_tf_keras_converts_keras3_passes_tf_keras_and_refuses_the_rest():
    k3 = keras3.Sequential([keras3.Input((4,)), L.Dense(2)])
    assert isinstance(as_tf_keras(k3, "teacher"), keras.Model)
    student = student_cnn()
    assert as_tf_keras(student, "student") is student
    with pytest.raises(ValueError, match="`teacher`"):
        as_tf_keras("model.keras", "teacher")
    assert kdtf.from_keras3 is from_keras3 and kdtf.to_keras3 is to_keras3
