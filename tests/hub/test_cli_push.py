"""`python -m trainer push RUN`: publish a finished run; a failed push says so (exit 4), leaves the state of a run that
never asked to be pushed as it was, and prints a retry command that works as printed (issue 27)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.config import load_yaml
from trainer.hub.cli import push_command
from trainer.runs import folder as rf

from .conftest import ALICE_TOKEN, PROJECT_ROOT, ask_to_push, client_env
from .server import HubServer

pytestmark = pytest.mark.slow


def _env(server: HubServer, tmp_path: Path, token: str | None) -> dict[str, str]:
    """A client's environment: the local Hub, an empty HF_HOME (no stored login), HF_TOKEN only when given, and this
    interpreter first on PATH (so a printed `python -m trainer ...` runs in this environment)."""
    env = client_env(server, tmp_path / "hf-home", {"HF_TOKEN": token} if token else None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _push(
    server: HubServer, tmp_path: Path, *args: str, token: str | None = ALICE_TOKEN
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "push", *args],
        cwd=PROJECT_ROOT,
        env=_env(server, tmp_path, token),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _printed_retry(output: str) -> str:
    """The retry command a failed push printed (the rest of its line)."""
    match = re.search(r"Retry: (python -m trainer push .+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def _run_as_printed(server: HubServer, tmp_path: Path, command: str, token: str) -> subprocess.CompletedProcess:
    """Run a printed command through a shell, exactly as a user pastes it."""
    env = _env(server, tmp_path, token)
    return subprocess.run(
        ["bash", "-c", command], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def test_cli_push_fails_cleanly_then_the_printed_retry_succeeds(hub_server: HubServer, trained_run: Path, tmp_path):
    status_before = (trained_run / "status.json").read_bytes()
    hub_server.fail_next(1, status=400, path="/api/repos/create")  # a client error: reported, not retried
    failed = _push(hub_server, tmp_path, str(trained_run), "--repo-id", "alice/cli-pirate")
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "error: trained, push failed" in failed.stdout
    retry = _printed_retry(failed.stdout)
    assert retry == f"python -m trainer push {shlex.quote(str(trained_run))} --repo-id alice/cli-pirate"
    assert (trained_run / "adapter" / "adapter_model.safetensors").exists()  # nothing lost
    assert (trained_run / "status.json").read_bytes() == status_before  # the run never asked for a push

    done = _run_as_printed(hub_server, tmp_path, retry, ALICE_TOKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pushed to " in done.stdout and "alice/cli-pirate" in done.stdout
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "loss.png"} <= set(
        hub_server.files("alice/cli-pirate")
    )
    status = json.loads((trained_run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["push_state"] == "pushed"
    assert ALICE_TOKEN not in failed.stdout + failed.stderr + done.stdout + done.stderr


def test_a_push_without_a_token_leaves_a_local_run_as_it_was_and_the_printed_retry_works(
    hub_server: HubServer, trained_run: Path, tmp_path: Path
):
    run = Path(shutil.move(trained_run, tmp_path / "my run"))  # a folder name the shell must have quoted
    status_before = (run / "status.json").read_bytes()
    assert json.loads(status_before).get("push_state") is None and not load_yaml(run / rf.CONFIG_FILE).hub.repo_id

    failed = _push(hub_server, tmp_path, str(run), "--repo-id", "alice/x", "--public", token=None)
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "push failed: Hugging Face token: missing." in failed.stdout and "set HF_TOKEN" in failed.stdout
    assert (run / "status.json").read_bytes() == status_before  # no push_failed for a push the run never asked for
    assert hub_server.requests("/api/", "POST") == []  # nothing reached the Hub
    retry = _printed_retry(failed.stdout)
    assert retry == f"python -m trainer push '{run}' --repo-id alice/x --public"

    done = _run_as_printed(hub_server, tmp_path, retry, ALICE_TOKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "README.md" in hub_server.files("alice/x") and not hub_server.repos[("model", "alice/x")].private
    assert json.loads((run / "status.json").read_text())["push_state"] == "pushed"


def test_a_run_that_asked_to_push_records_the_failure_and_the_printed_retry_works(
    hub_server: HubServer, trained_run: Path, tmp_path: Path
):
    ask_to_push(trained_run, "alice/asked")
    failed = _push(hub_server, tmp_path, str(trained_run), token=None)
    assert failed.returncode == 4 and "Hugging Face token: missing." in failed.stdout, failed.stdout + failed.stderr
    status = json.loads((trained_run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["push_state"] == "push_failed"
    assert status["push_error"].startswith("Hugging Face token: missing.")
    retry = _printed_retry(failed.stdout)
    assert retry == f"python -m trainer push {shlex.quote(str(trained_run))}"  # the config names the repo

    done = _run_as_printed(hub_server, tmp_path, retry, ALICE_TOKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adapter_model.safetensors" in hub_server.files("alice/asked")
    assert json.loads((trained_run / "status.json").read_text())["push_state"] == "pushed"


def test_the_retry_command_carries_what_the_run_s_config_does_not_say(trained_run: Path):
    run = str(trained_run)
    assert push_command(trained_run, "alice/x", private=True) == f"python -m trainer push {run} --repo-id alice/x"
    assert push_command(trained_run, "alice/x", private=False, merged=True) == (
        f"python -m trainer push {run} --repo-id alice/x --public --merged"
    )
    ask_to_push(trained_run, "alice/x")
    assert push_command(trained_run, "alice/x", private=True) == f"python -m trainer push {run}"
    assert push_command(trained_run, "alice/y", private=True) == f"python -m trainer push {run} --repo-id alice/y"


def test_cli_push_without_a_repo_id_exits_2(hub_server: HubServer, trained_run: Path, tmp_path: Path):
    out = _push(hub_server, tmp_path, str(trained_run))  # the tiny run has no hub.repo_id
    assert out.returncode == 2 and "--repo-id: this run has no hub.repo_id" in out.stderr
