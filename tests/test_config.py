"""The settings of the scripts, checked in pure Python: compression steps from one
source (--compress, or its default from the --sparsity / --no-qat shortcuts)."""

import os
import subprocess
import sys

import pytest

from kdtf.compress.base import StepDefaults
from kdtf.config import ByolConfig, DistillConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("config, steps", [
    (DistillConfig(), "prune:0.75,qat"),
    (DistillConfig(sparsity=0.5, qat=False), "prune:0.5"),
    (DistillConfig(compress="filters:0.5,qat"), "filters:0.5,qat"),
    (ByolConfig(), "prune:0.5,qat"),
    (ByolConfig(compress="2:4,qat"), "2:4,qat"),
])
def test_the_shortcuts_only_shape_the_default_steps(config, steps):
    assert config.validate().compression_steps() == steps


@pytest.mark.parametrize("settings, fix", [
    (dict(compress="filters:0.5,qat", sparsity=0.5), "--compress 'filters:0.5,prune:0.5,qat'"),
    (dict(compress="lowrank:0.9,qat", qat=False), "--compress 'lowrank:0.9'"),
    (dict(compress="prune:0.3,cluster:8,qat", sparsity=0.6, qat=False), "--compress 'prune:0.6,cluster:8'"),
])
def test_a_shortcut_beside_compress_is_refused_with_the_equivalent_string(settings, fix):
    with pytest.raises(ValueError) as error:
        DistillConfig(**settings).validate()
    message = str(error.value)
    assert message.endswith(f"Say it in the steps instead: {fix}") and "would be ignored" in message
    assert "\n" not in message


def test_step_defaults_come_from_the_epoch_and_min_weight_flags():
    config = DistillConfig(prune_epochs=3, qat_epochs=1, prune_min_weights=10)
    assert config.step_defaults() == StepDefaults(epochs=3, qat_epochs=1, min_weights=10)
    with pytest.raises(ValueError, match="Received: prune_min_weights=-1"):
        DistillConfig(prune_min_weights=-1).validate()


def test_bad_step_values_and_orders_are_refused_before_tensorflow_loads():
    code = ("import sys\nfrom kdtf.config import DistillConfig\n"
            "for text in ('prune:1.5', 'qat,prune:0.5', 'filters:0.5:fast', 'cluster:1'):\n"
            "    try:\n        DistillConfig(compress=text).validate()\n"
            "    except ValueError as error:\n        print(str(error).split('.')[0])\n"
            "print('tensorflow' in sys.modules)")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.splitlines()
    assert lines == ["Expected sparsity in [0, 1) (the fraction of weights set to zero)", "'qat' must be the last compression step (later steps would undo its ranges)",
                     "Unknown option 'fast' in 'filters:0", "Expected clusters to be an integer >= 2", "False"]


def test_distill_help_is_grouped_and_lists_the_registered_steps():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "distill.py"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    titles = [line[:-1] for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert titles == ["options", "data", "models", "distillation", "training", "compression and export", "running"]
    compression = out[out.index("compression and export:"):out.index("running:")]
    assert "--compress" in compression and "--no-qat" in compression and "filters:F" in compression
