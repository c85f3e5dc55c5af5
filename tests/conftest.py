import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    # one TensorFlow thread pool thread per worker (and the scripts it starts): pytest-xdist
    # already keeps every core busy, and two workers each spreading ops over every core
    # spend the time switching
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kdtf import keras  # noqa: E402,F401

from helpers import CLASSES, INPUT_SHAPE, tiny_cnn  # noqa: E402


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

