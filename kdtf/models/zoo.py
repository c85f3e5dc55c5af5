"""Small teacher and student CNNs for the offline defaults. All output logits."""

from kdtf._keras import keras

__all__ = ["teacher_cnn", "student_cnn", "build", "names"]


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


_ZOO = {"teacher_cnn": teacher_cnn, "student_cnn": student_cnn}


def names():
    return sorted(_ZOO)


def build(model, input_shape, num_classes, **kwargs):
    """Builds a zoo model by name."""
    if model not in _ZOO:
        raise ValueError(f"Unknown model {model!r}. Known: {', '.join(names())}")
    return _ZOO[model](input_shape, num_classes, **kwargs)
