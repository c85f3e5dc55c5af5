"""The defaults for photo folders: models whose size does not grow with the image, the
small-split warning, and the split sizes under the result table."""

import json
import os

import pytest

from kdtf.config import DistillConfig
from kdtf.defaults import default_models, resolve_models
from kdtf.report import render_markdown, render_summary
from kdtf.split_sizes import small_split_warning, small_splits

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "report.json")


def test_the_photo_models_have_the_same_parameter_count_at_96_and_224_px():
    from kdtf.models import build

    for name in ("photo_teacher", "photo_student"):
        at_96, at_224 = (build(name, (side, side, 3), 5).count_params() for side in (96, 224))
        assert at_96 == at_224, name
    teacher, student = (build(name, (96, 96, 3), 5).count_params() for name in ("photo_teacher", "photo_student"))
    assert teacher > 15 * student and teacher < 1_500_000  # clearly larger than its student, and under teacher_cnn's 4.8 M at 96 px


def test_auto_picks_the_small_cnns_up_to_28_px_and_the_photo_models_above():
    assert default_models((28, 28, 1)) == {"teacher": "teacher_cnn", "student": "student_cnn"}
    assert default_models((8, 8, 1)) == default_models((28, 28, 1))
    assert default_models((29, 28, 3)) == default_models((96, 96, 3)) == {"teacher": "photo_teacher", "student": "photo_student"}
    config, lines = DistillConfig(student="mobilenet_v2_035"), []
    assert resolve_models(config, (96, 96, 3), lines.append) == {"teacher": "photo_teacher"}
    assert (config.teacher, config.student) == ("photo_teacher", "mobilenet_v2_035")  # a named model is kept
    assert len(lines) == 1 and "teacher photo_teacher" in lines[0] and "student" not in lines[0].split("(")[0]
    assert resolve_models(config, (96, 96, 3), lines.append) == {} and len(lines) == 1  # nothing left to choose: no line


def test_the_default_model_takes_no_weights_file_and_the_fractions_are_checked(tmp_path):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"0")
    with pytest.raises(ValueError, match="--teacher-weights is for backbones .*: name one with --teacher"):
        DistillConfig(teacher_weights=str(weights)).validate()
    with pytest.raises(ValueError, match=r"Expected test_fraction in \(0, 0.5\). Received: test_fraction=0.5"):
        DistillConfig(test_fraction=0.5).validate()


def test_the_small_split_warning_fires_below_100_examples_and_not_from_100():
    assert small_splits({"train": 10, "val": 100, "test": 100}) == []
    assert small_split_warning([]) is None
    splits = small_splits({"train": 192, "val": 100, "test": 99})
    assert splits == [{"split": "test", "examples": 99, "points_per_example": 1.01}]
    splits = small_splits({"train": 192, "val": 24, "test": 24})
    assert [s["split"] for s in splits] == ["test", "val"] and splits[0]["points_per_example"] == pytest.approx(100 / 24, abs=0.01)
    line = small_split_warning(splits, {"val": 0.1, "test": 0.1})
    assert line.startswith("warning: small evaluation splits (test: 24 examples, 4.17 points of accuracy per example; validation: 24")
    assert "--test-fraction / --val-fraction (now 0.1 / 0.1)" in line and "more images" in line and "\n" not in line


def test_a_small_folder_warns_once_and_records_the_splits_and_the_bundled_digits_do_not(tmp_path):
    from kdtf.stages.data import data_section, load_run_data

    from helpers import make_folder

    config = DistillConfig(dataset=f"folder:{make_folder(tmp_path / 'photos', per_class=20)}", cache_dir=str(tmp_path / "cache"))
    lines = []
    data = load_run_data(config, lines.append)
    warnings = [line for line in lines if "small evaluation split" in line]
    assert len(warnings) == 1 and "test: 4 examples, 25.00 points" in warnings[0] and "validation: 4 examples" in warnings[0]
    assert [s["split"] for s in data_section(config, data)["small_splits"]] == ["test", "val"]
    lines = []
    data = load_run_data(DistillConfig(dataset="digits", cache_dir=str(tmp_path / "cache")), lines.append)
    assert data_section(config, data)["small_splits"] == [] and not any("warning" in line for line in lines)


def test_the_split_sizes_are_printed_under_the_result_table_and_in_report_md():
    with open(FIXTURE) as f:
        report = json.load(f)
    summary = render_summary(report, "out").splitlines()
    rows = next(i for i, line in enumerate(summary) if line.startswith("stage ")) + 2 + len(report["stages"])
    assert summary[rows] == "splits: 3999 train / 501 val / 500 test examples (one test example = 0.20 points)"
    assert "splits: 3999 train / 501 val / 500 test examples" in render_markdown(report)
    report["data"].update(train=192, val=24, test=24, small_splits=small_splits({"val": 24, "test": 24}))
    summary = render_summary(report, "out").splitlines()
    assert summary[rows].startswith("splits: 192 train / 24 val / 24 test examples (one test example = 4.17 points)")
    assert summary[rows + 1].startswith("warning: small evaluation splits (test: 24 examples")
    assert "warning: small evaluation splits" in render_markdown(report)
    assert "is below the scratch student" not in "\n".join(summary)  # the fixture's teacher is the stronger


def test_a_teacher_below_the_scratch_student_is_said_under_the_table():
    with open(FIXTURE) as f:
        report = json.load(f)
    accuracy = {s["stage"]: s for s in report["stages"]}
    accuracy["teacher"]["accuracy"], accuracy["scratch"]["accuracy"] = 0.554, 0.644
    line = next(line for line in render_summary(report, "out").splitlines() if "is below the scratch student" in line)
    assert line.startswith("warning: the teacher (55.4%) is below the scratch student (64.4%) on the test split")
    assert "--teacher-weights" in line and line in render_markdown(report)


def test_a_photo_teacher_trained_here_gets_flip_crop_and_480_steps_and_explicit_flags_win():
    from kdtf.teacher_defaults import resolve_teacher_training

    config, lines = DistillConfig(teacher="photo_teacher"), []
    line = resolve_teacher_training(config, (96, 96, 3), 6, lines.append)  # 355 photos: 6 steps an epoch
    assert (config.teacher_augment, config.teacher_epochs, config.augment) == ("flip,crop", 80, "")  # students keep none
    assert lines == [line] and "augmentation flip,crop (teacher only) and 80 epochs (at least 480 optimizer steps" in line
    assert resolve_teacher_training(config, (96, 96, 3), 6, lines.append) == "" and len(lines) == 1  # resolved once
    config = DistillConfig(teacher="photo_teacher", teacher_epochs=5, teacher_augment="none")  # explicit flags win
    assert resolve_teacher_training(config, (96, 96, 3), 6, lines.append) == ""
    assert (config.teacher_epochs, config.teacher_augment) == (5, "none") and len(lines) == 1
    config = DistillConfig(teacher="photo_teacher", augment="flip")  # the run's --augment: the teacher follows it
    assert "augmentation" not in resolve_teacher_training(config, (96, 96, 3), 6, lines.append) and config.teacher_augment == "flip"
    config = DistillConfig(teacher="photo_teacher")  # a large folder: 12 epochs are already 480 steps
    assert "optimizer steps" not in resolve_teacher_training(config, (224, 224, 3), 184, lines.append) and config.teacher_epochs == 12
    config = DistillConfig(teacher="teacher_cnn")  # the bundled sets: 12 epochs, the run's --augment, no line
    assert resolve_teacher_training(config, (28, 28, 1), 8, lines.append) == "" and (config.teacher_epochs, config.teacher_augment) == (12, "")
    with pytest.raises(ValueError, match="--teacher-augment 'mixup' and --augment '' must both mix labels"):
        DistillConfig(teacher_augment="mixup").validate()


def test_resuming_a_folder_written_before_teacher_augment_keeps_the_teacher_on_the_runs_augment(tmp_path):
    import dataclasses

    from kdtf.cli import save_args
    from kdtf.commands.distill import parse_args

    saved = dataclasses.asdict(DistillConfig(teacher="photo_teacher", augment="flip", output=str(tmp_path)))
    del saved["teacher_augment"]  # the args.yaml of a run started before the field existed
    save_args(saved, str(tmp_path))
    config, resume = parse_args(["--resume", str(tmp_path)])
    assert resume and config.teacher_augment == "flip"  # not auto's photo recipe half-way through its teacher
    save_args(dataclasses.asdict(DistillConfig(teacher="photo_teacher", output=str(tmp_path))), str(tmp_path))
    assert parse_args(["--resume", str(tmp_path)])[0].teacher_augment == "auto"  # a folder that has the field keeps it
