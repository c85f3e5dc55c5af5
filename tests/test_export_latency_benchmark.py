"""benchmarks/export_latency.py compares each file with the model it was converted from."""

import json

import numpy as np
import pytest

from kdtf import export, keras

from helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("export_latency")


def test_a_file_is_compared_with_the_keras_model_it_was_converted_from_not_the_student_before_it(bench):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    student = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(8, activation="relu")(inputs)))
    tuned = keras.models.clone_model(student)  # fine-tuning halved the logits (as QAT fine-tuning did to a run's student)
    tuned.set_weights(student.get_weights()[:2] + [w / 2 for w in student.get_weights()[2:]])
    files = {"int8 (the run's QAT file)": export.to_tflite(tuned, "float32")}  # float32 stands in: one conversion
    x = np.random.default_rng(0).random((32, 6), dtype=np.float32)
    row = bench.fidelity(files, x, {"int8 (the run's QAT file)": ("tuned (Keras)", tuned)})["int8 (the run's QAT file)"]
    assert row["compared_with"] == "tuned (Keras)" and row["agreement"] == 1.0
    assert row["snr_db"] is None or row["snr_db"] > 80  # a float32 copy: exact or nearly
    # against the student before fine-tuning: the models' difference, 10 log10(1 / 0.5^2) = 6.0 dB, not the file's error
    before = bench.output_snr_db(student(x, training=False), export.predict(files["int8 (the run's QAT file)"], x))
    assert before == pytest.approx(10 * np.log10(4), abs=0.01)
    assert bench.output_snr_db(x, x) is None


def test_the_run_reference_is_the_report_rows_converted_from_else_the_keras_row_before_the_tflite(bench, tmp_path):
    stages = [{"stage": "distilled", "file": "student.keras"}, {"stage": "pruned+qat", "file": "student_pruned_qat.h5"},
              {"stage": "tflite-int8", "file": "student_int8.tflite"}]
    (tmp_path / "report.json").write_text(json.dumps({"stages": stages}))
    assert bench.converted_from(str(tmp_path)) == "student_pruned_qat.h5"
    stages[-1]["converted_from"] = "student_qat.keras"
    (tmp_path / "report.json").write_text(json.dumps({"stages": stages}))
    assert bench.converted_from(str(tmp_path)) == "student_qat.keras"
    (tmp_path / "report.json").write_text(json.dumps({"stages": stages[:2]}))
    with pytest.raises(ValueError, match="Expected a .tflite row"):
        bench.converted_from(str(tmp_path))
