"""The default teacher and student for photos (any input above the bundled 28 px).

``teacher_cnn`` and ``student_cnn`` end in ``Flatten -> Dense``: their parameter count
grows with the image (``teacher_cnn`` has 4.8 M parameters at 96 px and 25.8 M at 224
px) and their first convolutions run at full resolution (its teacher stage peaks at 4.0
GB at 224 px and batch 64; ``photo_teacher``'s at 2.2 GB: ``benchmarks/photo_defaults.py``).
These two end in global average pooling, so their parameter count is the same at every
image size, start with a stride-2 convolution (the activations of a 224 px image are
those of a 112 px one) and put BatchNormalization after every convolution (momentum 0.9:
a small photo folder gives a few optimizer steps an epoch, and with the default 0.99 the
moving statistics stay near their initial values for the first few dozen steps).

On 355 generated photos trained from scratch, ``photo_student`` beats ``student_cnn`` by
about 21 points. ``photo_teacher`` overfits them in 12 epochs without augmentation (10
points below ``photo_student``); with the teacher's photo defaults
(:mod:`kdtf.teacher_defaults`: flip,crop and at least 480 optimizer steps) it is 12
points above (``benchmarks/results/photo_defaults/``, docs/your-data.md).

Every layer is named, so taps (FitNets hints), pruning and QAT address them by name;
every layer is Conv2D / BatchNormalization / ReLU / pooling / Dropout / Dense, which
TF-MOT's 8-bit scheme and LiteRT's builtin int8 kernels support.
"""

from kdtf._keras import keras

__all__ = ["photo_teacher", "photo_student"]

BN_MOMENTUM = 0.9


def _conv_bn(x, filters, name, stride=1):
    layers = keras.layers
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal", name=name)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _check_shape(input_shape, model):
    height, width = (int(d) for d in input_shape[:2])
    if min(height, width) < 16:
        raise ValueError(f"{model} needs images of at least 16x16 (it halves them four times). Received: input_shape={tuple(input_shape)}")


def _classifier(input_shape, num_classes, name, stages, dropout):
    """A stride-2 stem, then per stage ``(filters, convolutions)``: max pooling between
    stages, global average pooling, dropout and the Dense logits."""
    _check_shape(input_shape, name)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn(inputs, stages[0][0], "stem", stride=2)
    for stage, (filters, convs) in enumerate(stages, start=1):
        if stage > 1:
            x = keras.layers.MaxPooling2D(name=f"pool{stage - 1}")(x)
        for conv in range(1, convs + 1):
            x = _conv_bn(x, filters, f"stage{stage}_conv{conv}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def photo_teacher(input_shape=(96, 96, 3), num_classes=10, name="photo_teacher"):
    """VGG-style with BatchNormalization and global pooling: a stride-2 conv32 stem,
    then 1x conv32, 2x conv64, 2x conv128, 2x conv256 with max pooling between the
    widths (the last stage sees 1/16 of the image), global average pooling, dropout 0.3,
    Dense logits. About 1.18 M parameters for 10 classes, at any image size."""
    return _classifier(input_shape, num_classes, name, ((32, 1), (64, 2), (128, 2), (256, 2)), dropout=0.3)


def photo_student(input_shape=(96, 96, 3), num_classes=10, name="photo_student"):
    """The small default for photos: a stride-2 conv16 stem, then conv16, conv32,
    conv64, conv64 with max pooling between the widths, global average pooling, Dense
    logits. About 62 k parameters for 10 classes, at any image size."""
    return _classifier(input_shape, num_classes, name, ((16, 1), (32, 1), (64, 1), (64, 1)), dropout=0.0)
