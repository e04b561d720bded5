"""Nothing lost, nothing destroyed: restarts keep true outcomes, damaged state never stops the server, a finished
run folder is never trained over, and the time limit stops a run with a checkpoint."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import run_cli
from trainer.config import load_config
from trainer.runs import folder as rf
from trainer.runs.queue import JobStore, RunQueue

from .conftest import finished_run, oauth, profile


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _running(store: JobStore, run_dir: Path, **status) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    if status:
        rf.write_status(run_dir, **status)
    job = store.create(run_dir, name=run_dir.name, owner="alice")
    store.update(job.id, status="running", pid=_dead_pid(), started_at=time.time())
    return job.id


@pytest.mark.parametrize(
    ("exit_code", "state", "expected"),
    [(0, "succeeded", "succeeded"), (4, "succeeded", "push_failed"), (5, "time_limit", "time_limit")],
)
def test_a_run_that_ended_while_the_server_was_down_keeps_its_outcome(tmp_path, exit_code, state, expected):
    store = JobStore(tmp_path / "jobs.sqlite")
    run_dir = tmp_path / "runs" / "r"
    job_id = _running(store, run_dir, state=state, eval_loss_after=0.18)
    rf.write_json_atomic(run_dir / rf.EXIT_FILE, {"code": exit_code})
    RunQueue(store, python="/bin/false").recover()
    assert store.get(job_id).status == expected
    status = rf.read_json(run_dir / rf.STATUS_FILE)
    assert status["state"] == state and status["eval_loss_after"] == 0.18  # the worker's own record, not overwritten


def test_a_run_whose_worker_vanished_is_interrupted_and_resumable(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    run_dir = tmp_path / "runs" / "r"
    job_id = _running(store, run_dir, state="running")
    (run_dir / rf.CHECKPOINTS_DIR / "checkpoint-20").mkdir(parents=True)
    RunQueue(store, python="/bin/false").recover()
    job = store.get(job_id)
    assert job.status == "interrupted" and job.resumable and "resume it from its last checkpoint" in job.error


def test_a_queued_run_waits_for_its_owner_to_sign_in_after_a_restart(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # the old server stops before the run starts
    outputs = space.fns["start"](space.form(), profile("alice"), oauth("hf_oauthALICE1111"))
    job_id = int(outputs[-1]["value"])
    restarted = RunQueue(space.manager.store, python=space.manager.python)  # its token is gone with the old one
    restarted.recover()
    job = restarted.store.get(job_id)
    assert job.status == "queued" and restarted.waiting_for_owner(job)  # not failed, not started without a token
    restarted.attach_token("bob", "hf_oauthBOB2222")  # someone else's sign-in changes nothing
    assert restarted.store.get(job_id).status == "queued"
    restarted.attach_token("alice", "hf_oauthALICE1111")
    worker_token = Path(job.run_dir) / "worker-token.txt"
    end = time.time() + 20
    while not worker_token.exists() and time.time() < end:
        time.sleep(0.05)
    assert worker_token.read_text() == "hf_oauthALICE1111"


def test_a_damaged_job_table_is_kept_aside_and_rebuilt_from_the_run_folders(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    finished_run(store, tmp_path, "alice", "alice-run")
    finished_run(store, tmp_path, "bob", "bob-run")
    (tmp_path / "jobs.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / 'jobs.sqlite'}{suffix}").unlink(missing_ok=True)
    rebuilt = JobStore(tmp_path / "jobs.sqlite")
    assert sorted((j.owner, j.name, j.status) for j in rebuilt.list()) == [
        ("alice", "alice-run", "succeeded"),
        ("bob", "bob-run", "succeeded"),
    ]
    kept = list(tmp_path.glob("jobs.sqlite.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database")


def test_an_older_job_table_is_migrated_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "jobs.sqlite")
    db.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT, name TEXT NOT NULL, status TEXT NOT "
        "NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'push_failed')), run_dir "
        "TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, pid INTEGER, exit_code INTEGER, "
        "error TEXT, resume INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("INSERT INTO jobs (owner, name, status, run_dir, created_at) VALUES ('alice', 'old', 'failed', 'x', 1)")
    db.commit()
    db.close()
    store = JobStore(tmp_path / "jobs.sqlite")
    (job,) = store.list()
    assert (job.owner, job.name, job.status, job.needs_token) == ("alice", "old", "failed", False)
    store.update(job.id, status="interrupted")  # a state the old table did not allow
    assert store.get(job.id).status == "interrupted"


def test_a_truncated_status_file_does_not_stop_the_runs_view(space):
    alice_run = space.run_of("alice")
    (Path(alice_run.run_dir) / rf.STATUS_FILE).write_text('{"state": "succ')
    (Path(alice_run.run_dir) / rf.EVENTS_FILE).write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    outputs = space.fns["refresh"](str(alice_run.id), {}, profile("alice"), None)
    assert "alice-run" in outputs[0] and "step 1" in outputs[1]


def test_the_cli_never_trains_over_a_run_without_resume(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / rf.CHECKPOINTS_DIR / "checkpoint-40").mkdir(parents=True)
    out = run_cli("train", "--preset", "tiny-demo", "--run-dir", str(run_dir))
    assert out.returncode == 2
    assert f"--run-dir: {run_dir} already holds a run. Add --resume to continue it" in out.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [rf.CHECKPOINTS_DIR]  # untouched


def test_the_cli_checks_push_access_before_training(tmp_path):
    out = run_cli(
        "train",
        "--preset",
        "tiny-demo",
        "--run-dir",
        str(tmp_path / "run"),
        "--repo-id",
        "alice/pirate",
        env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")},
    )
    assert out.returncode == 2 and "Hugging Face token: missing" in out.stderr
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "steps"), [("tiny-demo", 6), ("tiny-demo-dpo", 3), ("tiny-demo-grpo", 2)])
def test_the_time_limit_stops_a_run_with_a_checkpoint_and_it_resumes(preset, steps, tiny_model_path, tmp_path):
    from trainer.training import RunTimeLimit, run

    overrides = [f"max_steps={steps}", "save_steps=100", "eval_steps=100", "sample_prompts=0"]
    cfg = load_config(preset=preset, overrides=overrides)
    with pytest.raises(RunTimeLimit, match="the training time limit was reached at step 1"):
        run(cfg, run_dir=tmp_path, time_limit_s=0.001)
    assert rf.read_json(tmp_path / rf.STATUS_FILE)["state"] == "time_limit"
    assert [p.name for p in (tmp_path / rf.CHECKPOINTS_DIR).glob("checkpoint-*")] == ["checkpoint-1"]
    assert run(cfg, run_dir=tmp_path, resume=True).global_step == steps


def test_a_worker_stopped_by_the_time_limit_leaves_a_resumable_job(tmp_path):
    from trainer.runs.store import RESUMABLE

    store = JobStore(tmp_path / "jobs.sqlite")
    run_dir = tmp_path / "runs" / "r"
    job_id = _running(store, run_dir)
    (run_dir / rf.CHECKPOINTS_DIR / "checkpoint-3").mkdir(parents=True)
    RunQueue(store, python="/bin/false")._finish(job_id, 5)
    job = store.get(job_id)
    assert job.status == "time_limit" in RESUMABLE and job.resumable and "time limit" in job.error
