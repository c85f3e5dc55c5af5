import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kdtf  # noqa: E402
from kdtf import keras  # noqa: E402

INPUT_SHAPE = (8, 8, 1)
CLASSES = 4


def tiny_cnn(filters, dense, name, seed=0, final_activation=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(dense, activation="relu", name="fc"),
            keras.layers.Dense(CLASSES, activation=final_activation, name="logits"),
        ],
        name=name,
    )


@pytest.fixture
def teacher():
    return tiny_cnn(16, 32, "teacher", seed=1)


@pytest.fixture
def student():
    return tiny_cnn(4, 8, "student", seed=2)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((64,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, CLASSES, size=64).astype(np.int32)
    return x, y
