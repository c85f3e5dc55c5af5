"""Faults: kill and resume, interrupted writes, disk full, safe loading."""

import errno
import itertools
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from kdtf.io import atomic_path, check_free_space, write_bytes

from helpers import tiny_run_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "distill.py")


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


def _kill_on_lines(command, *events):
    """Starts ``command`` and reads its output line by line until it has printed each of
    ``events`` (substrings, in this order), then SIGKILLs it. Returns what it printed."""
    proc = subprocess.Popen(command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed, waiting = [], list(events)
    for line in proc.stdout:
        printed.append(line)
        if waiting[0] in line:
            waiting.pop(0)
            if not waiting:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert not waiting, f"the run ended before printing {waiting[0]!r}:\n" + "".join(printed[-30:])
    return "".join(printed)


def _epoch_lines(text, marker):
    """The "Epoch N/M" lines of ``text`` after the first line containing ``marker``, up
    to the next progress line of kdtf (the stage's own epochs)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    stage = itertools.takewhile(lambda line: not line.startswith("[kdtf]"), lines[start + 1:])
    return [line for line in stage if line.startswith("Epoch ")]


def _accuracies(folder):
    return {s["stage"]: s["accuracy"] for s in json.loads((folder / "report.json").read_text())["stages"]}


@pytest.mark.slow
def test_a_run_killed_during_distillation_resumes_without_redoing_finished_stages(tmp_path, tiny_run):
    """The shared tiny run's flags, killed in its distilled stage and resumed; compared
    with the uninterrupted tiny run itself."""
    killed, (whole, _) = tmp_path / "killed", tiny_run
    # --verbose 2 prints "Epoch N/M" as epoch N begins: "Epoch 2/3" of the distilled stage
    # comes after epoch 1 has ended and its checkpoint is written
    first = _kill_on_lines([sys.executable, SCRIPT, *tiny_run_args(tmp_path), "--verbose", "2", "--output", str(killed),
                            "--cache-dir", str(tmp_path / "c1")],
                           "[kdtf] stage distilled: ", "Epoch 2/3")
    manifest = json.loads((killed / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["teacher", "scratch", "teacher-outputs"] and not manifest["complete"]
    assert any((killed / ".backup" / "distilled").iterdir())
    for name in os.listdir(killed):  # nothing truncated: every model file there loads
        if name.endswith(".keras"):
            from kdtf.saving import load_model

            load_model(str(killed / name))
    trained_teacher = next(line for line in first.splitlines() if line.startswith("[kdtf] stage teacher: teacher_cnn"))
    resumed = subprocess.run([sys.executable, SCRIPT, "--resume", str(killed), "--verbose", "2"],
                             env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage teacher: completed before" in resumed.stdout and "stage scratch: completed before" in resumed.stdout
    assert trained_teacher not in resumed.stdout
    epochs = _epoch_lines(resumed.stdout, "[kdtf] stage distilled: ")
    assert epochs == ["Epoch 2/3", "Epoch 3/3"]  # continued after its checkpointed epoch 1
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["complete"] and not (killed / ".backup").exists()
    timings = json.loads((killed / "report.json").read_text())["timings"]
    assert "teacher_s" not in timings and "scratch_s" not in timings and "distill_s" in timings  # times what it ran

    a, b = _accuracies(killed), _accuracies(whole)
    assert a["teacher"] == b["teacher"] and a["scratch"] == b["scratch"]  # finished before the kill: identical
    # Stages resumed mid-way restart their data order at the restored epoch: stated
    # tolerance 5 points on these 3-epoch runs (500 test images).
    for stage in ("distilled", "tflite-int8"):
        assert abs(a[stage] - b[stage]) <= 0.05, (stage, a[stage], b[stage])


def test_resume_refuses_a_folder_that_is_not_a_run_and_extra_flags(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import distill

    assert distill.main(["--resume", str(tmp_path)]) == 2
    assert "no args.yaml there" in capsys.readouterr().err
    assert distill.main(["--resume", str(tmp_path), "--epochs", "3"]) == 2
    assert "drop the other flags (--epochs)" in capsys.readouterr().err


def test_a_new_run_refuses_an_output_folder_holding_a_run(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import distill

    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {"teacher": {}}}))
    assert distill.main(["--output", str(tmp_path)]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err


class _Interrupted(Exception):
    pass


def test_an_interrupted_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.tflite"
    write_bytes(target, b"complete old model")
    with pytest.raises(_Interrupted):
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half of the new mod")
            raise _Interrupted()  # the process dies mid-write
    assert target.read_bytes() == b"complete old model"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_a_killed_writer_process_never_leaves_a_truncated_file(tmp_path):
    code = (
        "import os, sys; sys.path.insert(0, {!r})\n"
        "from kdtf.io import atomic_path\n"
        "with atomic_path({!r}) as tmp:\n"
        "    f = open(tmp, 'wb'); f.write(b'x' * 1000); f.flush()\n"
        "    print('writing', flush=True); import time; time.sleep(60)\n"
    ).format(ROOT, str(tmp_path / "report.json"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "report.json").exists()  # only a hidden temporary, never the name


def test_disk_full_is_refused_before_training_and_at_a_write(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 5 * 2**20))
    with pytest.raises(ValueError, match=r"Only 5 MiB free .* needs at least 200 MiB"):
        check_free_space(str(tmp_path), "--output")
    target = tmp_path / "student.keras"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left on the device while writing .*nothing was written"):
        with atomic_path(target) as tmp:
            open(tmp, "wb").write(b"partial")
            full()
    assert os.listdir(tmp_path) == []


def test_lambda_models_need_unsafe_load(tmp_path):
    from kdtf import keras
    from kdtf.saving import load_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(3)])
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match="Lambda layer with Python code.*--unsafe-load"):
        load_model(path)
    assert load_model(path, safe_mode=False).output_shape == (None, 3)
    h5 = str(tmp_path / "lambda.h5")
    model.save(h5)
    with pytest.raises(ValueError, match="--unsafe-load"):
        load_model(h5)
    np.testing.assert_allclose(load_model(h5, safe_mode=False).predict(np.ones((1, 4)), verbose=0), model.predict(np.ones((1, 4)), verbose=0))


@pytest.mark.slow
def test_byol_run_killed_in_its_second_stage_resumes_and_writes_every_artifact(tmp_path):
    """scripts/byol.py's whole chain at a test's sizes, killed in its second stage and
    resumed: the finished run has every file, and its int8 encoder agrees with Keras."""
    script = os.path.join(ROOT, "scripts", "byol.py")
    out = tmp_path / "byol"
    args = ["--dataset", "digits", "--pretrain-epochs", "1", "--student-pretrain-epochs", "2", "--distill-epochs", "1", "--prune-epochs", "1",
            "--qat-epochs", "1", "--latency-runs", "5", "--output", str(out), "--cache-dir", str(tmp_path / "cache")]
    first = _kill_on_lines([sys.executable, script, *args, "--verbose", "2"], "[kdtf] stage byol-student: ", "Epoch 2/2")
    assert list(json.loads((out / "manifest.json").read_text())["stages"]) == ["random-encoder", "byol-teacher"]
    trained_teacher = next(line for line in first.splitlines() if line.startswith("[kdtf] stage byol-teacher: BYOL pretraining"))
    resumed = subprocess.run([sys.executable, script, "--resume", str(out), "--verbose", "2"],
                             env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage byol-teacher: completed before" in resumed.stdout and trained_teacher not in resumed.stdout
    assert _epoch_lines(resumed.stdout, "[kdtf] stage byol-student: ") == ["Epoch 2/2"]  # continued after its checkpointed epoch 1
    report = json.loads((out / "report.json").read_text())
    assert [e["encoder"] for e in report["encoders"]] == ["random (teacher arch.)", "byol teacher", "byol student (scratch)",
                                                         "distilled student", "compressed student (int8 TFLite)"]
    assert list(report["byol_loss"]) == ["byol-teacher", "byol-student", "distilled"]  # the teacher's: from the manifest
    assert json.loads((out / "manifest.json").read_text())["complete"]
    expected = {"teacher_encoder.keras", "student_byol.keras", "student_encoder.keras", "student_compressed.h5",
                "student_encoder_int8.tflite", "model_card.json", "report.json", "report.md", "plot.png", "args.yaml"}
    assert expected <= set(os.listdir(out))
    assert all(0 <= e["linear_probe"] <= 1 and 0 <= e["knn"] <= 1 for e in report["encoders"])
    # int8 embeddings on LiteRT point the same way as the Keras model's: threshold 0.95
    assert report["tflite_keras_agreement"]["mean_cosine"] > 0.95
    assert report["encoders"][-1]["measured_on"] == "litert"
    assert [s["epochs"] for s in report["compression_steps"]] == [1, 1]  # --prune-epochs, --qat-epochs
    assert "sparsity" in report["verified_in_tflite"]
    assert json.loads((out / "model_card.json").read_text())["output_is"].startswith("embedding")
