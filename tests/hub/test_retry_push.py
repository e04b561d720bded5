"""A real worker trains, its push is refused, the job says "trained, push failed"; Retry push then publishes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow


def test_a_failed_push_of_a_real_worker_then_retry_push(
    hub_server: HubServer, hub_client: ClientRunner, tmp_path: Path, tiny_model_path
):
    hub_server.fail_next(1, status=403, path="/commit/")  # refused once (a 4xx is not retried by the worker)
    out = hub_client(f"""
        import os, time
        from pathlib import Path
        os.environ["PHI3_STUDIO_DATA_DIR"] = {str(tmp_path)!r}
        from trainer.config import load_config
        from trainer.runs.queue import RunQueue, JobStore

        manager = RunQueue(JobStore(Path({str(tmp_path)!r}) / "jobs.sqlite"))
        cfg = load_config(preset="tiny-demo", overrides=[
            "max_steps=2", "eval_steps=2", "save_steps=2", "sample_prompts=0", "repo_id=alice/retry-pirate"])
        job = manager.submit(cfg, token={ALICE_TOKEN!r})
        while not manager.store.get(job.id).finished:
            time.sleep(0.2)
        failed = manager.store.get(job.id)
        emit(status=failed.status, error=failed.error, exit_code=failed.exit_code)
        done = manager.retry_push(job.id, {ALICE_TOKEN!r})
        emit(after=done.status, after_error=done.error, run_dir=done.run_dir)
    """)
    assert (out["status"], out["exit_code"]) == ("push_failed", 4), out
    assert "refused" in out["error"] and "Retry: python -m trainer push" in out["error"]
    assert ALICE_TOKEN not in out["error"]
    assert (out["after"], out["after_error"]) == ("succeeded", None)
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(
        hub_server.files("alice/retry-pirate")
    )
    status = (Path(out["run_dir"]) / "status.json").read_text()
    assert '"push_state": "pushed"' in status
