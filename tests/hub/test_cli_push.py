"""`python -m trainer push RUN`: publish a finished run; a failed push says so (exit 4) and a retry succeeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ALICE_TOKEN, PROJECT_ROOT, client_env
from .server import HubServer

pytestmark = pytest.mark.slow


def _push(server: HubServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = client_env(server, tmp_path / "hf-home", {"HF_TOKEN": ALICE_TOKEN})
    return subprocess.run(
        [sys.executable, "-m", "trainer", "push", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_cli_push_fails_cleanly_then_a_retry_succeeds(hub_server: HubServer, trained_run: Path, tmp_path: Path):
    hub_server.fail_next(1, status=400, path="/api/repos/create")  # a client error: reported, not retried
    failed = _push(hub_server, tmp_path, str(trained_run), "--repo-id", "alice/cli-pirate")
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "error: trained, push failed" in failed.stdout and f"python -m trainer push {trained_run}" in failed.stdout
    assert (trained_run / "adapter" / "adapter_model.safetensors").exists()  # nothing lost
    status = json.loads((trained_run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["push_state"] == "push_failed"

    done = _push(hub_server, tmp_path, str(trained_run), "--repo-id", "alice/cli-pirate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pushed to " in done.stdout and "alice/cli-pirate" in done.stdout
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "loss.png"} <= set(
        hub_server.files("alice/cli-pirate")
    )
    assert ALICE_TOKEN not in failed.stdout + failed.stderr + done.stdout + done.stderr


def test_cli_push_without_a_repo_id_exits_2(hub_server: HubServer, trained_run: Path, tmp_path: Path):
    out = _push(hub_server, tmp_path, str(trained_run))  # the tiny run has no hub.repo_id
    assert out.returncode == 2 and "--repo-id: this run has no hub.repo_id" in out.stderr
