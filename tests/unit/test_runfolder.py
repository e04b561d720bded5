"""The run folder contract: atomic writes, events that survive a half-written line, checkpoints, the run record."""

from __future__ import annotations

import json

import pytest

from trainer import runfolder as rf


def test_writes_replace_the_file_whole(tmp_path):
    """A reader that opened the old file keeps reading the old file: the new one arrives by rename, never in place."""
    path = tmp_path / "status.json"
    rf.write_json_atomic(path, {"state": "running", "step": 1})
    with open(path, encoding="utf-8") as reader:
        rf.write_json_atomic(path, {"state": "succeeded", "step": 80, "note": "x" * 10_000})
        assert json.loads(reader.read()) == {"state": "running", "step": 1}  # the old inode, whole
    assert rf.read_json(path) == {"state": "succeeded", "step": 80, "note": "x" * 10_000}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "samples.json"
    rf.write_json_atomic(path, [1, 2])
    with pytest.raises(TypeError):
        rf.write_json_atomic(path, {"not json": object()})
    assert rf.read_json(path) == [1, 2] and [p.name for p in tmp_path.iterdir()] == ["samples.json"]


def test_events_skip_a_half_written_last_line(tmp_path):
    rf.append_event(tmp_path, {"step": 1, "loss": 2.0})
    with open(tmp_path / rf.EVENTS_FILE, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "lo')  # the worker is in the middle of writing
    assert rf.read_events(tmp_path) == [{"step": 1, "loss": 2.0}]


def test_checkpoints_and_the_run_record(tmp_path):
    assert not rf.has_checkpoint(tmp_path)
    (tmp_path / rf.CHECKPOINTS_DIR / "checkpoint-40").mkdir(parents=True)
    assert rf.has_checkpoint(tmp_path)
    with pytest.raises(rf.RunFolderError, match="has no config.yaml"):
        rf.read_run(tmp_path)
    rf.write_text_atomic(tmp_path / rf.CONFIG_FILE, "training:\n  max_steps: 80\n")
    rf.write_status(tmp_path, "succeeded", step=80)
    record = rf.read_run(tmp_path)
    assert record.config == {"training": {"max_steps": 80}} and record.status["state"] == "succeeded"
    assert record.samples == [] and record.events == []


def test_loss_drop():
    assert rf.loss_drop(4.0, 1.0) == pytest.approx(0.75)
    assert rf.loss_drop(2.0, 3.0) == pytest.approx(-0.5)
    assert rf.loss_drop(None, 1.0) is None and rf.loss_drop(0.0, 1.0) is None and rf.loss_drop(float("nan"), 1) is None
