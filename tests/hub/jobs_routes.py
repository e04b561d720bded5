"""Hugging Face Jobs routes for the local Hub server (tests/hub/server.py): what `HfApi.run_job`, `inspect_job`,
`fetch_job_logs`, `cancel_job` and `list_jobs_hardware` call.

A job here runs its command as a process on this machine (the image is recorded, not pulled), with the job's
environment and secrets on top of `HubServer.job_env` (the test's own endpoint and home, and a TMPDIR under which
each job gets a folder of its own, as each real job gets its own container), in `HubServer.job_cwd`.
Its output lines are the job's log, served as server-sent events (``data: {"data": line, "timestamp": ...}``);
its exit code decides COMPLETED or ERROR, and cancel terminates it (CANCELED). Namespaces are checked as for
writes: the user's own, or an org where the token may write; a read token may not run jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .server import ApiError, HubServer, Request, Response, route

HARDWARE = [
    {
        "name": "cpu-basic",
        "prettyName": "CPU Basic",
        "cpu": "2 vCPU",
        "ram": "16 GB",
        "accelerator": None,
        "unitCostMicroUSD": 167,
        "unitCostUSD": 0.000167,
        "unitLabel": "minute",
    },
    {
        "name": "a10g-large",
        "prettyName": "1x Nvidia A10G",
        "cpu": "12 vCPU",
        "ram": "46 GB",
        "accelerator": {"type": "gpu", "model": "A10G", "quantity": "1", "vram": "24 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 25000,
        "unitCostUSD": 0.025,
        "unitLabel": "minute",
    },
    {
        "name": "h200",
        "prettyName": "1x Nvidia H200",
        "cpu": "23 vCPU",
        "ram": "256 GB",
        "accelerator": {"type": "gpu", "model": "H200", "quantity": "1", "vram": "141 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 83333,
        "unitCostUSD": 0.083333,
        "unitLabel": "minute",
    },
]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeJob:
    id: str
    namespace: str
    spec: dict[str, Any]
    stage: str = "SCHEDULING"
    message: str | None = None
    lines: list[dict[str, str]] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    created_at: str = field(default_factory=_now)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "dockerImage": self.spec.get("dockerImage"),
            "spaceId": self.spec.get("spaceId"),
            "owner": {"id": "0" * 24, "name": self.namespace, "type": "user"},
            "command": self.spec["command"],
            "arguments": [],
            "environment": self.spec.get("environment", {}),
            "secrets": sorted(self.spec.get("secrets", {})),  # the Hub shows secret names, never values
            "flavor": self.spec.get("flavor"),
            "labels": self.spec.get("labels"),
            "status": {"stage": self.stage, "message": self.message},
        }


def _jobs(hub: HubServer) -> dict[str, FakeJob]:
    if not hasattr(hub, "jobs"):
        hub.jobs = {}  # type: ignore[attr-defined]
    return hub.jobs  # type: ignore[attr-defined]


def _job(hub: HubServer, req: Request) -> FakeJob:
    account = hub.account(req)
    job = _jobs(hub).get(req.params["job_id"])
    if job is None or job.namespace != req.params["namespace"]:
        raise ApiError(404, "Job not found")
    hub.check_write(account, job.namespace, "read jobs")
    return job


def _run(hub: HubServer, job: FakeJob) -> None:
    env = {
        **os.environ,
        **getattr(hub, "job_env", {}),
        **job.spec.get("environment", {}),
        **job.spec.get("secrets", {}),
    }
    if "TMPDIR" in env:  # each job has a container of its own: here, a temporary folder of its own
        env["TMPDIR"] = os.path.join(env["TMPDIR"], job.id)
        os.makedirs(env["TMPDIR"])
    job.proc = subprocess.Popen(
        job.spec["command"],
        cwd=getattr(hub, "job_cwd", None),
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    job.stage = "RUNNING"
    job.lines.append({"data": "===== Job started =====", "timestamp": _now()})
    for line in job.proc.stdout:  # type: ignore[union-attr]
        job.lines.append({"data": line.rstrip("\n"), "timestamp": _now()})
    code = job.proc.wait()
    if job.stage != "CANCELED":
        job.stage, job.message = ("COMPLETED", None) if code == 0 else ("ERROR", f"Job failed with exit code: {code}")


@route("GET", "/api/jobs/hardware")
def hardware(hub: HubServer, req: Request) -> Response:
    return Response.json(HARDWARE)


@route("POST", "/api/jobs/(?P<namespace>[^/]+)")
def run_job(hub: HubServer, req: Request) -> Response:
    account = hub.account(req)
    hub.check_write(account, req.params["namespace"], "run jobs")
    spec = req.json()
    if spec.get("flavor") not in {h["name"] for h in HARDWARE}:
        raise ApiError(400, f"Invalid flavor: {spec.get('flavor')}")
    job = FakeJob(uuid.uuid4().hex[:24], req.params["namespace"], spec)
    _jobs(hub)[job.id] = job
    threading.Thread(target=_run, args=(hub, job), daemon=True).start()
    return Response.json(job.info())


@route("GET", "/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[0-9a-f]+)")
def inspect_job(hub: HubServer, req: Request) -> Response:
    return Response.json(_job(hub, req).info())


@route("GET", "/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[0-9a-f]+)/logs")
def job_logs(hub: HubServer, req: Request) -> Response:
    job = _job(hub, req)
    body = "".join(f"data: {json.dumps(line)}\n\n" for line in list(job.lines))
    return Response(200, body.encode(), {"Content-Type": "text/event-stream"})


@route("POST", "/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[0-9a-f]+)/cancel")
def cancel_job(hub: HubServer, req: Request) -> Response:
    job = _job(hub, req)
    if job.stage in ("SCHEDULING", "RUNNING"):
        job.stage = "CANCELED"
        if job.proc is not None:
            job.proc.terminate()
    return Response(200, b"", {})
