"""Small teacher and student CNNs for the offline defaults, and the ViT presets of
:mod:`kdtf.models.vit`. All output logits."""

from kdtf._keras import keras
from kdtf.models.photo import photo_student, photo_teacher
from kdtf.models.resnet import resnet18_cifar
from kdtf.models.transfer import BACKBONES, backbone_classifier
from kdtf.models.vit import vit_student, vit_teacher

__all__ = ["teacher_cnn", "student_cnn", "teacher_encoder", "student_encoder", "ENCODERS", "build", "names", "is_backbone"]


def teacher_cnn(input_shape=(28, 28, 1), num_classes=10, name="teacher"):
    """VGG-style CNN, about 420k parameters at 28x28x1: 2x conv32, pool, 2x conv64,
    pool, Dense 128, dropout, Dense logits."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4"),
            layers.MaxPooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="fc1"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def student_cnn(input_shape=(28, 28, 1), num_classes=10, name="student"):
    """conv 8 -> pool -> conv 16 -> pool -> Dense 32 -> Dense logits: about 26.7k
    parameters at 28x28x1."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(32, activation="relu", name="fc1"),
            layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def _conv_bn(filters, name):
    layers = keras.layers
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name),
        layers.BatchNormalization(name=f"{name}_bn"),
        layers.ReLU(name=f"{name}_relu"),
    ]


def teacher_encoder(input_shape=(28, 28, 1), dim=128, name="teacher_encoder"):
    """Encoder for BYOL: 2x conv32, pool, 2x conv64, pool, conv ``dim``, global average
    pooling -> a ``dim``-vector (about 140k parameters at dim 128)."""
    layers = keras.layers
    return keras.Sequential(
        [keras.Input(input_shape)] + _conv_bn(32, "conv1") + _conv_bn(32, "conv2") + [layers.MaxPooling2D(name="pool1")]
        + _conv_bn(64, "conv3") + _conv_bn(64, "conv4") + [layers.MaxPooling2D(name="pool2")]
        + _conv_bn(dim, "conv5") + [layers.GlobalAveragePooling2D(name="embedding")],
        name=name,
    )


def student_encoder(input_shape=(28, 28, 1), dim=128, name="student_encoder"):
    """Small encoder: conv16, pool, conv32, pool, conv64, global average pooling, Dense
    ``dim`` (about 32k parameters at dim 128): the teacher's embedding width, so it can
    learn the teacher's embedding directly."""
    layers = keras.layers
    return keras.Sequential(
        [keras.Input(input_shape)] + _conv_bn(16, "conv1") + [layers.MaxPooling2D(name="pool1")]
        + _conv_bn(32, "conv2") + [layers.MaxPooling2D(name="pool2")] + _conv_bn(64, "conv3")
        + [layers.GlobalAveragePooling2D(name="pool3"), layers.Dense(dim, name="embedding")],
        name=name,
    )


_ZOO = {"teacher_cnn": teacher_cnn, "student_cnn": student_cnn, "photo_teacher": photo_teacher, "photo_student": photo_student,
        "resnet18_cifar": resnet18_cifar, "vit_teacher": vit_teacher, "vit_student": vit_student}
ENCODERS = {"teacher_encoder": teacher_encoder, "student_encoder": student_encoder}


def builder(model):
    """The function that builds ``model`` (a zoo name or a backbone name): what a cache
    of trained models hashes as the code version of the architecture."""
    if is_backbone(model):
        return backbone_classifier
    if model not in _ZOO:
        raise ValueError(f"Unknown model {model!r}. Known: {', '.join(names())}")
    return _ZOO[model]


def names():
    """Zoo models and Keras application backbones (see :mod:`kdtf.models.transfer`)."""
    return sorted(_ZOO) + sorted(BACKBONES)


def is_backbone(model):
    """True for a backbone name (fine-tuned in two phases), False for a zoo model."""
    return model in BACKBONES


def build(model, input_shape, num_classes, name=None, weights=None):
    """Builds a zoo model or a backbone classifier by name.

    Args:
        weights: a local weights file for backbones (``None``: random); zoo models
            accept only ``None``.
    """
    if is_backbone(model):
        return backbone_classifier(model, input_shape, num_classes, weights=weights, model_name=name)
    if model not in _ZOO:
        raise ValueError(f"Unknown model {model!r}. Known: {', '.join(names())}")
    if weights:
        backbones = ", ".join(name for name in names() if is_backbone(name))
        raise ValueError(f"Weights files are for backbones ({backbones}); {model!r} trains from scratch. Received: weights={weights!r}")
    return _ZOO[model](input_shape, num_classes, **({"name": name} if name else {}))
