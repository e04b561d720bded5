"""The run folder contract: atomic writes, events that survive a half-written line, checkpoints, the run record."""

from __future__ import annotations

import json
import os

import pytest

from trainer.runs import folder as rf


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


def test_json_of_the_wrong_shape_reads_as_missing_and_breaks_no_view(tmp_path):
    with open(tmp_path / rf.EVENTS_FILE, "w", encoding="utf-8") as f:
        f.write('[1]\n"text"\n7\nnull\n{"step": 1, "loss": 2.0}\n')
    assert rf.read_events(tmp_path) == [{"step": 1, "loss": 2.0}]
    (tmp_path / rf.CONFIG_FILE).write_text("model: {}\n")
    for text in ("[1]", '"done"', "3", "null"):
        (tmp_path / rf.STATUS_FILE).write_text(text)
        assert rf.read_json(tmp_path / rf.STATUS_FILE, {}) == {}
        assert rf.read_run(tmp_path).status == {}  # the record the card reads
    (tmp_path / rf.SAMPLES_FILE).write_text('{"prompt": "a dict, not a list"}')
    assert rf.read_json(tmp_path / rf.SAMPLES_FILE, []) == []
    assert rf.read_json(tmp_path / rf.SAMPLES_FILE) == {"prompt": "a dict, not a list"}  # no default: any JSON


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
    assert (rf.loss_change(0.75), rf.loss_change(-0.246)) == ("75.0 % lower", "24.6 % higher")  # never "-24.6 % lower"
    assert rf.loss_drop(None, 1.0) is None and rf.loss_drop(0.0, 1.0) is None and rf.loss_drop(float("nan"), 1) is None


def test_a_reader_polling_while_a_writer_loops_never_sees_half_a_file(tmp_path, monkeypatch):
    """status.json rewritten and events.jsonl appended 300 times while another thread reads them; every few
    renames fail (an injected fault): readers only ever see whole JSON, and no temp file is left behind."""
    import os
    import threading

    status, real_replace, calls = tmp_path / rf.STATUS_FILE, os.replace, []

    def flaky_replace(src, dst):
        calls.append(1)
        if len(calls) % 7 == 0:
            raise OSError("injected: rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(rf.os, "replace", flaky_replace)
    rf.write_status(tmp_path, "running", step=0, note="x" * 5000)
    done, seen, problems = threading.Event(), [], []

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(rf.read_json(status)["step"])
                events = rf.read_events(tmp_path)
                if any(set(e) != {"step", "loss"} for e in events):
                    problems.append("partial event")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                problems.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    for step in range(1, 301):
        rf.append_event(tmp_path, {"step": step, "loss": 1.0 / step})
        try:
            rf.write_status(tmp_path, "running", step=step, note="x" * 5000)
        except OSError:
            pass  # the writer's own error; the file on disk stays the previous whole version
    done.set()
    reader.join()
    assert problems == [] and len(seen) > 10 and seen == sorted(seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == [rf.EVENTS_FILE, rf.STATUS_FILE]  # no temp files
    assert len(rf.read_events(tmp_path)) == 300 and rf.read_json(status)["step"] in (299, 300)


def test_progress_moves_through_the_phases_and_the_training_steps():
    names = [name for name in rf.PHASES if name != rf.BUILD_PHASE]  # the demo model's build has a bar of its own
    shares = [rf.progress(name) for name in names]
    assert shares[0] == 0 and shares == sorted(shares) and len(set(shares)) == len(shares)  # each phase moves it
    assert rf.PHASES[rf.BUILD_PHASE] == 0 and rf.progress(rf.BUILD_PHASE) == rf.progress("preparing data")
    start, end = rf.progress("training"), rf.progress("evaluating after")
    assert rf.progress("training", 0, 80) == start
    assert rf.progress("training", 40, 80) == pytest.approx((start + end) / 2)
    assert rf.progress("training", 120, 80) == pytest.approx(end)  # never past its share
    assert rf.progress(None) == rf.progress("no such phase") == 0.0
    assert rf.progress("pushing") < 1


def test_a_phase_is_recorded_in_the_status_with_its_time(tmp_path):
    rf.write_status(tmp_path, "running", started_at=1.0)
    rf.set_phase(tmp_path, "loading the model")
    status = rf.read_json(tmp_path / rf.STATUS_FILE)
    assert (status["state"], status["phase"], status["started_at"]) == ("running", "loading the model", 1.0)
    assert status["phase_at"] > 1.0
    with pytest.raises(ValueError, match="unknown phase"):
        rf.set_phase(tmp_path, "napping")


def test_everything_the_app_writes_goes_to_one_ignored_data_folder(monkeypatch):
    import subprocess
    from pathlib import Path

    from trainer.paths import PROJECT_ROOT

    monkeypatch.delenv(rf.DATA_DIR_ENV, raising=False)
    expected = Path("/data") if Path("/data").is_dir() and os.access("/data", os.W_OK) else rf.LOCAL_DATA_DIR
    assert rf.data_dir() == expected and rf.LOCAL_DATA_DIR.parent == PROJECT_ROOT
    if (PROJECT_ROOT / ".git").exists():  # a source checkout: the job table, uploads and runs are never committed
        for inside in ("jobs.sqlite", "uploads/alice/x.jsonl", "runs/r/config.yaml"):
            path = rf.LOCAL_DATA_DIR.relative_to(PROJECT_ROOT) / inside
            ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=PROJECT_ROOT, check=False)
            assert ignored.returncode == 0, f"{path} is not git-ignored"
    monkeypatch.setenv(rf.DATA_DIR_ENV, "/somewhere/else")
    assert rf.data_dir() == Path("/somewhere/else")


def test_runs_an_older_version_left_in_the_checkout_are_named(tmp_path):
    assert rf.left_in_checkout(tmp_path) == []
    (tmp_path / "runs").mkdir()
    (tmp_path / "jobs.sqlite").write_text("")
    assert rf.left_in_checkout(tmp_path) == [tmp_path / "runs", tmp_path / "jobs.sqlite"]
