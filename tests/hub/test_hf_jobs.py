"""Hugging Face Jobs against the local Hub server with the Jobs routes (tests/hub/jobs_routes.py): a run submitted
as a job trains, is followed from its logs and pushes its adapter; a job can be cancelled; a failed job and a
rejected token say why; the user's token travels only as a job secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.paths import PROJECT_ROOT
from trainer.runs.remote import JOB_COMMAND, JOBS, LOCAL, Flavor, cost_usd, parse_events, where_to_train

from . import jobs_routes  # noqa: F401 - registers the Jobs routes on the server
from .conftest import ALICE_TOKEN, BOB_TOKEN, CAROL_READ_TOKEN, ClientRunner, client_env
from .server import HubServer

pytestmark = pytest.mark.slow
SPACE = "alice/phi3-studio"


@pytest.fixture
def jobs_hub(hub_server: HubServer, tmp_path: Path) -> Iterator[HubServer]:
    """The server runs a job's command here, in the project, pointed at itself, with its own temporary folder."""
    job_tmp = tmp_path / "job-tmp"
    job_tmp.mkdir()
    hub_server.job_env = client_env(  # type: ignore[attr-defined]
        hub_server, tmp_path / "job-hf-home", {"TMPDIR": str(job_tmp), "PHI3_STUDIO_DATA_DIR": str(tmp_path / "jd")}
    )
    hub_server.job_cwd = str(PROJECT_ROOT)  # type: ignore[attr-defined]
    yield hub_server
    for job in getattr(hub_server, "jobs", {}).values():  # a failed test leaves no job running
        if job.proc is not None and job.proc.poll() is None:
            job.proc.kill()


FOLLOW = """
    import time
    from trainer.config import load_config
    from trainer.runs.remote import HfJobsBackend, JobsError, parse_events

    backend = HfJobsBackend()
    def follow(job_id, token, limit=180):
        deadline = time.time() + limit
        while (state := backend.status(job_id, "alice", token))[0] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
        return state
"""


def test_jobs_train_and_push_are_followed_from_their_logs_cancel_fail_and_refuse(jobs_hub, hub_client: ClientRunner):
    """Three jobs at once (the server runs them side by side): one trains and pushes, one is cancelled at once, one
    fails on bad data; then three tokens that may not run jobs in the namespace asked for are refused."""
    result = hub_client(
        FOLLOW
        + f"""
    flavors = backend.flavors({ALICE_TOKEN!r})
    cfg = load_config(preset="tiny-demo", overrides=["max_steps=3", "logging_steps=1", "eval_steps=3",
                                                     "sample_prompts=0", "repo_id=alice/jobs-pirate"])
    job_id = backend.start(cfg, "alice", {ALICE_TOKEN!r}, "a10g-large", 600)
    slow = load_config(preset="tiny-demo", overrides=["max_steps=100000", "sample_prompts=0"])
    slow_id = backend.start(slow, "alice", {ALICE_TOKEN!r}, "h200", 600)
    backend.cancel(slow_id, "alice", {ALICE_TOKEN!r})
    broken = load_config(preset="tiny-demo", overrides=["dataset_name=no-such-file.jsonl"])
    failed_id = backend.start(broken, "alice", {ALICE_TOKEN!r}, "a10g-large", 600)
    dpo = load_config(preset="tiny-demo-dpo", overrides=["max_steps=2", "logging_steps=1", "eval_steps=2",
                                                         "sample_prompts=0", "repo_id=alice/jobs-pirate-dpo",
                                                         "push_checkpoints=true"])
    dpo_id = backend.start(dpo, "alice", {ALICE_TOKEN!r}, "a10g-large", 600)

    state, cancelled, failed, dpo_state = (follow(j, {ALICE_TOKEN!r}) for j in (job_id, slow_id, failed_id, dpo_id))
    dpo_events = parse_events(backend.logs(dpo_id, "alice", {ALICE_TOKEN!r}))
    logs = backend.logs(job_id, "alice", {ALICE_TOKEN!r})
    failed_log = backend.logs(failed_id, "alice", {ALICE_TOKEN!r})
    errors = []
    for token, namespace in (("hf_nobody", "alice"), ({CAROL_READ_TOKEN!r}, "carol"), ({BOB_TOKEN!r}, "alice")):
        try:
            backend.start(slow, namespace, token, "a10g-large", 600)
        except JobsError as exc:
            errors.append(str(exc))
    emit(job_id=job_id, state=state, events=parse_events(logs), logs=logs, cancelled=cancelled, failed=failed,
         failed_log=failed_log, errors=errors, dpo_state=dpo_state, dpo_events=dpo_events,
         flavors=[(f.name, f.accelerator, f.usd_per_hour) for f in flavors])
    """,
        env={"PHI3_STUDIO_JOB_IMAGE": f"hf.co/spaces/{SPACE}"},
    )
    assert result["state"] == ["succeeded", ""], result["logs"][-20:]
    assert result["flavors"][:2] == [["a10g-large", "1x A10G", 1.5], ["h200", "1x H200", 5.0]]  # GPUs first, $/h
    events = result["events"]
    assert [e["step"] for e in events if "loss" in e] == [1, 2, 3]  # the loss curve, from the job's logs
    assert any(e.get("eval_loss") is not None for e in events)
    files = jobs_hub.files("alice/jobs-pirate")
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(files)  # pushed like a local run
    job = jobs_hub.jobs[result["job_id"]]  # type: ignore[attr-defined]
    assert job.spec["spaceId"] == SPACE and job.spec["command"] == JOB_COMMAND  # the Space's own image
    assert job.spec["secrets"] == {"HF_TOKEN": ALICE_TOKEN}  # the token travels as a secret only
    assert ALICE_TOKEN not in str(job.spec["environment"]) and ALICE_TOKEN not in "\n".join(result["logs"])

    # a DPO job: the same engine; its rewards reach the Runs tab's charts through the job's logs; pushed with its card
    assert result["dpo_state"] == ["succeeded", ""]
    assert [e["step"] for e in result["dpo_events"] if "rewards/margins" in e] == [1, 2]
    dpo_files = jobs_hub.files("alice/jobs-pirate-dpo")
    assert b"Method DPO: beta 0.1" in dpo_files["README.md"]
    assert "checkpoints/checkpoint-2/adapter_model.safetensors" in dpo_files  # the background checkpoint push

    assert result["cancelled"][0] == "cancelled"
    assert result["failed"] == ["failed", "Job failed with exit code: 2"]  # the worker's bad-input exit code
    assert any("no-such-file.jsonl" in line for line in result["failed_log"])  # the reason is in the job's log
    assert result["errors"] == [
        "Hugging Face Jobs: cannot start a job: the token was rejected.",
        "Hugging Face Jobs: cannot start a job: this token may not run jobs in that namespace.",
        "Hugging Face Jobs: cannot start a job: this token may not run jobs in that namespace.",
    ]
    assert not any(token in error for error in result["errors"] for token in (ALICE_TOKEN, BOB_TOKEN, "hf_nobody"))


def test_where_a_run_goes_and_what_it_costs():
    assert where_to_train(LOCAL, on_gpu=True, zero_gpu=False, jobs_offered=True, signed_in=True) == (LOCAL, "")
    local, why = where_to_train(LOCAL, on_gpu=True, zero_gpu=True, jobs_offered=True, signed_in=True)
    assert local == LOCAL and "ZeroGPU" in why and JOBS in why  # background training cannot run on ZeroGPU
    assert where_to_train(JOBS, on_gpu=False, zero_gpu=False, jobs_offered=True, signed_in=True) == (JOBS, "")
    assert "sign in" in where_to_train(JOBS, on_gpu=False, zero_gpu=False, jobs_offered=True, signed_in=False)[1]
    assert "Space" in where_to_train(JOBS, on_gpu=False, zero_gpu=False, jobs_offered=False, signed_in=True)[1]
    assert cost_usd(Flavor("h200", "1x H200", "1x H200", 5.0), 30 * 60) == 2.5
    assert parse_events(["noise", 'STUDIO_EVENT {"step": 1, "loss": 2.5}', "STUDIO_EVENT {broken"]) == [
        {"step": 1, "loss": 2.5}
    ]
