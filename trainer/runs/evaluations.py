"""Evaluations of trained runs, behind the run service (`RunService.evals`): queue one, watch it, cancel it, read
and download its results. Each action takes the caller and the run id a browser sent; the run is looked up with the
service's `find` (the owner checked on the server) before anything else.

An evaluation is a job of the queue like a training run (`kind` "eval"), run in the run's own `eval/` folder: it
waits for the GPU, is cancelled as a run is, and has the same time limit and the same per-user limit of jobs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.evaluation.benchmarks import BenchmarkSettings
from trainer.evaluation.judge import JudgeEstimate, JudgeSettings, estimate_judge
from trainer.evaluation.report import eval_dir, read_rows, read_summary
from trainer.evaluation.settings import EvalEstimate, EvalSettings, estimate_eval
from trainer.phi3 import TINY_MODEL_NAME
from trainer.preflight import RefusedRun
from trainer.runs import folder as rf
from trainer.runs.access import AccessError, Caller, dataset_problem
from trainer.runs.state import ACTIVE, RunState
from trainer.runs.store import EVAL, Job


@dataclass
class EvalView:
    """What the Runs tab shows of a run's evaluation: the last evaluation job (None: never queued from the web app),
    its status, and the results in the run folder (also those of an evaluation made with the CLI)."""

    job: Job | None
    status: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.status in ACTIVE


class Evaluations:
    """The evaluation actions of the run service."""

    def __init__(self, service):
        self.service = service  # the RunService that holds this (its `find`, `queue`, uploads and config reads)

    def _run(self, who: Caller, run_id: object) -> Job:
        """The caller's own trained run with an adapter (AccessError / ValueError otherwise)."""
        return self.service.trained_run(who, run_id, "evaluated")

    def latest(self, who: Caller, run: Job) -> Job | None:
        """The newest evaluation job of a run (call with a run from `find`: the owner checked)."""
        return next(iter(jobs_on_run(self.service.queue.store, run, rf.EVAL_DIR)), None)

    def view(self, who: Caller, run: Job) -> EvalView:
        """The run's evaluation as the Runs tab shows it (call with a run from `find`)."""
        job = self.latest(who, run)
        folder = eval_dir(Path(run.run_dir))
        status = rf.read_json(folder / rf.STATUS_FILE, {}) or {}
        status = status if isinstance(status, dict) else {}
        return EvalView(job, status, read_summary(run.run_dir), read_rows(run.run_dir))

    EVAL_FILES = (
        rf.STATUS_FILE,
        rf.EVAL_SUMMARY_FILE,
        rf.EVAL_RESULTS_FILE,
        rf.EVAL_JUDGE_FILE,
        rf.EVAL_BENCHMARKS_FILE,
        rf.EVAL_VOTES_FILE,
    )

    def stamp(self, who: Caller, run: Job) -> list:
        """What the run's evaluation view can only have changed if this changed: its last job's row and the sizes
        and times of the eval/ files (no file is read; call with a run from `find`)."""
        job = self.latest(who, run)
        stats = []
        for name in self.EVAL_FILES:
            try:
                info = (eval_dir(Path(run.run_dir)) / name).stat()
                stats.append([info.st_size, info.st_mtime_ns])
            except OSError:
                stats.append(None)
        return [job and [job.id, job.status, job.error], stats]

    @staticmethod
    def summary(who: Caller, run: Job) -> dict[str, Any] | None:
        """The summary of the run's last evaluation, None without one (call with a run from `find`)."""
        return read_summary(run.run_dir)

    @staticmethod
    def chart(who: Caller, run: Job):
        """The chart of the run's last evaluation as a Pillow image, None when it has none (call with a run from
        `find`: the image is read here, never served by its path)."""
        from PIL import Image

        path = eval_dir(Path(run.run_dir)) / rf.EVAL_CHART_FILE
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError:
            return None

    def problems(self, who: Caller, run: Job, settings: EvalSettings, on_gpu: bool) -> list[str]:
        """What stops this evaluation before it is queued, each with its fix."""
        problems = settings.problems()
        if settings.source == "dataset" and not problems:
            if problem := dataset_problem(who, settings.path or ""):
                problems.append(problem.replace("data.dataset_name", "evaluation dataset").replace("train on", "use"))
        if problem := self._cpu_problem(run, on_gpu, "eval"):
            problems.append(problem)
        return problems

    def _cpu_problem(self, run: Job, on_gpu: bool, command: str) -> str | None:
        """A real model is not run here on a CPU (the tiny demo model is): why, and where instead."""
        base = self.service.config_of(run).model.model_name_or_path
        if on_gpu or base == TINY_MODEL_NAME:
            return None
        return (
            f"{base} answers hundreds of prompts only on a GPU, and this machine has none: run it on a GPU Space, "
            f"or with `python -m trainer {command} RUN` where there is one."
        )

    def start(
        self, who: Caller, run_id: object, settings: EvalSettings, upload: str | None = None, on_gpu: bool = False
    ) -> Job:
        """Queue an evaluation of the caller's trained run.

        Args:
            who: the caller (a signed-out visitor on a Space is refused).
            run_id: the run, as the browser sent it (its owner is checked here).
            settings: what to evaluate; for source "file" its `path` is ignored and the uploaded file is kept in the
                caller's own upload folder and used instead (a path from a browser is never opened).
            upload: the uploaded file (Gradio's temporary copy), for source "file".
            on_gpu: this machine has a GPU (a real model is not evaluated on a CPU).

        Raises:
            AccessError: not signed in, or not the caller's run. ValueError (RefusedRun): the problems, each with its
                fix; the run is not trained; an evaluation of it is already queued or running; the job limit.
        """
        who.require("evaluate a run")
        run = self._run(who, run_id)
        if settings.source == "file":
            saved, error = self.service.save_upload(who, upload)
            if error or not saved:
                why = error.split("\n", 1)[-1] if error else "evaluation file: upload a file of chat rows."
                raise RefusedRun([why])
            settings = replace(settings, path=saved)
        if problems := self.problems(who, run, settings, on_gpu):
            raise RefusedRun(problems)
        return self._enqueue(run, settings.to_dict(), who, f"evaluation of {run.name}")

    def judge(self, who: Caller, run_id: object, settings: JudgeSettings) -> Job:
        """Queue the judging of the caller's evaluated run by a judge model, with the caller's own token (on a Space
        a signed-in user's; never the Space's). It runs as an evaluation job of the run (`python -m trainer eval RUN
        --request` reads the judge's settings), so it is cancelable and owner-checked like one.

        Raises:
            AccessError: not signed in, or not the caller's run. ValueError (RefusedRun): the problems.
        """
        who.require("judge a run")
        run = self._run(who, run_id)
        problems = settings.problems()
        if not read_rows(run.run_dir):
            problems.append(f"run #{run.id} has no evaluation yet: evaluate it first; the judge compares its answers.")
        if self.service.space_mode() and not who.token:
            problems.append("the judge runs on your Hugging Face account: sign in again to give the app your token.")
        if problems:
            raise RefusedRun(problems)
        return self._enqueue(run, {"judge": settings.to_dict()}, who, f"judging of {run.name}")

    def benchmarks(self, who: Caller, run_id: object, settings: BenchmarkSettings, on_gpu: bool = False) -> Job:
        """Queue lm-eval's tasks on the caller's trained run (base and base + adapter), as an evaluation job of the
        run. Only the offered tasks: a folder of task files is for the command line.

        Raises:
            AccessError: not signed in, or not the caller's run. ValueError (RefusedRun): the problems.
        """
        who.require("benchmark a run")
        run = self._run(who, run_id)
        settings = replace(settings, include_path=None)  # never a folder named by a browser
        problems = settings.problems()
        if problem := self._cpu_problem(run, on_gpu, "benchmarks"):
            problems.append(problem)
        if problems:
            raise RefusedRun(problems)
        return self._enqueue(run, {"benchmarks": settings.to_dict()}, who, f"benchmarks of {run.name}")

    @staticmethod
    def benchmark_results(who: Caller, run: Job) -> dict[str, Any] | None:
        """The run's last benchmarks (eval/benchmarks.json), None without (call with a run from `find`)."""
        data = rf.read_json(eval_dir(Path(run.run_dir)) / rf.EVAL_BENCHMARKS_FILE, None)
        return data if isinstance(data, dict) and isinstance(data.get("tuned"), dict) else None

    def judge_estimate(self, who: Caller, run_id: object, settings: JudgeSettings) -> JudgeEstimate:
        """The judge's calls, tokens and (with a price) cost before it starts."""
        return estimate_judge(read_rows(self._run(who, run_id).run_dir), settings)

    @staticmethod
    def judgments(who: Caller, run: Job) -> dict[str, Any] | None:
        """The run's last judging (eval/judge.json), None without one (call with a run from `find`)."""
        data = rf.read_json(eval_dir(Path(run.run_dir)) / rf.EVAL_JUDGE_FILE, None)
        return data if isinstance(data, dict) and isinstance(data.get("summary"), dict) else None

    def _enqueue(self, run: Job, request: dict[str, Any], who: Caller, name: str) -> Job:
        """Write the request and a queued status into the run's eval/ and queue it (the last results stay until the
        new ones replace them)."""
        return queue_on_run(self.service.queue, run, rf.EVAL_DIR, request, who, name, EVAL, who.token)

    def cancel(self, who: Caller, run_id: object) -> Job:
        """Cancel the evaluation of the caller's run that is queued or running."""
        return cancel_on_run(self.service, who, run_id, rf.EVAL_DIR)

    def estimate(self, who: Caller, run_id: object, settings: EvalSettings, on_gpu: bool) -> EvalEstimate:
        """The evaluation's size and time before it starts: the prompts (the run's held-out count when known), the
        tokens at most, and seconds from the run's last evaluation here, else from the GPU's memory bandwidth, else
        the tiny model's measured CPU step."""
        run = self._run(who, run_id)
        status = rf.read_json(Path(run.run_dir) / rf.STATUS_FILE, {}) or {}
        prompts = status.get("eval_rows") if settings.source == "held-out" else None
        prompts = prompts if isinstance(prompts, int) else settings.rows
        last = read_summary(run.run_dir)
        if last and last.get("decode_steps") and last.get("seconds"):
            step_s, basis = last["seconds"] / last["decode_steps"], "at the speed of this run's last evaluation"
        else:
            step_s, basis = self._step_s(run, on_gpu)
        return estimate_eval(settings, prompts, step_s, basis)

    def _step_s(self, run: Job, on_gpu: bool) -> tuple[float | None, str]:
        """Seconds per batched decode step, and how that figure was found."""
        cfg = self.service.config_of(run).model
        from trainer.estimate.plan import TINY_CPU_DECODE_STEP_S, decode_step_s

        if cfg.model_name_or_path == TINY_MODEL_NAME and not on_gpu:
            return TINY_CPU_DECODE_STEP_S, "the tiny model's measured step on 2 CPU cores"
        from trainer.estimate.device import detect_device
        from trainer.estimate.memory import model_shape

        device = detect_device(cfg.model_name_or_path)
        try:
            shape = model_shape(cfg.model_name_or_path)
        except (OSError, ValueError):
            return None, f"no figure for {device.name}"
        return decode_step_s(device, shape, cfg.load_in_4bit)

    def archive(self, who: Caller, run_id: object, into: Path) -> str:
        """A .zip of the run's last evaluation (results.json, summary.json, chart.png) at `into` + ".zip"."""
        run = self.service.find(who, run_id)
        folder = eval_dir(Path(run.run_dir))
        if not (folder / rf.EVAL_SUMMARY_FILE).is_file():
            raise ValueError(f"run #{run.id} has no evaluation results yet: evaluate it first.")
        into.mkdir(parents=True, exist_ok=True)
        for name in (rf.EVAL_RESULTS_FILE, rf.EVAL_SUMMARY_FILE, rf.EVAL_CHART_FILE):
            if (folder / name).is_file():
                shutil.copy2(folder / name, into / name)
        return shutil.make_archive(str(into), "zip", root_dir=into)


NOUNS = {rf.EVAL_DIR: "evaluation", rf.GGUF_DIR: "export"}
"""The kinds of job on a run, by the run's subfolder they run in."""


def jobs_on_run(store, run: Job, subfolder: str) -> list[Job]:
    """The jobs on a trained run that run in its `subfolder` (eval/: evaluations, gguf/: exports), newest first."""
    folder = str(Path(run.run_dir) / subfolder)
    return [job for job in store.list(run.owner) if job.on_a_run and job.run_dir == folder]


def queue_on_run(queue, run: Job, subfolder: str, request, who: Caller, name: str, kind: str, token) -> Job:
    """Queue a job on a trained run (an evaluation, an export) in its `subfolder`: one at a time per run and kind,
    under the owner's limit of jobs; its request and a queued status written there first; `token` held for its
    worker."""
    last = next(iter(jobs_on_run(queue.store, run, subfolder)), None)
    if last is not None and last.status in ACTIVE:
        raise ValueError(
            f"run #{run.id} already has an {NOUNS[subfolder]} queued or running; wait for it or cancel it."
        )
    queue.check_active_runs(who.owner)
    folder = Path(run.run_dir) / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    rf.write_json_atomic(folder / rf.REQUEST_FILE, request)
    rf.write_exit(folder, None)
    rf.write_status(folder, RunState.QUEUED, owner=who.owner, name=name, error=None, finished_at=None)
    return queue.enqueue(folder, name, who.owner, token, kind=kind)


def cancel_on_run(service, who: Caller, run_id: object, subfolder: str) -> Job:
    """Cancel the job on the caller's run (found with the service's `find`: the owner checked) that runs in its
    `subfolder` and is queued or running."""
    run = service.find(who, run_id)
    job = next(iter(jobs_on_run(service.queue.store, run, subfolder)), None)
    if job is None or job.status not in ACTIVE:
        raise ValueError(f"run #{run.id} has no {NOUNS[subfolder]} queued or running.")
    return service.queue.cancel(job.id)


def forget(store, run: Job, subfolder: str = rf.EVAL_DIR) -> None:
    """Drop the jobs on a run that is being deleted (its folder, their `subfolder` included, goes with it): its
    evaluations (eval/), or its GGUF exports (gguf/).

    Raises:
        ValueError: one of them is queued or running (cancel it first).
    """
    jobs = jobs_on_run(store, run, subfolder)
    if any(job.status in ACTIVE for job in jobs):
        raise ValueError(
            f"run #{run.id} has an {NOUNS[subfolder]} queued or running: cancel it before deleting the run."
        )
    for job in jobs:
        store.delete(job.id)


__all__ = [
    "AccessError",
    "BenchmarkSettings",
    "EvalEstimate",
    "EvalSettings",
    "EvalView",
    "Evaluations",
    "JudgeSettings",
]
