"""The real worker process: a queued tiny run trains in a subprocess, Cancel checkpoints it, Resume finishes it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trainer import runfolder as rf
from trainer.config import load_config, save_yaml
from trainer.jobs import JobManager, JobStore

pytestmark = pytest.mark.slow


def _wait(manager, job_id, until, timeout=240.0):
    end = time.time() + timeout
    while time.time() < end:
        job = manager.store.get(job_id)
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {manager.store.get(job_id)}")


def test_cancel_checkpoints_and_resume_finishes(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    manager = JobManager(JobStore(tmp_path / "jobs.sqlite"), grace_s=60)
    cfg = load_config(
        preset="tiny-demo",
        overrides=["max_steps=400", "save_steps=1000", "eval_steps=1000", "logging_steps=1", "sample_prompts=1"],
    )
    job = manager.submit(cfg)
    run_dir = Path(job.run_dir)
    _wait(manager, job.id, lambda j: any("loss" in e and e["step"] >= 3 for e in rf.read_events(run_dir)))
    manager.cancel(job.id)
    cancelled = _wait(manager, job.id, lambda j: j.finished)
    assert cancelled.status == "cancelled" and cancelled.exit_code == 3  # a clean stop, not a kill
    assert cancelled.resumable
    stopped_at = max(e["step"] for e in rf.read_events(run_dir) if "loss" in e)
    assert stopped_at < 400 and (run_dir / rf.CHECKPOINTS_DIR / f"checkpoint-{stopped_at}").is_dir()
    assert rf.read_json(run_dir / rf.STATUS_FILE)["state"] == "cancelled"

    cfg_small = load_config(run_dir / rf.CONFIG_FILE, overrides=[f"max_steps={stopped_at + 5}"])
    save_yaml(cfg_small, run_dir / rf.CONFIG_FILE)  # finish quickly: 5 more steps
    manager.resume(job.id)
    done = _wait(manager, job.id, lambda j: j.finished)
    assert done.status == "succeeded", (run_dir / rf.LOG_FILE).read_text()[-3000:]
    steps = [e["step"] for e in rf.read_events(run_dir) if "loss" in e]
    assert steps == list(range(1, stopped_at + 6))
    assert (run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors").exists()
