"""XNNPACK sparse export: the pattern check, 1x1-only pruning, the sparse encoding."""

import numpy as np
import pytest

from kdtf import compress, export, keras


def _xnnpack_net(name="sparse_net"):
    """The smallest model of XNNPACK's sparse pattern: ZeroPadding2D(1) + 3x3/2 valid conv
    on RGB, 1x1 convs, a depthwise conv, a residual add, global average pooling."""
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="pad")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="valid", name="stem")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.Conv2D(32, 1, name="expand")(x)
    y = layers.ReLU(name="expand_relu")(y)
    y = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(y)
    y = layers.Conv2D(16, 1, name="project")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.Conv2D(64, 1, name="head")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name=name)


def test_xnnpack_policy_prunes_only_the_1x1_convolutions():
    model = _xnnpack_net()
    assert export.xnnpack_sparse_layers(model) == ["expand", "project", "head"]
    pruned = compress.prune(model, 0.8, schedule="constant", policy="xnnpack")
    wrapped = sorted(layer.layer.name for layer in pruned.layers if hasattr(layer, "pruning_vars"))
    assert wrapped == ["expand", "head", "project"]


def test_sparse_export_encodes_the_pruned_kernels_and_computes_the_same():
    model = _xnnpack_net()
    pruned = compress.prune(model, 0.8, schedule="constant", frequency=1, policy="xnnpack")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((32, 16, 16, 3), dtype=np.float32)
    pruned.fit(x, np.arange(32) % 10, epochs=2, batch_size=16, verbose=0, callbacks=compress.pruning_callbacks())
    stripped = compress.strip_pruning(pruned)
    assert min(compress.kernel_sparsity(stripped)[0][name] for name in ("expand", "project", "head")) >= 0.79
    sparse = export.to_sparse_tflite(stripped)
    assert len(export.sparse_tensors(sparse)) >= 3
    assert export.sparse_tensors(export.to_tflite(stripped)) == []
    np.testing.assert_allclose(export.predict(sparse, x), stripped.predict(x, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match=r"is stored sparse .*kdtf.export.to_tflite"):
        export.weight_sparsity(sparse)
    assert export.sparse_tensors(export.to_sparse_tflite(stripped, "float16"))


def test_sparse_export_refuses_a_model_without_the_pattern_in_one_line(student):
    with pytest.raises(ValueError, match=r"cannot use XNNPACK's sparse path .*ZeroPadding2D\(1\)") as error:
        export.to_sparse_tflite(student)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="cannot use XNNPACK's sparse path"):
        compress.prune(student, 0.8, policy="xnnpack")


def test_sparse_export_refuses_int8_and_a_dense_model():
    with pytest.raises(ValueError, match=r"float models only.*mode='int8'"):
        export.to_sparse_tflite(_xnnpack_net(), "int8")
    with pytest.raises(ValueError, match=r"holds 0 sparse tensor\(s\).*policy='xnnpack'"):
        export.to_sparse_tflite(_xnnpack_net())
    with pytest.raises(ValueError, match="Unknown pruning policy 'arm'"):
        compress.prune(_xnnpack_net(), 0.5, policy="arm")
