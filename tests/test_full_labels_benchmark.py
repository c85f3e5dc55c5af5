"""benchmarks/full_labels.py: its ensemble teacher, its student widths and its refusal to
mix seeds run with other settings."""

import json

import numpy as np
import pytest

from kdtf import keras

from helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("full_labels")


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_ensemble_teacher_outputs_the_log_of_its_members_mean_probabilities(bench):
    keras.utils.set_random_seed(0)
    members = []
    for _ in range(3):
        inputs = keras.Input((5,))
        members.append(keras.Model(inputs, keras.layers.Dense(4)(inputs), name="teacher"))  # one name: the ensemble renames
    x = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    expected = np.log(np.mean([_softmax(m.predict(x, verbose=0)) for m in members], axis=0))
    ensemble = bench.ensemble(members)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, atol=1e-5)
    assert bench.ensemble(members[:1]) is members[0]


def test_the_student_width_multiplies_every_layer_of_pooled_student(bench):
    narrow, wide = bench.pooled_student((64, 64, 1), 10), bench.pooled_student((64, 64, 1), 10, width=1.5)
    assert narrow.count_params() == 16_522
    assert [layer.filters for layer in wide.layers if hasattr(layer, "filters")] == [12, 24, 48, 48]
    assert wide.get_layer("fc1").units == 48 and wide.get_layer("logits").units == 10


def test_resume_refuses_seeds_run_with_another_teacher_or_student(bench, tmp_path):
    out = tmp_path / "mnist5k"
    out.mkdir()
    earlier = {"teacher_epochs": 12, "epochs": 20, "batch_size": 64, "augment": "mixup", "views": 8}  # written before the options existed
    (out / "raw.json").write_text(json.dumps({"args": earlier, "runs": []}))
    with pytest.raises(SystemExit, match="teachers, student_width"):
        bench.main(["--out", str(tmp_path), "--resume", "--seeds", "0", "--teachers", "2", "--student-width", "2"])
    with pytest.raises(SystemExit, match="split"):
        bench.main(["--out", str(tmp_path), "--resume", "--seeds", "0", "--split", "val"])


def _raw(path, args, runs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": args, "runs": runs}))
    return str(path)


def test_join_merges_the_rows_and_seeds_of_processes_run_side_by_side(bench, tmp_path):
    args = {"dataset": "cluttered", "teacher_epochs": 20, "epochs": 20, "batch_size": 64, "augment": "mixup", "views": 8}
    seed = {"train": 3999, "test": 501, "views": 8, "teacher": 0.9, "load": [1.0]}
    a = _raw(tmp_path / "a" / "raw.json", args, [
        dict(seed, seed=0, scratch=0.80, dist=0.86, command="run a", seconds={"teacher": 1, "store": 2, "scratch": 3, "dist": 4}),
        dict(seed, seed=1, scratch=0.82, dist=0.84, command="run a", seconds={"teacher": 1, "store": 2, "scratch": 3, "dist": 4})])
    b = _raw(tmp_path / "b" / "raw.json", args, [
        dict(seed, seed=0, **{"dist, alpha 0": 0.88}, command="run b", seconds={"teacher": 1, "store": 2, "dist, alpha 0": 5}),
        dict(seed, seed=1, **{"dist, alpha 0": 0.83}, command="run b", seconds={"teacher": 1, "store": 2, "dist, alpha 0": 5})])
    text = bench.main(["--join", a, b, "--out", str(tmp_path / "joined")]) == 0 and (tmp_path / "joined" / "cluttered" / "table.md").read_text()
    assert "| scratch | 81.00 ± 1.00 |" in text and "| dist | 85.00 ± 1.00 | +4.00 ± 2.00 | 44 % |" in text
    assert "| dist, alpha 0 | 85.50 ± 2.50 | +4.50 ± 3.50 | 50 % |" in text
    assert "validation" not in text and "* `run a`" in text and "* `run b`" in text
    c = _raw(tmp_path / "c" / "raw.json", dict(args, student_width=1.5), [])
    with pytest.raises(SystemExit, match="student_width"):
        bench.main(["--join", a, c, "--out", str(tmp_path / "joined")])


def test_the_attention_weight_must_match_only_where_both_tables_have_the_attention_row(bench, tmp_path):
    args = {"dataset": "cluttered", "teacher_epochs": 20, "epochs": 20, "batch_size": 64, "augment": "mixup", "views": 8}
    seed = {"seed": 0, "train": 3999, "test": 500, "views": 8, "teacher": 0.9, "scratch": 0.8, "seconds": {"teacher": 1, "store": 2, "scratch": 3}}
    old = _raw(tmp_path / "old" / "raw.json", args, [dict(seed, dist=0.85, command="old", seconds={"teacher": 1, "store": 2, "scratch": 3, "dist": 4})])
    new = _raw(tmp_path / "new" / "raw.json", dict(args, at_weight=10.0), [dict(seed, **{"dist+at": 0.86}, command="new", seconds={"teacher": 1, "store": 2, "dist+at": 5})])
    assert bench.main(["--join", old, new, "--out", str(tmp_path / "joined")]) == 0
    text = (tmp_path / "joined" / "cluttered" / "table.md").read_text()
    assert "| dist+at | 86.00 ± 0.00 | +6.00 ± 0.00 | 60 % |" in text and "attention-transfer weight 10," in text
    other = _raw(tmp_path / "other" / "raw.json", args, [dict(seed, **{"dist+at": 0.84}, command="other")])
    with pytest.raises(SystemExit, match="at_weight"):
        bench.main(["--join", new, other, "--out", str(tmp_path / "joined")])
