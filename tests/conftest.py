import logging
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

from helpers import CLASSES, INPUT_SHAPE, run_script, tiny_cnn, tiny_run_args  # noqa: E402


@pytest.fixture(autouse=True)
def _kdtf_logger_restored():
    """A script's ``main()`` run in-process (``distill.main([...])``) sends kdtf's log
    lines to stdout and stops their propagation (``kdtf.cli.show_library_logs``); this
    undoes it after each test, so a later test's ``caplog`` sees kdtf's records whichever
    tests ran before it on the same worker."""
    logger = logging.getLogger("kdtf")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate
    logger.setLevel(level)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One whole ``scripts/distill.py`` run at a test's epochs (:func:`helpers.tiny_run_args`),
    shared by every test that reads its folder: ``(run folder, CompletedProcess)``."""
    folder = tmp_path_factory.mktemp("run")
    out = folder / "out"
    result = run_script("distill.py", *tiny_run_args(folder), "--output", str(out), "--cache-dir", str(folder / "cache"),
                        "--verbose", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


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



# Tests that share a fixture running a whole script (or training a model) join one xdist
# group (``--dist loadgroup`` in setup.cfg), so one worker builds the
# fixture once instead of every worker building it. ``tryfirst``: the mark must be there
# before pytest-xdist's own collection hook reads it. pytest is held below 9 in setup.cfg:
# pytest 9's structured node ids drop the group that xdist 3.8 appends
# (pytest-dev/pytest-xdist#1386), and the tests would be spread as if ungrouped.
SHARED_FIXTURES = ("tiny_run", "trained")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
