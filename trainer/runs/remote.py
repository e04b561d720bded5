"""Hugging Face Jobs: the same training run on rented Hub hardware, paid by the user who starts it.

How a job gets this project's code: it runs in the Space's own container image (``image="hf.co/spaces/<SPACE_ID>"``,
which the Hub builds from the Space's repo with its requirements), so the job runs exactly the code the Space
serves, with no image registry of ours. Outside a Space, `PHI3_STUDIO_JOB_IMAGE` names an image that has the project
installed. The run's config travels as YAML in an environment variable, the user's token as a job *secret*
(`HF_TOKEN`, never an environment variable, a log line or a file), and the job runs the worker the local backend
runs: ``python -m trainer train --config ... --run-dir $TMPDIR/studio-run``, pushing the adapter and card itself.

The worker prints every training event as one ``STUDIO_EVENT {json}`` line (`EVENTS_ENV`), so the Space follows a
job from its logs: status from `inspect_job`, the loss curve from `fetch_job_logs`, Cancel with `cancel_job`.
Every call names the user's namespace and token (without them `huggingface_hub` asks the module-level `whoami`).

On ZeroGPU Spaces (`SPACES_ZERO_GPU`), GPU time comes in short `@spaces.GPU` calls, so background training cannot run
there: `where_to_train` sends such runs to Jobs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer import distributed as dist
from trainer.config import RunConfig
from trainer.paths import env_setting
from trainer.runs import folder as rf
from trainer.runs.state import ACTIVE, RunState

logger = logging.getLogger(__name__)

EVENT_PREFIX = "STUDIO_EVENT "
EVENTS_ENV = "PHI3_STUDIO_EVENTS_STDOUT"
"""Set in a job: the worker also prints each event as one `EVENT_PREFIX` JSON line for the Space to follow."""
CONFIG_ENV = "PHI3_STUDIO_RUN_CONFIG"
IMAGE_ENV = "PHI3_STUDIO_JOB_IMAGE"


def job_command(processes: int = 1) -> list[str]:
    """What a job runs in the Space's image (its working directory is the app): the config from the environment,
    then the worker (under torchrun over `processes` GPUs when the flavour has several and the run uses them all),
    which trains, pushes the adapter and card, and prints its events (`EVENTS_ENV`)."""
    launch = " ".join(dist.launch_argv("python", processes))
    return [
        "bash",
        "-c",
        f'printf "%s" "${CONFIG_ENV}" > "${{TMPDIR:-/tmp}}/studio-run.yaml" && exec {launch} -m trainer train '
        '--config "${TMPDIR:-/tmp}/studio-run.yaml" --run-dir "${TMPDIR:-/tmp}/studio-run"',
    ]


JOB_COMMAND = job_command()
"""A one-GPU job's command."""
STATES = {
    "SCHEDULING": RunState.QUEUED,
    "RUNNING": RunState.RUNNING,
    "COMPLETED": RunState.SUCCEEDED,
    "ERROR": RunState.FAILED,
    "CANCELED": RunState.CANCELLED,
    "DELETED": RunState.CANCELLED,
}
"""Hugging Face Jobs stage -> the job table's state (the Runs tab shows a job like a local run)."""
LOCAL, JOBS = "this machine", "Hugging Face Jobs"


class JobsError(RuntimeError):
    """A job could not be started, read or cancelled; the message says why in the user's terms."""


@dataclass(frozen=True)
class Flavor:
    """One hardware flavour a job can run on, with its price."""

    name: str
    label: str
    accelerator: str | None
    usd_per_hour: float

    @property
    def gpus(self) -> int:
        """How many GPUs the flavour has (``4x L40S`` -> 4; 0 for a CPU flavour)."""
        count = (self.accelerator or "").split("x", 1)[0].strip()
        return int(count) if count.isdigit() else 0

    @property
    def choice(self) -> str:
        """How the form lists it: ``a10g-large: 1x A10G, $1.50/h``."""
        return f"{self.name}: {self.label}, ${self.usd_per_hour:.2f}/h"


def job_image() -> str | None:
    """The image a job runs in: `PHI3_STUDIO_JOB_IMAGE`, else this Space's own image, else None (Jobs not offered)."""
    if image := env_setting(IMAGE_ENV):
        return image
    return f"hf.co/spaces/{os.environ['SPACE_ID']}" if os.environ.get("SPACE_ID") else None


def where_to_train(choice: str, on_gpu: bool, zero_gpu: bool, jobs_offered: bool, signed_in: bool) -> tuple[str, str]:
    """Where a run goes, and why when it is not what was asked (pure).

    Args:
        choice: the form's "Run on": `LOCAL` or `JOBS`.
        on_gpu: this machine trains on a CUDA GPU.
        zero_gpu: this is a ZeroGPU Space (no background training on its GPU).
        jobs_offered: a job image is known (`job_image`).
        signed_in: the user signed in with their own token (Jobs are paid by the user who starts them).

    Returns:
        (`LOCAL` or `JOBS`, "" or the reason a run cannot go where asked, as a ``"run.run_on: ..."`` problem).
    """
    if choice == JOBS:
        if not jobs_offered:
            return JOBS, "run.run_on: Hugging Face Jobs are offered on a Space (or with PHI3_STUDIO_JOB_IMAGE set)."
        if not signed_in:
            return JOBS, "run.run_on: Hugging Face Jobs are paid by your account: sign in with Hugging Face first."
        return JOBS, ""
    if zero_gpu:
        return LOCAL, (
            "run.run_on: this is a ZeroGPU Space, whose GPU comes in short calls, so it cannot train in the "
            f"background; choose {JOBS} (paid by your account)."
        )
    return LOCAL, ""


def parse_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The training events in a job's log lines (`EVENT_PREFIX` JSON), in order; other lines are skipped."""
    events = []
    for line in lines:
        _, found, payload = line.partition(EVENT_PREFIX)
        if found:
            try:
                event = json.loads(payload)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def mirror(run_dir: Path, lines: list[str]) -> list[dict[str, Any]]:
    """Copy a job's log into its local run folder: log.txt (the log without the event lines) and events.jsonl (the
    events), so the Runs tab shows a job exactly as it shows a local run. Returns the events."""
    events = parse_events(lines)
    if any("loss" in e for e in events):  # first: a reader who sees the events sees the phase they belong to
        rf.write_status(run_dir, RunState.RUNNING, phase="training")
    rf.write_text_atomic(run_dir / rf.LOG_FILE, "".join(f"{line}\n" for line in lines if EVENT_PREFIX not in line))
    rf.write_events(run_dir, events)
    return events


def remote_id(run_dir: Path) -> str | None:
    """The Hugging Face Job id a run folder records (status.json ``hf_job``), or None."""
    return ((rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}).get("hf_job") or {}).get("id")


def start_remote(
    store, remote, config: RunConfig, run_dir: Path, name: str, owner: str, token: str, flavor: str, timeout_s: int
):
    """Add the run to the job table as a Hugging Face Job and submit it; a refusal is recorded as its failure.

    Returns:
        The job row: running (the job id in status.json), or failed with the reason.
    """
    job = store.create(run_dir, name=name, owner=owner, needs_token=True, backend="hf-jobs")
    try:
        job_id = remote.start(config, owner, token, flavor, timeout_s)
    except JobsError as exc:
        store.update(job.id, status=RunState.FAILED, error=str(exc), finished_at=time.time())
        rf.write_status(run_dir, RunState.FAILED, error=str(exc))
        return store.get(job.id)
    store.update(job.id, status=RunState.RUNNING, started_at=time.time())
    rf.write_status(run_dir, RunState.RUNNING, phase="starting", hf_job={"id": job_id, "flavor": flavor})
    return store.get(job.id)


def follow_remote(store, remote, job_id: int, token: str, poll_s: float) -> str:
    """Mirror a Hugging Face Job's log and events into its run folder until it ends; record how it ended.

    A Hub that does not answer once is read again at the next poll. Returns the final state.
    """
    job = store.get(job_id)
    run_dir = Path(job.run_dir)
    found = remote_id(run_dir)
    state, message = RunState.RUNNING, ""
    while state in ACTIVE and found:
        try:
            state, message = remote.status(found, job.owner, token)
            mirror(run_dir, remote.logs(found, job.owner, token))
        except JobsError as exc:
            logger.warning("job %d: %s", job_id, exc)
        if state in ACTIVE:
            time.sleep(poll_s)
    error = None if state == RunState.SUCCEEDED else (message or f"the Hugging Face Job ended {state}")
    rf.write_status(run_dir, state, error=error)  # the folder first: whoever sees the table's state finds it there
    store.update(job_id, status=state, error=error, finished_at=time.time())
    return state


def cancel_remote(store, remote, job, token: str | None):
    """Ask the Hub to stop a running Hugging Face Job with its owner's token; its follower records the end.

    Raises:
        ValueError: the token is gone (the server restarted), or the Hub refused (shown like any refused action).
    """
    if token is None:
        raise ValueError(f"job {job.id}: sign in again to cancel it (the server restarted and forgot your token).")
    try:
        remote.cancel(remote_id(Path(job.run_dir)), job.owner, token)
    except JobsError as exc:
        raise ValueError(str(exc)) from None
    store.update(job.id, cancel_requested=True)
    return store.get(job.id)


def cost_usd(flavor: Flavor, seconds: float) -> float:
    """What `seconds` of `flavor` costs."""
    return flavor.usd_per_hour * seconds / 3600


class HfJobsBackend:
    """Starts, follows and cancels runs on Hugging Face Jobs for one user (their namespace, their token)."""

    def __init__(self, endpoint: str | None = None):
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint)

    def _call(self, what: str, fn, **kwargs):
        """Call the Hub; a failure becomes a JobsError that never carries the token."""
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return fn(**kwargs)
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            reason = {401: "the token was rejected", 403: "this token may not run jobs in that namespace"}.get(
                status, f"the Hub answered {status}"
            )
            raise JobsError(f"Hugging Face Jobs: cannot {what}: {reason}.") from None

    def flavors(self, token: str) -> list[Flavor]:
        """The hardware a job can run on, GPU flavours first, with the price per hour."""
        found = self._call("list the hardware", self.api.list_jobs_hardware, token=token)
        per_hour = {"minute": 60, "hour": 1, "second": 3600}
        flavors = [
            Flavor(
                h.name,
                h.pretty_name,
                f"{h.accelerator.quantity}x {h.accelerator.model}" if h.accelerator else None,
                round(h.unit_cost_usd * per_hour.get(h.unit_label, 60), 2),
            )
            for h in found
        ]
        return sorted(flavors, key=lambda f: (f.accelerator is None, f.usd_per_hour))

    def start(self, config: RunConfig, namespace: str, token: str, flavor: str, timeout_s: int) -> str:
        """Submit the run; returns the job id. The token goes only into the job's secrets."""
        image = job_image()
        if image is None:
            raise JobsError(f"Hugging Face Jobs: no image to run in; set {IMAGE_ENV} or run the app on a Space.")
        gpus = next((f.gpus for f in self.flavors(token) if f.name == flavor), 0)
        info = self._call(
            "start a job",
            self.api.run_job,
            image=image,
            command=job_command(dist.worker_processes(config.run.gpus, gpus)),
            env={CONFIG_ENV: config.to_yaml(), EVENTS_ENV: "1", "PYTHONUNBUFFERED": "1"},
            secrets={"HF_TOKEN": token},
            flavor=flavor,
            timeout=timeout_s,
            labels={"app": "phi3-studio"},
            namespace=namespace,
            token=token,
        )
        return info.id

    def status(self, job_id: str, namespace: str, token: str) -> tuple[str, str]:
        """(job-table state, the Hub's message or "")."""
        info = self._call("read the job", self.api.inspect_job, job_id=job_id, namespace=namespace, token=token)
        return STATES.get(info.status.stage, RunState.RUNNING), info.status.message or ""

    def logs(self, job_id: str, namespace: str, token: str) -> list[str]:
        """The job's log lines so far (does not wait for more)."""
        return list(
            self._call(
                "read the logs",
                self.api.fetch_job_logs,
                job_id=job_id,
                namespace=namespace,
                follow=False,
                token=token,
            )
        )

    def cancel(self, job_id: str, namespace: str, token: str) -> None:
        """Ask the Hub to stop the job."""
        self._call("cancel the job", self.api.cancel_job, job_id=job_id, namespace=namespace, token=token)
