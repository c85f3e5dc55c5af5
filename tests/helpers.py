"""What several test files share: tiny models, image folders on disk, script runs.

Test files import from here (never from each other or from conftest); conftest.py only
turns these into fixtures.
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
INPUT_SHAPE = (8, 8, 1)
CLASSES = 4


def tiny_cnn(filters, dense, name, seed=0, final_activation=None):
    """conv -> pool -> flatten -> fc -> logits on 8x8x1 inputs, 4 classes."""
    from kdtf import keras

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


def write_png(path, value, size=(12, 10), channels=3):
    """A constant image of grey level ``value``."""
    from kdtf._keras import tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.full(size + (channels,), value, np.uint8)
    tf.io.write_file(path, tf.io.encode_png(image))


def make_folder(root, classes=("cat", "dog"), per_class=10):
    """One subfolder per class; the classes differ in brightness (40.., 140..)."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_png(os.path.join(root, name, f"{i}.png"), 40 + 100 * c + i)
    return str(root)


def script_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run_script(name, *args, timeout=600):
    """``python scripts/<name> args...`` from the repository root; the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *args], capture_output=True, text=True,
                          timeout=timeout, env=script_env(), cwd=ROOT)


def load_benchmark(name):
    """The module ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_run_args(folder):
    """The flags of the shared whole run (fixture ``tiny_run``): the default data and
    models at a test's epochs, through a YAML file written into ``folder`` that sets
    defaults which a flag (``--epochs 3``) overrides."""
    import yaml

    config = os.path.join(folder, "tiny.yaml")
    with open(config, "w") as f:
        yaml.safe_dump({"teacher_epochs": 3, "epochs": 1, "prune_epochs": 2, "qat_epochs": 1, "latency_runs": 5}, f)
    return ["--config", config, "--epochs", "3"]


def byol_encoder(seed=0, bn=True, name="enc"):
    """A tiny encoder (conv, optional BatchNormalization, pooling, 6-wide embedding)."""
    from kdtf import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv")]
    if bn:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    layers += [keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6, name="emb")]
    return keras.Sequential(layers, name=name)


def byol_batch_views(seed=0, n=16):
    """Two random view batches of 8x8x1 images."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.random((n, 8, 8, 1), dtype=np.float32)
