"""GGUF exports of trained runs, behind the run service (`RunService.exports`): estimate, queue, watch, cancel, list,
download and push. Each action takes the caller and the run id a browser sent; the run is looked up with the
service's `find` (the owner checked on the server) before anything else, and a file is chosen by its name from the
run's own list of exports, never by a path.

An export is a job of the queue like an evaluation (`kind` "export"), run in the run's own `gguf/` folder by
`python -m trainer export-gguf RUN --request`: it waits for the machine, is cancelled as a run is, counts against
the same per-user limit of jobs, and pushes with its owner's own token.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import repo_id_problem
from trainer.preflight import RefusedRun
from trainer.runs import folder as rf
from trainer.runs.access import Caller
from trainer.runs.evaluations import cancel_on_run, jobs_on_run, queue_on_run
from trainer.runs.state import ACTIVE
from trainer.runs.store import EXPORT, Job

GGUF_TYPES = ("q4_K_M", "q5_K_M", "q8_0", "f16", "bf16")
"""The types an export offers (`trainer.gguf.export.GGUF_TYPES`, which a test keeps equal)."""
PUSH_WHERE = ("none", "separate", "alongside")
"""Where an export's files go on the Hub: nowhere, `<repo>-GGUF` with its own card, or `gguf/` of the adapter's
repo."""


@dataclass
class ExportView:
    """What the Runs tab shows of a run's exports: the last export job, its status, the files made (name, bytes)."""

    job: Job | None
    status: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.status in ACTIVE


def export_files(run_dir: Path) -> list[tuple[str, int]]:
    """The finished .gguf files of a run (name, bytes), newest first; a work folder's partial file is not one."""
    folder = Path(run_dir) / rf.GGUF_DIR
    found = [p for p in folder.glob("*.gguf") if p.is_file()] if folder.is_dir() else []
    return [(p.name, p.stat().st_size) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def gguf_repo_id(adapter_repo: str) -> str:
    """Where a run's GGUF files go by default: its adapter repo's name + '-GGUF' (the Hub's usual name)."""
    return f"{adapter_repo}-GGUF" if adapter_repo else ""


class Exports:
    """The GGUF export actions of the run service."""

    def __init__(self, service):
        self.service = service  # the RunService that holds this (its `find`, `queue` and config reads)

    def folder(self, run: Job) -> Path:
        return Path(run.run_dir) / rf.GGUF_DIR

    def latest(self, who: Caller, run: Job) -> Job | None:
        """The newest export job of a run (call with a run from `find`: the owner checked)."""
        return next(iter(jobs_on_run(self.service.queue.store, run, rf.GGUF_DIR)), None)

    def view(self, who: Caller, run: Job) -> ExportView:
        """The run's exports as the Runs tab shows them (call with a run from `find`)."""
        status = rf.read_json(self.folder(run) / rf.STATUS_FILE, {}) or {}
        return ExportView(self.latest(who, run), status if isinstance(status, dict) else {}, export_files(run.run_dir))

    def stamp(self, who: Caller, run: Job) -> list:
        """What the export view can only have changed if this changed (no file is read)."""
        job = self.latest(who, run)
        try:
            info = (self.folder(run) / rf.STATUS_FILE).stat()
            status = [info.st_size, info.st_mtime_ns]
        except OSError:
            status = None
        return [job and [job.id, job.status, job.error], status, export_files(run.run_dir)]

    def estimate(self, who: Caller, run_id: object, gguf_type: str, adapter: bool = False):
        """The file's size and the time, before the export starts (an ExportEstimate)."""
        from trainer.estimate.memory import model_shape
        from trainer.gguf.export import estimate_export

        run = self.service.trained_run(who, run_id, "exported")
        cfg = self.service.config_of(run)
        shape = model_shape(cfg.model.model_name_or_path, token=self.service.hub_token(who))
        lora = shape.lora_params(cfg.lora.r, cfg.lora.target_modules) if adapter else None
        return estimate_export(shape.n_params, gguf_type, lora)

    def problems(self, who: Caller, run: Job, gguf_type: str, push: str, repo_id: str) -> list[str]:
        """What stops this export before it is queued, each with its fix."""
        problems = []
        if gguf_type not in GGUF_TYPES:
            problems.append(f"type: {gguf_type!r} is not offered; choose one of {', '.join(GGUF_TYPES)}.")
        if push not in PUSH_WHERE:
            problems.append(f"push: {push!r} is not one of {', '.join(PUSH_WHERE)}.")
        elif push != "none":
            if self.service.space_mode() and not who.token:
                problems.append("push: the files go to your Hugging Face account: sign in again to give your token.")
            if push == "alongside" and not self.service.config_of(run).hub.repo_id:
                problems.append(
                    "push: this run has no adapter repo to put them beside; push them to a repo of their own."
                )
            if push == "separate" and (problem := repo_id_problem(repo_id) if repo_id else "repo: give a repo ID."):
                problems.append(problem.replace("hub.repo_id:", "repo:", 1))  # the panel's own field, not the form's
        return problems

    def start(
        self, who: Caller, run_id: object, gguf_type: str, adapter: bool = False, push: str = "none", repo_id: str = ""
    ) -> Job:
        """Queue a GGUF export of the caller's trained run (and its push to the Hub with their own token).

        Args:
            who: the caller (a signed-out visitor on a Space is refused).
            run_id: the run, as the browser sent it (its owner is checked here).
            gguf_type: one of GGUF_TYPES (ignored for the adapter, always f16).
            adapter: export the adapter alone (for llama.cpp's --lora, Ollama's ADAPTER) instead of the merged model.
            push: "none", "separate" (to `repo_id`, with its own card) or "alongside" (gguf/ of the adapter's repo).

        Raises:
            AccessError: not signed in, or not the caller's run. RefusedRun: the problems. ValueError: an export of
                it is already queued or running; the job limit.
        """
        who.require("export a run")
        run = self.service.trained_run(who, run_id, "exported")
        repo_id = (repo_id or "").strip()
        if problems := self.problems(who, run, gguf_type, push, repo_id):
            raise RefusedRun(problems)
        request = {"type": gguf_type, "adapter": bool(adapter), "push": push, "repo_id": repo_id}
        token = who.token if push != "none" else None  # the token is held only when it will be used
        name = f"GGUF export of {run.name}"
        return queue_on_run(self.service.queue, run, rf.GGUF_DIR, request, who, name, EXPORT, token)

    def cancel(self, who: Caller, run_id: object) -> Job:
        """Cancel the export of the caller's run that is queued or running."""
        return cancel_on_run(self.service, who, run_id, rf.GGUF_DIR)

    def download(self, who: Caller, run_id: object, name: str, into: Path) -> Path:
        """A copy (a hard link where the disk allows) of one of the caller's run's exports, chosen by its name from
        the run's own list (a name from a browser is matched, never opened as a path), in the folder `into`."""
        run = self.service.find(who, run_id)
        names = [n for n, _ in export_files(run.run_dir)]
        if name not in names:
            raise ValueError(f"run #{run.id} has no export named {name!r}; its exports: {', '.join(names) or 'none'}.")
        into.mkdir(parents=True, exist_ok=True)
        source, target = self.folder(run) / name, into / name
        try:
            os.link(source, target)
        except OSError:  # another disk: a copy
            shutil.copyfile(source, target)
        return target
