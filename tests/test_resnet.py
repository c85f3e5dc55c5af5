"""kdtf.models.resnet18_cifar: the ResNet-18-sized student of the CIFAR recipe."""

import numpy as np
import pytest

import kdtf
from kdtf import compress, keras
from kdtf.models import resnet18_cifar


def test_full_width_has_resnet18_size_and_cifar_stem():
    model = kdtf.models.build("resnet18_cifar", (32, 32, 3), 10, name="student")
    # 11,173,962 weights for ResNet-18/CIFAR (He et al. 2016 blocks), plus BN moving statistics
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_173_962
    stem = model.get_layer("stem")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    widths = [model.get_layer(f"stage{s}_block2_conv2").filters for s in range(1, 5)]
    assert widths == [64, 128, 256, 512]
    assert model.get_layer("stage4_block2_out").output_shape[1:] == (4, 4, 512)
    assert model.name == "student" and "resnet18_cifar" in kdtf.models.names()


@pytest.mark.slow
def test_width_multiplier_builds_a_tiny_model_that_trains():
    model = resnet18_cifar((16, 16, 1), 4, width=0.125)
    assert [model.get_layer(f"stage{s}_block1_conv1").filters for s in range(1, 5)] == [8, 16, 32, 64]
    assert [layer.name for layer in model.layers if "shortcut" in layer.name and not layer.name.endswith("_bn")] == [
        f"stage{s}_block1_shortcut" for s in (2, 3, 4)
    ]
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 16, 16, 1), np.float32), rng.integers(0, 4, 8)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss) and model.predict(x, verbose=0).shape == (8, 4)


@pytest.mark.slow
def test_tiny_resnet_takes_qat_wrappers():
    quantized = compress.quantize(resnet18_cifar((16, 16, 3), 4, width=0.125))
    assert compress.is_quantized(quantized)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 0}, "Expected width > 0. Received: width=0"),
    ({"input_shape": (4, 4, 3)}, "at least 8x8"),
])
def test_bad_width_or_input_gives_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet18_cifar(**kwargs)
