"""scripts/distill.py --mutual N: the Deep Mutual Learning stage (kdtf/stages/mutual.py)."""

import json
import os

import pytest

from kdtf.config import DistillConfig


@pytest.mark.parametrize("fields, message", [
    ({"mutual": 1}, r"Expected --mutual 0 \(off\) or at least 2 peers.*Received: --mutual 1"),
    ({"mutual_teacher": True}, r"--mutual-teacher needs it.*Received: --mutual 0"),
    ({"mutual": -2}, r"Expected mutual to be an integer >= 0\. Received: mutual=-2"),
])
def test_mutual_flags_are_checked_before_tensorflow_loads(fields, message):
    with pytest.raises(ValueError, match=message):
        DistillConfig(**fields).validate()


@pytest.mark.slow
def test_mutual_stage_trains_saves_and_reports_every_peer(tmp_path):
    from kdtf import pipeline
    from kdtf.saving import load_model

    config = DistillConfig(dataset="digits", teacher_epochs=2, epochs=1, prune_epochs=1, qat=False, latency_runs=0,
                           mutual=2, mutual_teacher=True, output=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                           allow_weak_teacher=True, allow_collapse=True, verbose=0)  # one epoch each
    report = pipeline.run(config)
    rows = {row["stage"]: row for row in report["stages"]}
    assert list(rows)[:4] == ["teacher", "scratch", "distilled", "mutual"]
    peers = report["mutual"]["peer_accuracies"]
    assert len(peers) == 2 and report["mutual"]["with_teacher"] and rows["mutual"]["accuracy"] == peers[0]
    for k in range(2):
        assert load_model(str(tmp_path / "run" / f"mutual{k}.keras")).name == f"mutual{k}"
    with open(os.path.join(tmp_path, "run", "report.json")) as f:
        assert "mutual" in [row["stage"] for row in json.load(f)["stages"]]
