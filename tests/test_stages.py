"""The stage runner, stages as objects with typed records, the report built from the
records, and the derived cache key of a trained teacher.

The "add a stage" walk-through of docs/architecture.md is here: :class:`Float16Stage` is
defined in this file alone and runs through :class:`kdtf.stages.StageRunner` (fast, on a
tiny model) and through the whole distillation pipeline (slow).
"""

import dataclasses
import json
import os

import numpy as np
import pytest

from kdtf import export
from kdtf.config import DistillConfig
from kdtf.report import merge_sections, run_report
from kdtf.runstate import RunState
from kdtf.saving import load_model, save_model
from kdtf.stages import Record, Stage, StageRunner
from kdtf.stages.teacher import TEACHER_NEUTRAL, teacher_cache_key

from helpers import INPUT_SHAPE, tiny_cnn


# --- the new stage: everything a stage needs, in this file alone ---------------------------
@dataclasses.dataclass
class Float16Record(Record):
    """What the new stage measured; stored in the manifest, read back on --resume."""

    file: str
    size_bytes: int
    params: int
    max_difference: float

    def report_sections(self):
        return {"float16": dataclasses.asdict(self)}


@dataclasses.dataclass
class Float16Stage(Stage):
    """A float16 TFLite copy of the Keras model of ``model`` (any stage whose product is
    a Keras model), checked against it on LiteRT."""

    out: str
    model: Stage
    name = "float16"
    record_type = Float16Record

    def describe(self):
        return f"float16 TFLite copy of the {self.model.name} model"

    def train(self, callbacks):
        return export.to_tflite(self.model.product, "float16")

    def save(self, flatbuffer):
        return [export.save_tflite(flatbuffer, os.path.join(self.out, "student_fp16.tflite"))]

    def measure(self, flatbuffer, paths):
        x = np.random.default_rng(0).random((16, *self.model.product.input_shape[1:]), dtype=np.float32)
        difference = np.abs(export.predict(paths[0], x) - self.model.product.predict(x, verbose=0)).max()
        return Float16Record(os.path.basename(paths[0]), os.path.getsize(paths[0]), self.model.product.count_params(),
                             float(difference))

    def load(self, record):
        with open(os.path.join(self.out, record.file), "rb") as f:
            return f.read()


# --- a small upstream stage for the fast tests ----------------------------------------------
@dataclasses.dataclass
class TinyModelRecord(Record):
    file: str
    params: int

    def report_sections(self):
        return {"stages": [{"stage": "tiny", "params": self.params}]}


@dataclasses.dataclass
class TinyModelStage(Stage):
    out: str
    calls: list
    name = "tiny"
    record_type = TinyModelRecord

    def train(self, callbacks):
        self.calls.append(("train", sorted(type(c).__name__ for c in callbacks)))
        return tiny_cnn(4, 8, "tiny")

    def save(self, model):
        return [save_model(model, os.path.join(self.out, "tiny.keras"))]

    def measure(self, model, paths):
        return TinyModelRecord(os.path.basename(paths[0]), model.count_params())

    def load(self, record):
        self.calls.append(("load", record.file))
        return load_model(os.path.join(self.out, record.file))


def _stages(out, calls):
    tiny = TinyModelStage(out, calls)
    return [tiny, Float16Stage(out, tiny)]


def test_runner_runs_stages_in_order_and_a_new_stage_reads_its_input_by_attribute(tmp_path):
    calls, out = [], str(tmp_path)
    runner = StageRunner(RunState(out, {}), log=lambda text: None)
    tiny, fp16 = _stages(out, calls)
    runner.run_all([tiny, fp16])
    assert calls == [("train", ["BackupAndRestore", "TensorBoard"])]  # resumable, and logged per stage
    assert runner.records == [tiny.record, fp16.record] and isinstance(fp16.record, Float16Record)
    assert fp16.record.params == tiny.product.count_params() == tiny.record.params
    assert fp16.record.max_difference < 1e-2  # float16 weights: outputs within 1e-2 of float32
    assert set(runner.timings) == {"tiny_s", "float16_s"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["tiny", "float16"]
    assert manifest["stages"]["float16"]["record"] == dataclasses.asdict(fp16.record)
    assert manifest["stages"]["float16"]["files"] == [str(tmp_path / "student_fp16.tflite")]
    report = run_report(DistillConfig(), {"name": "tiny"}, runner.records, runner.timings)
    assert report["float16"] == dataclasses.asdict(fp16.record)
    assert report["stages"] == [{"stage": "tiny", "params": tiny.record.params}]
    assert report["timings"] is runner.timings and report["config"]["dataset"] == "mnist5k"


def test_a_resumed_runner_loads_completed_stages_into_their_record_types_without_training(tmp_path):
    out = str(tmp_path)
    first = _stages(out, [])
    StageRunner(RunState(out, {}), log=lambda text: None).run_all(first)
    calls, lines = [], []
    runner = StageRunner(RunState(out, {}, resume=True), log=lines.append)
    tiny, fp16 = _stages(out, calls)
    runner.run_all([tiny, fp16])
    assert calls == [("load", "tiny.keras")] and runner.timings == {}
    assert fp16.record == first[1].record and isinstance(fp16.record, Float16Record)
    assert fp16.product == open(tmp_path / "student_fp16.tflite", "rb").read()
    assert lines == ["stage tiny: completed before, loaded from the run folder",
                     "stage float16: completed before, loaded from the run folder"]


def test_a_stage_that_refuses_its_record_stops_the_run_before_the_next_stage(tmp_path):
    class Gate(TinyModelStage):
        def accept(self, record):
            raise ValueError(f"Expected fewer parameters. Received: {record.params}")

    calls, out = [], str(tmp_path)
    runner = StageRunner(RunState(out, {}), log=lambda text: None)
    fp16 = Float16Stage(out, None)
    with pytest.raises(ValueError, match="Expected fewer parameters"):
        runner.run_all([Gate(out, calls), fp16])
    assert fp16.record is None and list(json.loads((tmp_path / "manifest.json").read_text())["stages"]) == ["tiny"]


@dataclasses.dataclass
class _Rows(Record):
    sections: dict

    def report_sections(self):
        return self.sections


def test_report_sections_append_lists_merge_dicts_and_set_values_in_stage_order():
    merged = merge_sections([_Rows({"stages": [1], "timing": {"a": 1}, "mode": "x"}),
                             _Rows({"stages": [2, 3], "timing": {"b": 2}, "mode": "y"}), _Rows({})])
    assert merged == {"stages": [1, 2, 3], "timing": {"a": 1, "b": 2}, "mode": "y"}


# --- the teacher's cache key -----------------------------------------------------------------
class _Data:
    """What the key reads of a data set (name, input shape, training fingerprint, labels)."""

    name, input_shape = "tiny", INPUT_SHAPE

    def __init__(self, labels=(0, 1, 2, 3), files="a.png,b.png"):
        self.y_train, self.files = np.asarray(labels, np.int64), files

    def fingerprint(self, split):
        return f"{split}:{self.files}"


@dataclasses.dataclass
class _ConfigWithANewFlag(DistillConfig):
    new_flag: int = 0  # a setting added after the key was written


def test_a_new_setting_changes_the_teacher_key_and_a_listed_one_does_not():
    data = _Data()
    base = teacher_cache_key(_ConfigWithANewFlag(), data)
    assert teacher_cache_key(_ConfigWithANewFlag(new_flag=1), data) != base
    assert "new_flag" not in TEACHER_NEUTRAL
    for name, value in [("epochs", 3), ("student", "teacher_cnn"), ("compress", "cluster:8"), ("output", "elsewhere"),
                        ("temperature", 2.0), ("latency_runs", 0)]:
        assert name in TEACHER_NEUTRAL
        assert teacher_cache_key(_ConfigWithANewFlag(**{name: value}), data) == base, name


def test_the_teacher_key_follows_training_settings_data_and_labels():
    config, data = DistillConfig(), _Data()
    base = teacher_cache_key(config, data)
    changed = [DistillConfig(teacher_epochs=3), DistillConfig(optimizer="sgd"), DistillConfig(seed=1),
               DistillConfig(labels=100), DistillConfig(augment="flip"), DistillConfig(strategy="mirrored")]
    keys = [teacher_cache_key(c, data) for c in changed]
    keys += [teacher_cache_key(config, _Data(labels=(0, 1, 2, -1))), teacher_cache_key(config, _Data(files="a.png"))]
    assert base not in keys and len(set(keys)) == len(keys)
    assert teacher_cache_key(DistillConfig(labels=500), data) == base  # the default on the demo sets, said explicitly


def test_the_teacher_key_changes_with_the_code_that_builds_the_teacher(monkeypatch):
    import inspect

    config, data = DistillConfig(), _Data()
    base = teacher_cache_key(config, data)
    source = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda obj: source(obj) + "\n# a changed layer\n")
    assert teacher_cache_key(config, data) != base


# --- the new stage through the whole distillation pipeline -----------------------------------
@pytest.mark.slow
def test_a_stage_added_to_the_distillation_stages_runs_records_and_reports(tmp_path):
    from kdtf import pipeline
    from kdtf.stages.students import DistilledStage

    def with_float16(ctx, user_teacher):
        stages = pipeline.distillation_stages(ctx, user_teacher)
        distilled = next(stage for stage in stages if isinstance(stage, DistilledStage))
        return stages + [Float16Stage(ctx.out, distilled)]

    config = DistillConfig(dataset="digits", teacher_epochs=1, epochs=1, prune_epochs=1, qat_epochs=1, latency_runs=0,
                           verbose=0, allow_weak_teacher=True, allow_collapse=True, output=str(tmp_path / "run"),
                           cache_dir=str(tmp_path / "cache"))
    report = pipeline.run(config, stages=with_float16)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert list(manifest["stages"])[-2:] == ["export", "float16"]
    assert report["float16"]["file"] == "student_fp16.tflite" and (tmp_path / "run" / "student_fp16.tflite").is_file()
    rows = {row["stage"]: row for row in report["stages"]}
    assert list(rows) == ["teacher", "scratch", "distilled", "pruned+qat", "tflite-int8"]
    assert report["float16"]["params"] == rows["distilled"]["params"] and report["float16"]["max_difference"] < 1e-2
    assert report["timings"]["float16_s"] > 0


@pytest.mark.parametrize(
    "teacher_shape, data_shape, expected",
    [
        ((8, 8, 1), (8, 8, 3), r"trained on grey \(1 channel\) images and the data is colour \(3 channels\); --image-size cannot change channels"),
        ((16, 16, 3), (8, 8, 3), r"pass --image-size 16 \(the teacher's input size\)"),
    ],
)
def test_a_user_teacher_that_does_not_fit_the_data_gets_the_fix_that_can_work(tmp_path, teacher_shape, data_shape, expected):
    import types

    from kdtf import keras
    from kdtf.stages.teacher import load_user_teacher

    inputs = keras.Input(teacher_shape)
    path = str(tmp_path / "teacher.keras")
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs))).save(path)
    config = types.SimpleNamespace(teacher=path, unsafe_load=False)
    data = types.SimpleNamespace(input_shape=data_shape, num_classes=3, name="photos")
    with pytest.raises(ValueError, match=expected):
        load_user_teacher(config, data)
