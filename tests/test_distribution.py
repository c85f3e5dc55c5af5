"""The Distiller under tf.distribute and mixed precision, each in its own process
(logical devices, strategies and the dtype policy are process-global)."""

import json
import math
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_mirrored_strategy_gives_the_same_weights_as_one_device():
    # Each replica's mean loss is divided by the number of replicas before gradients
    # are summed across them; a missing or doubled scaling would differ by ~1e-2.
    # Tolerance 1e-5: float32 reductions in another order, over 4 SGD steps.
    line = run("mirrored_equivalence.py")
    assert float(line.split(":")[1]) < 1e-5, line


@pytest.mark.parametrize("policy, optimizer, dtype", [
    ("mixed_float16", "LossScaleOptimizerV3", "float16"),
    ("mixed_bfloat16", "Adam", "bfloat16"),
])
@pytest.mark.slow
def test_mixed_precision_steps_give_finite_float32_losses(policy, optimizer, dtype):
    result = json.loads(run("mixed_precision_step.py", policy))
    assert result["optimizer"] == optimizer and result["compute_dtype"] == dtype
    for values in result["history"].values():
        assert all(math.isfinite(v) for v in values)
    assert result["history"]["loss"][1] < result["history"]["loss"][0]


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(command, timeout=300, **popen):
    """Runs ``command(index)`` as the two workers of a local MultiWorkerMirroredStrategy
    cluster (TF_CONFIG set per process); checks both exit 0 and returns their stdout."""
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(config))
        procs.append(subprocess.Popen(command(index), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen))
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    return [out for out, _ in outputs]


def _assert_workers_match_one_device(script, tmp_path):
    """``script worker|single OUT.npz`` saves weights; both workers' must equal one device's."""
    import numpy as np

    path = os.path.join(SCRIPTS, script)
    for out in _two_workers(lambda index: [sys.executable, path, "worker", str(tmp_path / f"worker{index}.npz")]):
        assert "replicas: 2" in out
    run(script, "single", str(tmp_path / "single.npz"))
    single = np.load(tmp_path / "single.npz")
    for index in range(2):
        worker = np.load(tmp_path / f"worker{index}.npz")
        diff = max(float(np.max(np.abs(single[k] - worker[k]))) for k in single.files)
        assert diff < 1e-5, (index, diff)  # same tolerance as MirroredStrategy


@pytest.mark.slow
def test_multiworker_strategy_with_two_local_workers_gives_the_same_weights_as_one_device(tmp_path):
    _assert_workers_match_one_device("multiworker_equivalence.py", tmp_path)

# digits (8 x 8): the strategies are under test, not the data; a whole run on it costs a third less
TINY = ["--dataset", "digits", "--teacher-epochs", "1", "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "1", "--latency-runs", "0",
        "--verbose", "0", "--allow-weak-teacher", "--allow-collapse"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_distill_script_runs_the_whole_chain_under_mirrored_strategy_on_two_cpus(tmp_path):
    out = tmp_path / "run"
    run("distill_two_cpus.py", "--strategy", "mirrored", *TINY, "--output", str(out), "--cache-dir", str(tmp_path / "cache"))
    report = json.loads((out / "report.json").read_text())
    assert report["machine"]["strategy"] == "MirroredStrategy, 2 replica(s)"
    assert [s["stage"] for s in report["stages"]][-1] == "tflite-int8"
    assert report["verified_in_tflite"]["sparsity"]["fc1"] == pytest.approx(0.75, abs=0.01)


@pytest.mark.slow
def test_distill_script_with_two_multiworker_processes_writes_one_run_folder(tmp_path):
    out = tmp_path / "run"
    outputs = _two_workers(lambda index: [
        sys.executable, os.path.join(ROOT, "scripts", "distill.py"), "--strategy", "multiworker", *TINY,
        "--output", str(out), "--cache-dir", str(tmp_path / "cache")], timeout=600, cwd=ROOT)
    for stdout in outputs:
        assert "MultiWorkerMirroredStrategy, 2 replica(s), worker" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["machine"]["strategy"].startswith("MultiWorkerMirroredStrategy, 2 replica(s), worker 0 of 2")
    finals = [[line for line in stdout.splitlines() if "LiteRT test accuracy" in line] for stdout in outputs]
    assert finals[0] == finals[1] and finals[0]  # the workers trained the same model in step


@pytest.mark.slow
def test_byol_under_multiworker_strategy_with_two_local_workers_matches_one_device(tmp_path):
    _assert_workers_match_one_device("byol_multiworker.py", tmp_path)  # online and EMA target weights alike
