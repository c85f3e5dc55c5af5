"""Function matching (Beyer et al., CVPR 2022) as configs/function_matching.yaml sets it
for scripts/distill.py, and the same recipe through kdtf.Distiller in user code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "function_matching.yaml")


def _parse(*argv):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import distill
    finally:
        sys.path.pop(0)
    return distill.parse_args(["--config", CONFIG, *argv])[0]


def test_the_config_sets_consistent_mixup_kl_at_t1_without_labels_and_a_long_schedule():
    config = _parse().validate()
    spec = config.spec()
    assert (spec.temperature, spec.alpha, [t.loss for t in spec.terms]) == (1.0, 0.0, ["kd"])
    assert "mixup" in config.augment and not config.uses_teacher_cache()  # no per-example cache: views change
    assert config.cache_teacher == "views:8:all"  # consistent views from the view store, every class kept
    assert config.epochs >= 3 * 20 and config.lr_schedule == "cosine" and config.labels_kept() == 0
    assert _parse("--epochs", "5", "--dataset", "cluttered").epochs == 5  # flags override it


def test_function_matching_in_user_code_trains_on_the_teachers_view_of_each_mixed_batch(student, teacher, batch):
    import tensorflow as tf

    from kdtf import Distiller, keras
    from kdtf.data.augment import augment_dataset

    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    ds = augment_dataset(ds, "mixup", x.shape[1:], int(y.max()) + 1, seed=0)
    distiller = Distiller(student, teacher, temperature=1.0, alpha=0.0)  # KL at T = 1, no label term
    distiller.compile(keras.optimizers.Adam(1e-3))
    before = [w.copy() for w in student.get_weights()]
    history = distiller.fit(ds, epochs=1, verbose=0, collapse_guard=None)
    assert np.isfinite(history.history["loss"][0])
    assert history.history["loss"] == history.history["distillation_loss"]  # alpha = 0: the loss is the KL alone
    assert any(not np.allclose(a, b) for a, b in zip(before, student.get_weights()))


@pytest.mark.slow
def test_scripts_distill_runs_the_function_matching_config(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "distill.py"), "--config", CONFIG, "--dataset", "digits",
         "--teacher-epochs", "3", "--epochs", "3", "--prune-epochs", "1", "--qat-epochs", "1", "--latency-runs", "0",
         "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--verbose", "0"],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["augment"] == "mixup" and report["data"]["labelled"] == report["data"]["train"]
    assert (report["config"]["temperature"], report["config"]["alpha"], report["config"]["distill"]) == (1.0, 0.0, "kd")
