"""Every CLI against a table of bad inputs: exit code 2, a message of a few lines that
names the bad value, no traceback, and no new files in the output folder."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Bad files and folders, made once."""
    from kdtf import keras

    from helpers import make_folder, write_png

    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    make_folder(root / "good")
    write_png(str(root / "one_class" / "cat" / "a.png"), 10)
    make_folder(root / "corrupt_class")
    (root / "corrupt_class" / "fox").mkdir()
    (root / "corrupt_class" / "fox" / "x.jpg").write_bytes(b"not an image")
    (root / "corrupt.keras").write_bytes(b"PK\x03\x04 truncated")
    (root / "corrupt.tflite").write_bytes(b"\x00" * 64)
    (root / "not_report").mkdir()
    (root / "bad_report").mkdir()
    (root / "bad_report" / "report.json").write_text("{ not json")
    (root / "a_file").write_text("x")
    (root / "unknown_key.yaml").write_text("epochs: 2\nepoch: 3\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "broken.yaml").write_text("epochs: [1\n")
    five = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    five.save(str(root / "five_classes.keras"))
    lam = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x), keras.layers.Flatten(), keras.layers.Dense(10)])
    lam.save(str(root / "lambda_teacher.keras"))
    return root


D, B, R, T = "distill", "byol", "report", "benchmark_tflite"
CASES = [
    (D, ["--dataset", "cifar99"], "Unknown data set spec 'cifar99'"),
    (D, ["--dataset", "folder:{root}/missing"], "Image folder not found"),
    (D, ["--dataset", "folder:{root}/empty"], "has no class subfolders"),
    (D, ["--dataset", "folder:{root}/one_class"], "has 1 class subfolder(s) (cat)"),
    (D, ["--dataset", "folder:{root}/corrupt_class"], "No readable image in class folder(s) fox"),
    (D, ["--dataset", "tfds:mnist", "--data-dir", "{root}/no_tfds"], "'mnist' is not prepared in"),
    (D, ["--image-size", "4"], "Received: image_size=4"),
    (D, ["--dataset", "folder:{root}/good", "--teacher", "mobilenet_v2", "--image-size", "16", "--labels", "0"], "needs images of at least 32x32"),
    (D, ["--epochs", "-1"], "Received: epochs=-1"),
    (D, ["--epochs", "five"], "invalid int value: 'five'"),
    (D, ["--temperature", "0"], "Expected temperature > 0. Received: temperature=0.0"),
    (D, ["--alpha", "1.5"], "Expected alpha in [0, 1]. Received: alpha=1.5"),
    (D, ["--sparsity", "1"], "Expected sparsity in [0, 1). Received: sparsity=1.0"),
    (D, ["--compress", "squeeze:3"], "Unknown compression step 'squeeze:3'"),
    (D, ["--distill", "kd,fitness:0.5"], "Unknown distillation term 'fitness'"),
    (D, ["--distill", "kd,fitnets:1@nope/conv4"], "nope"),
    (D, ["--teacher", "{root}/five_classes.keras"], "outputs 5 classes, but mnist5k has 10"),
    (D, ["--teacher", "{root}/corrupt.keras"], "is not a .keras archive"),
    (D, ["--teacher", "{root}/missing.keras"], "Teacher model file not found"),
    (D, ["--teacher", "{root}/lambda_teacher.keras"], "--unsafe-load"),
    (D, ["--teacher", "resnet9000"], "Unknown teacher model 'resnet9000'"),
    (D, ["--labels", "100000"], "Received: labels=100000"),
    (D, ["--augment", "rotate"], "Unknown augmentation 'rotate'"),
    (D, ["--strategy", "horovod"], "Unknown strategy 'horovod'"),
    (D, ["--cache-teacher", "on", "--augment", "flip"], "needs a deterministic input pipeline"),
    (D, ["--transfer-set", "folder:{root}/missing"], "Transfer-set folder not found"),
    (D, ["--config", "{root}/unknown_key.yaml"], "Unknown key(s)"),
    (D, ["--config", "{root}/list.yaml"], "must hold a mapping"),
    (D, ["--config", "{root}/broken.yaml"], "is not valid YAML"),
    (D, ["--resume", "{root}/empty"], "no args.yaml there"),
    (D, ["--output", "{root}/a_file/run"], "Cannot write to the --output folder"),
    (D, ["--optimizer", "rmsprop"], "Received: --optimizer 'rmsprop'"),
    (D, ["--lr-schedule", "linear"], "Received: --lr-schedule 'linear'"),
    (D, ["--weight-decay", "-0.0005"], "Expected weight decay >= 0. Received: --weight-decay -0.0005"),
    (D, ["--warmup-epochs", "20"], "Expected --warmup-epochs below the 12 epochs of --teacher-epochs"),
    (D, ["--ptq", "int3", "--no-qat"], "Unknown post-training quantization (--ptq) 'int3'"),
    (D, ["--ptq", "int8"], "end in quantization-aware training: add --no-qat"),
    (D, ["--compress", "filters:0.5,qat", "--no-qat"], "--no-qat only sets the default steps"),
    (B, ["--compress", "prune:0.5,squeeze"], "Unknown compression step 'squeeze'"),
    (D, ["--compress", "filters:1.5,qat"], "filters"),
    (D, ["--compress", "prune:0.5,filters:0.5"], "'filters' must come before prune"),
    (D, ["--progressive-epochs", "-1"], "Received: progressive_epochs=-1"),
    (D, ["--latency-runs", "-1"], "Received: latency_runs=-1"),
    (B, ["--pretrain-epochs", "0"], "Expected pretrain_epochs to be a positive integer"),
    (B, ["--base-tau", "2"], "Expected base_tau in [0, 1]"),
    (B, ["--dataset", "nope"], "Unknown data set spec 'nope'"),
    (B, ["--student", "vit"], "Unknown student encoder 'vit'"),
    (B, ["--resume", "{root}/empty"], "no args.yaml there"),
    (R, ["{root}/not_report"], "report.json"),
    (R, ["{root}/bad_report"], "report.json"),
    (T, ["{root}/corrupt.tflite"], "corrupt.tflite"),
    (T, ["{root}/missing.tflite"], "missing.tflite"),
    (T, ["{root}/corrupt.tflite", "--keras", "{root}/corrupt.keras"], "corrupt"),
]


@pytest.mark.parametrize("cli, args, message", CASES, ids=[f"{c}:{' '.join(a)[:40]}" for c, a, _ in CASES])
@pytest.mark.slow
def test_bad_input_exits_2_with_a_short_message_and_writes_nothing(inputs, tmp_path, capsys, cli, args, message):
    import importlib

    module = importlib.import_module(cli)
    out = tmp_path / "out"
    argv = [a.format(root=inputs) for a in args]
    if cli in (D, B) and "--output" not in argv and "--resume" not in argv:
        argv += ["--output", str(out)]
    if cli == D and "--resume" not in argv:
        argv += ["--cache-dir", str(tmp_path / "cache")]
    before = sorted(os.listdir(inputs))
    try:
        code = module.main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err.format(), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert not out.exists() or os.listdir(out) == [], os.listdir(out)
    cache = tmp_path / "cache"  # a complete cache of decoded images may be there (reused by the next run), no teacher
    assert not cache.exists() or all(name.startswith("images-") for name in os.listdir(cache)), os.listdir(cache)
    assert sorted(os.listdir(inputs)) == before


def test_the_suite_holds_at_least_25_cases():
    assert len(CASES) >= 25
