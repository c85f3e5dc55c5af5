"""scripts/distill.py: a tiny end-to-end run, YAML defaults, and bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "distill.py")
ARTIFACTS = {
    "teacher.keras", "scratch.keras", "student.keras", "student_pruned_qat.h5",
    "student_int8.tflite", "labels.txt", "report.json", "report.md", "plot.png", "args.yaml",
    "model_card.json",
}


def run_script(*args, timeout=600, script=SCRIPT):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.slow
def test_the_tests_of_the_shared_run_are_one_xdist_group(request, tiny_run):
    """The suite's time budget counts on the shared run being built once: under
    ``--dist loadgroup`` (setup.cfg) its tests carry their group in their node id, which
    pytest 9 with pytest-xdist 3.8 silently drops (the tests then spread over the workers
    and each builds the run)."""
    assert request.node.get_closest_marker("xdist_group").args == ("tiny_run",)
    if getattr(request.config.option, "loadgroup", False):  # in an xdist worker under --dist loadgroup
        assert request.node.nodeid.endswith("@tiny_run"), request.node.nodeid


@pytest.mark.slow
def test_smoke_run_writes_every_artifact(tiny_run):
    out, result = tiny_run
    assert ARTIFACTS <= set(os.listdir(out))
    assert not [n for n in os.listdir(out) if n.startswith(".")], "temporary files left behind"
    for stage in ("teacher", "scratch", "distilled", "pruned+qat", "tflite-int8"):
        assert f"stage {stage}" in result.stdout
    assert (out / "labels.txt").read_text().split() == [str(i) for i in range(10)]


@pytest.mark.slow
def test_report_lists_every_stage_with_measurements(tiny_run):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages) == ["teacher", "scratch", "distilled", "pruned+qat", "tflite-int8"]
    for stage in stages.values():
        for key in ("accuracy", "params", "size_bytes", "gzip_bytes", "sparsity", "latency_ms"):
            assert stage[key] >= 0, (stage["stage"], key)
        assert stage["size_bytes"] == os.path.getsize(out / stage["file"])
    assert stages["teacher"]["params"] >= 10 * stages["distilled"]["params"]
    assert report["data"]["labelled"] == 500  # the default keeps 500 labels
    assert report["verified_in_tflite"]["sparsity"]["fc1"] == pytest.approx(0.75, abs=0.01)
    assert stages["tflite-int8"]["sparsity"] == pytest.approx(stages["pruned+qat"]["sparsity"], abs=0.01)
    assert stages["pruned+qat"]["sparsity"] > 0.5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["teacher"]["record"]["val_accuracy"] > 0.19  # the gate let a good teacher through
    markdown = (out / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in stages)


@pytest.mark.slow
def test_int8_tflite_is_within_3_points_of_its_keras_model(tiny_run):
    out, _ = tiny_run
    stages = {s["stage"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert abs(stages["tflite-int8"]["accuracy"] - stages["pruned+qat"]["accuracy"]) <= 0.03
    from kdtf.export import load_interpreter

    interpreter = load_interpreter(str(out / "student_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


@pytest.mark.slow
def test_yaml_sets_defaults_flags_override_and_final_args_are_saved(tiny_run):
    out, _ = tiny_run
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["epochs"] == 3  # flag beats YAML
    assert args["teacher_epochs"] == 3 and args["qat_epochs"] == 1  # from YAML
    assert args["temperature"] == 4.0  # built-in default


@pytest.mark.slow
def test_saved_student_reloads_and_predicts(tiny_run):
    out, _ = tiny_run
    from kdtf import keras

    student = keras.models.load_model(out / "student.keras")
    assert student.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0).shape == (2, 10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "0"], "Expected temperature > 0. Received: temperature=0.0"),
        (["--alpha", "1.5"], r"Expected alpha in [0, 1]. Received: alpha=1.5"),
        (["--sparsity", "1.0"], "Expected sparsity in [0, 1). Received: sparsity=1.0"),
        (["--epochs", "-1"], "Expected epochs to be a positive integer. Received: epochs=-1"),
        (["--dataset", "cifar99"], "Unknown data set spec 'cifar99' (--dataset). Known: cluttered, digits, mnist5k"),
        (["--teacher", "resnet9000"], "Unknown teacher model 'resnet9000'"),
        (["--compress", "squeeze:3"], "Unknown compression step 'squeeze:3'"),
        (["--compress", "qat,prune:0.5"], "'qat' must be the last compression step"),
        (["--compress", "filters:0.5,qat", "--sparsity", "0.5"],
         "--sparsity 0.5 only sets the default steps; with --compress 'filters:0.5,qat' they would be ignored. "
         "Say it in the steps instead: --compress 'filters:0.5,prune:0.5,qat'"),
        (["--compress", "lowrank:0.9,qat", "--no-qat"], "Say it in the steps instead: --compress 'lowrank:0.9'"),
        (["--compress", "prune:0.5,qat", "--ptq", "int8"], "end in quantization-aware training: --compress 'prune:0.5'"),
        (["--distill", "kd,fitness:0.5"], "Unknown distillation term 'fitness'"),
        (["--distill", "kd,fitnets:0.5"], "name them"),
        (["--labels", "-5"], "Expected labels to be an integer >= 0 (0 keeps every label). Received: labels=-5"),
        (["--dataset", "folder:/no/such/dir"], "Image folder not found: '/no/such/dir'"),
        (["--dataset", "tfds:"], "Unknown data set spec 'tfds:' (--dataset)"),
        (["--transfer-set", "folder:/no/unlabeled"], "Transfer-set folder not found: '/no/unlabeled'"),
        (["--augment", "flip,rotate"], "Unknown augmentation 'rotate' (--augment)"),
        (["--teacher-weights", "w.h5"], "--teacher-weights is for backbones"),
        (["--teacher", "mobilenet_v2", "--teacher-weights", "/no/w.h5"], "Weights file not found: '/no/w.h5' (--teacher-weights)"),
        (["--cache-teacher", "on", "--augment", "flip"], "--cache-teacher on needs a deterministic input pipeline"),
        (["--strategy", "horovod"], "Unknown strategy 'horovod' (--strategy). Known: default, mirrored"),
        (["--cache-teacher", "yes"], "Unknown cache_teacher (--cache-teacher) 'yes'. Expected one of: auto, on, off"),
        (["--image-size", "-3"], "Expected image_size to be an integer >= 0. Received: image_size=-3"),
    ],
)
def test_bad_flags_exit_2_with_one_clear_line_and_write_nothing(tmp_path, capsys, args, message):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import distill

    out = tmp_path / "out"
    assert distill.main([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("epochs: 2\nepoch: 3\n", "Unknown key(s) in"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("epochs: [1\n", "is not valid YAML"),
    ],
)
def test_bad_yaml_is_refused_by_name(tmp_path, capsys, content, message):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import distill

    config = tmp_path / "bad.yaml"
    config.write_text(content)
    assert distill.main(["--config", str(config), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_non_numeric_epochs_is_an_argparse_error():
    result = run_script("--epochs", "many", timeout=120)
    assert result.returncode == 2
    assert "argument --epochs: invalid int value: 'many'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_model_card_describes_the_shipped_model(tiny_run):
    out, _ = tiny_run
    card = json.loads((out / "model_card.json").read_text())
    report = {s["stage"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert card["file"] == "student_int8.tflite"
    assert card["input"]["dtype"] == "int8" and card["input"]["shape"] == [1, 28, 28, 1]
    # inputs are x / 255 in [0, 1]: int8 quantization maps them with scale ~1/255
    assert card["input"]["scale"] == pytest.approx(1 / 255, rel=0.05)
    assert card["normalization"] == "x / 255"
    assert card["class_names"] == [str(i) for i in range(10)]
    assert card["metrics_on_litert"]["accuracy"] == report["tflite-int8"]["accuracy"]
    assert "FLEX" not in " ".join(card["ops"])


@pytest.mark.slow
def test_compressed_qat_model_reloads_and_matches_the_tflite_predictions(tiny_run):
    out, _ = tiny_run
    from kdtf.data import load
    from kdtf.export import evaluate
    from kdtf.saving import load_model

    qat = load_model(out / "student_pruned_qat.h5")
    data = load("mnist5k")
    result = evaluate(str(out / "student_int8.tflite"), data.x_test[:200], data.y_test[:200], keras_model=qat)
    assert result["agreement"] >= 0.97
    # the report compares the file with this model, not with student.keras (before pruning and QAT: about 3 dB)
    row = json.loads((out / "report.json").read_text())["stages"][-1]
    assert row["converted_from"] == "student_pruned_qat.h5" and row["snr_db_against_keras"] > 25
    assert "`student_int8.tflite` against `student_pruned_qat.h5`, the Keras model it was converted from" in (out / "report.md").read_text()


@pytest.mark.slow
def test_report_script_rerenders_from_report_json(tiny_run):
    out, _ = tiny_run
    (out / "report.md").unlink()
    (out / "plot.png").unlink()
    result = run_script(str(out), script=os.path.join(ROOT, "scripts", "report.py"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tflite-int8 |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_report_script_refuses_a_folder_without_report(tmp_path):
    result = run_script(str(tmp_path), script=os.path.join(ROOT, "scripts", "report.py"), timeout=120)
    assert result.returncode == 2 and "No report found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_benchmark_script_prints_size_ops_latency_and_accuracy(tiny_run):
    out, _ = tiny_run
    result = run_script(
        str(out / "student_int8.tflite"), "--data", "mnist5k", "--keras", str(out / "student_pruned_qat.h5"),
        "--runs", "5", "--warmup", "1", "--json", script=os.path.join(ROOT, "scripts", "benchmark_tflite.py"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["size_bytes"] == os.path.getsize(out / "student_int8.tflite")
    assert report["latency_1_thread"]["median_ms"] > 0 and report["keras_latency"]["median_ms"] > 0
    assert report["test"]["agreement"] >= 0.97


@pytest.mark.slow
def test_benchmark_script_refuses_a_corrupt_tflite(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x00" * 100)
    result = run_script(str(bad), script=os.path.join(ROOT, "scripts", "benchmark_tflite.py"), timeout=120)
    assert result.returncode == 2
    assert "is not a TFLite flatbuffer" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_low_rank_recipe_reports_the_factorized_parameter_count_for_the_tflite(tmp_path):
    out = tmp_path / "out"
    result = run_script(
        "--dataset", "digits", "--allow-weak-teacher", "--allow-collapse",  # the factorization is under test, not the data
        "--compress", "lowrank:4,qat", "--teacher-epochs", "1", "--epochs", "1", "--prune-epochs", "1",
        "--qat-epochs", "1", "--latency-runs", "0", "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--verbose", "0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stages = {s["stage"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert stages["lowrank+qat"]["params"] < stages["distilled"]["params"]
    assert stages["tflite-int8"]["params"] == stages["lowrank+qat"]["params"]


@pytest.mark.slow
def test_tpu_strategy_without_a_tpu_is_one_clear_line(tmp_path):
    # in a subprocess: connecting to a TPU cluster changes process-wide TF state
    result = run_script("--strategy", "tpu", "--output", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: No TPU found for --strategy tpu" in result.stderr
    assert not (tmp_path / "out").exists()


def _learnable_folder(root, classes=("red", "green", "blue"), per_class=40):
    """Photos a CNN can tell apart: each class has its own dominant colour channel."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, size=(48, 48, 3)).astype(np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


@pytest.mark.slow
def test_a_120_image_folder_runs_with_no_data_or_model_flags_and_keeps_every_label(tmp_path):
    folder = _learnable_folder(tmp_path / "photos")
    out = tmp_path / "out"
    # no flag about data, labels or models; only a test's epochs
    result = run_script("--dataset", f"folder:{folder}", "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
                        "--teacher-epochs", "2", "--epochs", "2", "--prune-epochs", "1", "--qat-epochs", "1",
                        "--latency-runs", "0", "--allow-weak-teacher", "--allow-collapse")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["labelled"] == report["data"]["train"] == 96  # no label-scarce default on a user's data
    assert report["config"]["labels"] is None
    # the photo defaults (above 28 px), and the 12-image splits said once, recorded and under the table
    assert (report["config"]["teacher"], report["config"]["student"]) == ("photo_teacher", "photo_student")
    # the teacher's photo defaults: flip,crop for the teacher only, said in the log and report.json; --teacher-epochs 2 wins
    assert (report["config"]["teacher_augment"], report["config"]["augment"], report["config"]["teacher_epochs"]) == ("flip,crop", "", 2)
    assert report["teacher_defaults"].startswith("teacher defaults for photos: augmentation flip,crop (teacher only), because")
    assert report["teacher_defaults"] in result.stdout
    assert result.stdout.count("warning: small evaluation splits (test: 12 examples, 8.33 points") == 2  # the log line, the table
    assert [s["split"] for s in report["data"]["small_splits"]] == ["test", "val"]
    assert "splits: 96 train / 12 val / 12 test examples (one test example = 8.33 points)" in result.stdout


@pytest.mark.slow
def test_the_teacher_gate_and_the_collapse_guard_stop_a_chance_level_run_with_the_fixes(tmp_path):
    args = ["--dataset", "digits", "--lr", "1e-9", "--teacher-epochs", "1", "--epochs", "1", "--prune-epochs", "1",
            "--qat-epochs", "1", "--latency-runs", "0", "--cache-dir", str(tmp_path / "cache"), "--verbose", "0"]
    stopped = run_script(*args, "--output", str(tmp_path / "stopped"))
    assert stopped.returncode == 2
    assert "barely above chance (10.0% for 10 classes" in stopped.stderr and "--allow-weak-teacher" in stopped.stderr
    assert "stage scratch" not in stopped.stdout
    # the scratch student of a 1e-9 rate is at chance too: the collapse guard stops the run after its stage
    collapsed = run_script(*args, "--output", str(tmp_path / "collapsed"), "--allow-weak-teacher")
    assert collapsed.returncode == 2 and "Traceback" not in collapsed.stderr
    assert "error: stage scratch: the model collapsed: accuracy" in collapsed.stderr
    assert "lower the learning rate" in collapsed.stderr and "--allow-collapse goes on anyway" in collapsed.stderr
    assert "stage distilled" not in collapsed.stdout
    allowed = run_script(*args, "--output", str(tmp_path / "allowed"), "--allow-weak-teacher", "--allow-collapse", "--no-qat")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "warning: The teacher reaches" in allowed.stdout and "stage scratch" in allowed.stdout
    assert "stage distilled: the model collapsed" in allowed.stderr  # a warning, and the run goes on


def test_the_gate_threshold_is_a_tenth_of_the_way_from_chance():
    from kdtf.stages.teacher import weak_teacher_threshold

    assert weak_teacher_threshold(10) == pytest.approx(0.19)
    assert weak_teacher_threshold(2) == pytest.approx(0.55)


def test_help_answers_before_tensorflow_loads_and_lists_the_names():
    code = (
        "import runpy, sys\nsys.argv = ['distill.py', '--help']\n"
        f"try:\n    runpy.run_path({SCRIPT!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('TENSORFLOW LOADED:', 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "TENSORFLOW LOADED: False" in result.stdout
    for name in ("mobilenet_v2", "vit_student", "teacher_cnn", "fitnets", "attention", "filters:F", "randaugment"):
        assert name in result.stdout
    assert "(default: )" not in result.stdout and "(default: -1)" not in result.stdout


def test_a_kdtf_error_is_one_line_without_tensorflow_start_up_lines(tmp_path):
    result = run_script("--teacher", str(tmp_path / "missing.keras"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: Teacher model file not found: '{tmp_path / 'missing.keras'}' (--teacher)."]


@pytest.mark.slow
def test_the_stanford_dogs_command_of_the_readme_runs_on_a_folder_of_that_layout(tmp_path):
    """README's Stanford Dogs command (Images/<wnid>-<breed>/<wnid>_<n>.jpg, a MobileNetV2
    teacher and a MobileNetV2-0.35 student from local no-top weights files, two-phase
    fine-tuning, filter pruning + QAT), with the sizes and epochs of a test; and, in the
    same run, an unlabeled transfer set folder and augmentation (one whole run of the
    backbones instead of two)."""
    from PIL import Image

    from kdtf import keras

    from helpers import write_png

    rng = np.random.default_rng(1)
    for c, breed in enumerate(["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]):
        os.makedirs(tmp_path / "Images" / breed)
        for i in range(10):
            pixels = rng.integers(0, 90, size=(50, 60, 3)).astype(np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(tmp_path / "Images" / breed / f"{breed.split('-')[0]}_{1000 + i}.jpg")
    for i in range(10):
        write_png(str(tmp_path / "unlabeled" / f"{i}.png"), int(rng.integers(0, 180)), size=(20, 20))
    for alpha, name in ((1.0, "teacher.h5"), (0.35, "student.h5")):
        keras.applications.MobileNetV2(alpha=alpha, include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
            str(tmp_path / name))
    out = tmp_path / "dogs"
    result = run_script(
        "--dataset", f"folder:{tmp_path / 'Images'}", "--image-size", "32",
        "--teacher", "mobilenet_v2", "--teacher-weights", str(tmp_path / "teacher.h5"),
        "--student", "mobilenet_v2_035", "--student-weights", str(tmp_path / "student.h5"),
        "--compress", "filters:0.5:l1:uniform:1,qat", "--output", str(out),
        "--transfer-set", f"folder:{tmp_path / 'unlabeled'}", "--augment", "flip,crop,mixup", "--unfreeze-layers", "10",
        # a test's sizes (and one pruning round instead of three):
        "--teacher-epochs", "1", "--finetune-epochs", "1", "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "1",
        "--batch-size", "8", "--latency-runs", "0", "--allow-weak-teacher", "--allow-collapse", "--cache-dir", str(tmp_path / "cache"), "--verbose", "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "labels.txt").read_text().split() == ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]
    report = json.loads((out / "report.json").read_text())
    # every label of the user's folder (the transfer set's 10 images are the unlabeled rest)
    assert report["data"]["labelled"] == report["data"]["train"] - report["data"]["transfer_set"] == 24
    assert "filters" in report["verified_in_tflite"] and report["stages"][-1]["stage"] == "tflite-int8"
    assert report["stages"][-1]["params"] < report["stages"][2]["params"]  # filters really removed
    assert {s["latency_ms"] for s in report["stages"]} == {None} and "| not timed |" in (out / "report.md").read_text()  # --latency-runs 0
    assert "two-phase fine-tuning of teacher" in result.stdout
    assert ARTIFACTS - {"student_pruned_qat.h5"} | {"student_filters_qat.h5"} <= set(os.listdir(out))  # named by its steps
    assert report["data"]["input_shape"] == [32, 32, 3] and report["data"]["transfer_set"] == 10
    assert report["data"]["augment"] == "flip,crop,mixup"
    assert json.loads((out / "model_card.json").read_text())["normalization"] == "x / 255"


@pytest.mark.slow
def test_optimizer_schedule_and_litert_quantizer_ptq_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = run_script(
        "--dataset", "digits", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--weight-decay", "5e-4",
        "--lr-schedule", "cosine", "--warmup-epochs", "1", "--l1", "1e-6", "--no-qat", "--ptq", "int8", "--ptq-mixed",
        "--ptq-max-drop", "0.0", "--teacher-epochs", "3", "--epochs", "2", "--prune-epochs", "1", "--latency-runs", "0",
        "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--verbose", "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert (args["optimizer"], args["lr_schedule"], args["weight_decay"], args["warmup_epochs"], args["ptq"]) == ("sgd", "cosine", 5e-4, 1, "int8")
    report = json.loads((out / "report.json").read_text())
    assert report["stages"][-1]["stage"] == "tflite-int8" and report["ptq"]["tool"] == "litert-quantizer"
    assert len(report["layer_errors"]) >= 4 and "kept_float" in report["ptq"]
    assert "## Per-op error of the quantized file against float" in (out / "report.md").read_text()  # "SNR" alone: also the export line


@pytest.mark.slow
def test_the_missions_cifar10_resnet_config_runs_on_mock_tfds_data(tmp_path, capsys):
    import tensorflow_datasets as tfds

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import distill

    config = os.path.join(ROOT, "configs", "cifar10_resnet.yaml")
    # the config as written, but small models and few steps: ResNet-50 and ResNet-18 themselves
    # are exercised by tests/test_transfer.py and tests/test_resnet.py
    args = ["--config", config, "--teacher", "teacher_cnn", "--student", "student_cnn", "--teacher-epochs", "1", "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "1",
            "--batch-size", "16", "--latency-runs", "0", "--allow-weak-teacher", "--allow-collapse", "--output", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--verbose", "0"]
    with tfds.testing.mock_data(num_examples=48):
        assert distill.main(args) == 0, capsys.readouterr().err
    assert yaml.safe_load(open(config))["student"] == "resnet18_cifar"
    saved = yaml.safe_load((tmp_path / "out" / "args.yaml").read_text())
    assert (saved["student"], saved["optimizer"], saved["lr_schedule"], saved["temperature"]) == ("student_cnn", "sgd", "cosine", 5.0)
    assert (saved["learning_rate"], saved["weight_decay"], saved["momentum"]) == (0.1, 0.0005, 0.9)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data"]["input_shape"] == [32, 32, 3] and report["data"]["name"] == "tfds:cifar10"


@pytest.mark.slow
def test_a_keras3_teacher_file_runs_the_whole_chain(tmp_path):
    import keras as keras3

    teacher = keras3.Sequential([keras3.Input((28, 28, 1)), keras3.layers.Conv2D(8, 3, strides=2), keras3.layers.LeakyReLU(negative_slope=0.2),
                                 keras3.layers.Flatten(), keras3.layers.Dense(10)], name="k3_teacher")
    teacher.save(str(tmp_path / "k3_teacher.keras"))
    out = tmp_path / "out"
    result = run_script("--teacher", str(tmp_path / "k3_teacher.keras"), "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "1",
                        "--latency-runs", "0", "--allow-weak-teacher", "--allow-collapse", "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
                        "--verbose", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "converted the Keras 3 model 'k3_teacher' to tf_keras" in result.stdout
    assert json.loads((out / "report.json").read_text())["stages"][0]["stage"] == "teacher"


@pytest.mark.slow
def test_the_run_prints_its_table_and_where_the_android_files_are(tiny_run):
    out, result = tiny_run
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage ") and "accuracy" in line)
    rows = [line.split()[0] for line in lines[header + 2:header + 7]]
    assert rows == ["teacher", "scratch", "distilled", "pruned+qat", "tflite-int8"]
    assert lines[header + 7].startswith("splits: 3999 train / ") and "small evaluation split" not in result.stdout  # 500-example splits
    assert f"run folder: {out}" in result.stdout
    assert "for Android: student_int8.tflite, labels.txt, model_card.json" in result.stdout


@pytest.mark.slow
def test_tensorboard_logs_hold_a_loss_and_accuracy_curve_per_training_stage(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = tiny_run
    logs = out / "logs"
    for stage in ("teacher", "scratch", "distilled", "compress-0", "compress-1"):
        events = EventAccumulator(str(logs / stage / "train"), size_guidance={"tensors": 0})
        events.Reload()
        tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
        assert {"epoch_loss", "epoch_accuracy"} <= tags, (stage, tags)
        curve = events.Tensors("epoch_loss") if "epoch_loss" in events.Tags()["tensors"] else events.Scalars("epoch_loss")
        assert len(curve) >= 1
