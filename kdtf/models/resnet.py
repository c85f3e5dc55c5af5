"""ResNet-18 for small images (CIFAR), as a flat Functional tf_keras model.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: BasicBlocks
``[2, 2, 2, 2]`` of widths 64, 128, 256, 512 (stride 2 from the second stage on), with
the small-image stem of the common CIFAR variant: one 3x3 convolution, stride 1, no max
pooling (an ImageNet 7x7/2 stem and pool would shrink a 32x32 image to 1x1 by the last
stage). About 11.2M parameters at ``width=1`` for 10 classes; ``width`` scales every
channel count, so tests can build it tiny (``width=0.125``: 8 ... 64 channels).

Every layer is named (``stage2_block1_conv1``, ``stage2_block1_shortcut``, ``pool``,
``logits``), so taps (FitNets hints), pruning and QAT address them by name; all are
Conv2D / BatchNormalization / ReLU / Add / pooling / Dense, which TF-MOT's 8-bit scheme
and LiteRT's builtin int8 kernels support.
"""

from kdtf._keras import keras

__all__ = ["resnet18_cifar"]

_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (width, stride of the first block)
_BLOCKS = 2


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    layers = keras.layers
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (1x1 conv + BN where the shape
    changes), then ReLU."""
    shortcut = x
    if stride != 1 or int(x.shape[-1]) != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", relu=False)
    y = _conv_bn(x, filters, 3, stride, f"{name}_conv1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet18_cifar(input_shape=(32, 32, 3), num_classes=10, name="resnet18_cifar", width=1.0):
    """Builds the CIFAR-style ResNet-18.

    Args:
        input_shape: ``(height, width, channels)``, images in ``[0, 1]`` (any size of at
            least 8x8; 32x32 is the design point).
        num_classes: classes of the Dense logits.
        name: the model's name.
        width: channel multiplier > 0 (1.0: 64-128-256-512).

    Returns:
        A Functional model from images to logits.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"Expected width > 0. Received: width={width!r}")
    height, breadth = (int(d) for d in input_shape[:2])
    if min(height, breadth) < 8:
        raise ValueError(f"resnet18_cifar needs images of at least 8x8. Received: input_shape={tuple(input_shape)}")
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn(inputs, max(1, round(64 * width)), 3, 1, "stem")
    for stage, (filters, stride) in enumerate(_STAGES, start=1):
        for block in range(1, _BLOCKS + 1):
            x = _basic_block(x, max(1, round(filters * width)), stride if block == 1 else 1, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
