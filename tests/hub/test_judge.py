"""The judge against a local chat-completion endpoint (tests/hub/inference_routes.py): the CLI and a queued judging
call it twice per pair with the order swapped, with the user's own token (never the Space's), and keep the
verdicts with their reasons; a judge with nothing but position bias gives 50 %."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.paths import PROJECT_ROOT
from trainer.runs import folder as rf
from trainer.runs.state import RunState

from . import inference_routes  # noqa: F401 - registers the chat-completion route on the server
from .conftest import ALICE_TOKEN, client_env
from .server import HubServer

SPACE_TOKEN = "hf_SPACEownTOKENneverUSED0"
ROWS = [
    {
        "prompt": f"What is {thing}?",
        "reference": f"Ahoy! {thing} be fine, matey.",
        "base": {"text": f"{thing} is fine."},
        "tuned": {"text": f"Ahoy! {thing} be fine, matey."},
    }
    for thing in ("rain", "the moon", "coffee")
]


@pytest.fixture
def evaluated_run(tmp_path: Path) -> Path:
    """A run folder with an evaluation's answers (no model needed to judge them)."""
    run = tmp_path / "data" / "runs" / "20261207-120000-pirate"
    rf.write_json_atomic(run / rf.EVAL_DIR / rf.EVAL_RESULTS_FILE, {"rows": ROWS})
    (run / rf.ADAPTER_DIR).mkdir(parents=True)
    (run / rf.ADAPTER_DIR / "adapter_config.json").write_text("{}")
    (run / rf.CONFIG_FILE).write_text("model:\n  model_name_or_path: tiny-phi3\n")
    return run


def _judge_cli(server: HubServer, run: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = client_env(
        server, tmp_path / "hf-home", {"HF_TOKEN": ALICE_TOKEN, "PHI3_STUDIO_JUDGE_URL": f"{server.url}/v1"}
    )
    argv = [sys.executable, "-m", "trainer", "judge", str(run), "--model", "acme/judge-70b", *args]
    return subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_judge_command_asks_twice_per_pair_in_both_orders_with_the_users_token(
    hub_server, evaluated_run, tmp_path
):
    proc = _judge_cli(hub_server, evaluated_run, tmp_path, "--usd-per-million-tokens", "0.9")
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = hub_server.judge_calls
    assert (
        len(calls) == 6
        and {c["token"] for c in calls} == {ALICE_TOKEN}
        and {c["model"] for c in calls} == {"acme/judge-70b"}
    )
    assert [c["first"].startswith("Ahoy") for c in calls] == [True, False] * 3  # tuned first, then base first
    result = json.loads((evaluated_run / "eval" / "judge.json").read_text())
    assert result["model"] == "acme/judge-70b" and result["summary"]["tuned"] == 6 and result["summary"]["agreed"] == 3
    assert result["pairs"][0]["judgments"][0]["reason"] == "answer 1 speaks like a pirate, as the reference"
    assert "Judge estimate: 3 pairs × 2 orders = 6 calls to acme/judge-70b" in proc.stdout and "$" in proc.stdout
    assert "judge acme/judge-70b: tuned preferred in 6 of 6 decisive judgments" in proc.stdout


def test_a_position_biased_judge_gives_fifty_percent(hub_server, evaluated_run, tmp_path):
    hub_server.judge_mode = "first"
    assert _judge_cli(hub_server, evaluated_run, tmp_path).returncode == 0
    summary = json.loads((evaluated_run / "eval" / "judge.json").read_text())["summary"]
    assert summary["win_rate"] == 0.5 and summary["agreed"] == 0


def test_a_judging_queued_from_the_runs_tab_uses_the_owners_token_never_the_spaces(
    hub_server, evaluated_run, tmp_path, monkeypatch
):
    from trainer.runs.access import Caller
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import JudgeSettings, RunService

    for name, value in client_env(hub_server, tmp_path / "hf-home").items():
        if name.startswith("HF_"):
            monkeypatch.setenv(name, value)  # what the worker inherits: online, pointed at the local server
    monkeypatch.setenv("HF_TOKEN", SPACE_TOKEN)  # the Space's own token: the worker never gets it
    monkeypatch.setenv("PHI3_STUDIO_JUDGE_URL", f"{hub_server.url}/v1")
    service = RunService(RunQueue(JobStore(tmp_path / "data" / "jobs.sqlite")))
    job = service.queue.store.create(evaluated_run, name="pirate", owner="alice")
    service.queue.store.update(job.id, status=RunState.SUCCEEDED)
    alice = Caller("alice", ALICE_TOKEN)
    queued = service.evals.judge(alice, str(job.id), JudgeSettings(model="acme/judge-70b", rows=2))
    end = time.time() + 120
    while not (done := service.queue.store.get(queued.id)).finished and time.time() < end:
        time.sleep(0.2)
    log = (evaluated_run / "eval" / rf.LOG_FILE).read_text()
    assert done.status == RunState.SUCCEEDED, log[-3000:]
    assert {c["token"] for c in hub_server.judge_calls} == {ALICE_TOKEN} and len(hub_server.judge_calls) == 4
    assert SPACE_TOKEN not in log and ALICE_TOKEN not in log
    assert service.evals.judgments(alice, job)["summary"]["pairs"] == 2
    assert os.environ["HF_TOKEN"] == SPACE_TOKEN  # (the server's own environment is left as it was)
