"""The real worker: a queued tiny run trains in two processes under torchrun (gloo, as the web app launches one per
GPU), a stop checkpoints it, Resume finishes it; one run folder, each step logged once, one adapter on both ranks.

The stop is a SIGTERM to the helper process alone (Cancel signals both; here the worst case of a signal that
reaches them at different moments): both must stop at the same step, or one would wait for ever on the other."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from trainer.config import load_config, save_yaml
from trainer.runs import folder as rf
from trainer.runs.queue import JobStore, RunQueue, pid_alive

pytestmark = pytest.mark.slow


def _wait(manager, job_id, until, timeout=240.0):
    end = time.time() + timeout
    while time.time() < end:
        job = manager.store.get(job_id)
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {manager.store.get(job_id)}")


def test_two_processes_cancel_with_a_checkpoint_and_resume_to_one_adapter(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    manager = RunQueue(JobStore(tmp_path / "jobs.sqlite"), grace_s=60, gpu_count=lambda: 2)  # "all" GPUs: two
    cfg = load_config(
        preset="tiny-demo",
        overrides=["max_steps=400", "save_steps=1000", "eval_steps=1000", "logging_steps=1", "sample_prompts=1"],
    )
    job = manager.submit(cfg)
    run_dir = Path(job.run_dir)
    _wait(manager, job.id, lambda j: any("loss" in e and e["step"] >= 3 for e in rf.read_events(run_dir)))
    status = rf.read_json(run_dir / rf.STATUS_FILE)
    assert status["world_size"] == 2 and len(status["worker_pids"]) == 2
    helper = status["worker_pids"][1][0]
    try:
        os.kill(helper, signal.SIGTERM)  # the helper process only (rank 1)
        cancelled = _wait(manager, job.id, lambda j: j.finished, timeout=60)
    finally:  # were they not to agree, they would hang: leave no process behind
        for pid, _ in status["worker_pids"]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    # a clean stop of both processes at one step (torchrun itself exits 1: the main process's code counts)
    assert cancelled.status == "cancelled" and cancelled.exit_code == 3, (run_dir / rf.LOG_FILE).read_text()[-3000:]
    assert cancelled.resumable
    stopped_at = max(e["step"] for e in rf.read_events(run_dir) if "loss" in e)
    assert stopped_at < 400 and (run_dir / rf.CHECKPOINTS_DIR / f"checkpoint-{stopped_at}").is_dir()
    assert rf.read_json(run_dir / rf.STATUS_FILE)["state"] == "cancelled"

    cfg_small = load_config(run_dir / rf.CONFIG_FILE, overrides=[f"max_steps={stopped_at + 5}"])
    save_yaml(cfg_small, run_dir / rf.CONFIG_FILE)  # finish quickly: 5 more steps
    manager.resume(job.id)
    done = _wait(manager, job.id, lambda j: j.finished)
    assert done.status == "succeeded", (run_dir / rf.LOG_FILE).read_text()[-3000:]
    events = rf.read_events(run_dir)
    steps = [e["step"] for e in events if "loss" in e]
    assert steps == list(range(1, stopped_at + 6))  # each step once: only the main process writes events
    assert all(len(e["mem_each_gb"]) == 2 for e in events if "loss" in e)  # each process's peak memory
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]  # one run folder for both
    assert sorted(p.name for p in (run_dir / rf.ADAPTER_DIR).iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    log = (run_dir / rf.LOG_FILE).read_text()
    assert "the adapter is the same in all 2 processes" in log  # DDP kept both copies equal (checked before saving)
    assert "16 rows (8 x 1 x 2 processes)" in log
    assert rf.read_json(run_dir / rf.VERSIONS_FILE)["device"] == "2 x cpu"
