"""`RunService`: the one seam between the front ends (the web app, the CLI) and a run's life.

Every action on a run goes through here, once: who the caller is and what they may do (`access`), the checks before
a run is queued (`trainer.preflight`), and the lookup of a run by the id a browser sent (its owner checked on the
server). The parts it holds each have one job: the queue and its worker processes (`queue`, `processes`), the job
table (`store`), the run folders (`folder`), Hugging Face Jobs (`remote`).

A new kind of job (an evaluation, an export) is one more action here, in the same form as `start` and
`retry_push`: take the caller and the run id, look the run up with `find`, check what the action needs, then hand
it to the queue.

Example:
    >>> service = RunService.default()
    >>> who = service.caller(None, None)              # the person at the machine, locally
    >>> job = service.start(who, config)              # RefusedRun lists the problems, each naming its setting
    >>> service.cancel(who, str(job.id))
"""

from __future__ import annotations

import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import RunConfig, repo_id_problem
from trainer.preflight import DEMO_PRESET, RefusedRun
from trainer.runs import archives
from trainer.runs import folder as rf
from trainer.runs.access import (
    JOBS_ADAPTER,
    JOBS_REWARD_MODULE,
    JOBS_TRACKER_KEY,
    NO_SUCH_RUN,
    SIGN_IN,
    AccessError,
    Caller,
    Limits,
    caller_from,
    dataset_problem,
    find_job,
    hub_kernels_problem,
    hub_token,
    model_problem,
    reward_module_problem,
    space_mode,
    tracker_environment,
    trackio_space_problem,
    upload_dir,
    visible_jobs,
)
from trainer.runs.evaluations import BenchmarkSettings, EvalSettings, Evaluations, EvalView, JudgeSettings
from trainer.runs.exports import GGUF_TYPES, Exports, gguf_repo_id
from trainer.runs.folder import BUILD_PHASE, GGUF_DIR, PHASES, progress, without_server_paths
from trainer.runs.processes import log_tail
from trainer.runs.queue import WAITING_FOR_OWNER, RunQueue
from trainer.runs.remote import LOCAL, Flavor
from trainer.runs.state import TRAINED, RunState
from trainer.runs.store import Job
from trainer.runs.sweeps import Sweeps
from trainer.runs.votes import VoteStore
from trainer.runs.voting import Ballot, Votes

__all__ = [
    "BUILD_PHASE",
    "GGUF_TYPES",
    "PHASES",
    "SIGN_IN",
    "WAITING_FOR_OWNER",
    "AccessError",
    "Ballot",
    "BenchmarkSettings",
    "Caller",
    "EvalSettings",
    "EvalView",
    "Flavor",
    "JudgeSettings",
    "Job",
    "LOCAL",
    "Limits",
    "RefusedRun",
    "RunService",
    "RunState",
    "RunView",
    "gguf_repo_id",
    "progress",
    "without_server_paths",
]

VOTES_DB = "votes.sqlite"
"""The blind votes and vote links, beside the job table in the data dir."""
RUN_REF = re.compile(r"run #(\d{1,12})")
"""How Continue training names the parent run in the form (`run #12`): an id, resolved on the server at Start."""


@dataclass
class RunView:
    """What a front end shows of one run: its row and what its folder says (read once per refresh)."""

    job: Job
    status: dict[str, Any]
    events: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    has_adapter: bool
    has_trl_export: bool

    @property
    def run_dir(self) -> Path:
        return Path(self.job.run_dir)

    def log(self, lines: int = 40) -> str:
        """The last lines of the run's log, without server paths."""
        return without_server_paths(log_tail(self.run_dir, lines))


class RunService:
    """Start, watch and act on runs for a caller; the access policy and the pre-queue checks live here."""

    DEMO_PRESET = DEMO_PRESET
    """The preset the offline demo starts from (a CPU machine)."""

    def __init__(self, queue: RunQueue):
        self.queue = queue
        self.evals = Evaluations(self)  # evaluations of trained runs: start, view, cancel, estimate, archive
        self.exports = Exports(self)  # GGUF exports of trained runs: start, view, cancel, estimate, files, push
        self.sweeps = Sweeps(self)  # sweeps: one run per combination of a few settings' values, all or none
        self.votes = Votes(self, VoteStore(queue.store.path.parent / VOTES_DB))  # blind A/B votes and vote links

    @classmethod
    def default(cls) -> RunService:
        """The service of the data dir's job table (stale jobs recovered, the queue started).

        Raises:
            OSError: the data dir cannot be written (the message names it).
        """
        return cls(RunQueue.default())

    @property
    def limits(self) -> Limits:
        return self.queue.limits

    # --- who is asking

    @staticmethod
    def caller(username: str | None, token: str | None) -> Caller:
        """The caller of a request, from the server's session (never from values the browser sent)."""
        return caller_from(username, token)

    @staticmethod
    def space_mode() -> bool:
        """True on a Space with sign-in, where visitors are strangers (no server paths are shown to them)."""
        return space_mode()

    @staticmethod
    def hub_token(who: Caller) -> str | bool:
        """The token to read the Hub with for this caller: their own, else False (never the Space's HF_TOKEN)."""
        return hub_token(who)

    # --- looking at runs

    def visible(self, who: Caller) -> list[Job]:
        """The runs this caller may see, newest first; runs started with the CLI are listed too."""
        self.queue.adopt_runs()  # one stat when nothing changed
        self.queue.attach_token(who.owner, who.token)  # runs queued before a restart wait for their owner's token
        return [job for job in visible_jobs(self.queue.store, who) if not job.on_a_run]

    def find(self, who: Caller, run_id: object) -> Job:
        """The training run with this id (as a browser sent it), if this caller may see it; else AccessError (an
        evaluation's or an export's id is no run: each is reached through its run, `evals`, `exports`)."""
        job = find_job(self.queue.store, who, run_id)
        if job.on_a_run:
            raise AccessError(NO_SUCH_RUN.format(id=job.id))
        return job

    def trained_run(self, who: Caller, run_id: object, what: str) -> Job:
        """The caller's own trained run with an adapter, to be `what` (evaluated, exported): AccessError when it is
        not theirs, ValueError when it has no adapter yet."""
        job = self.find(who, run_id)
        if job.status not in TRAINED or not (Path(job.run_dir) / rf.ADAPTER_DIR / "adapter_config.json").is_file():
            raise ValueError(
                f"run #{job.id} is {job.status}: it can be {what} once it has trained and saved its adapter."
            )
        return job

    def state_label(self, job: Job) -> str:
        """A run's state in a word or two, as the run picker shows it."""
        return "waiting for sign-in" if self.queue.waiting_for_owner(job) else job.status.value

    def waiting_note(self, job: Job) -> str | None:
        """Why a queued run waits: for its owner's sign-in, or its place in the queue; None when it does not."""
        if job.status != RunState.QUEUED:
            return None
        if self.queue.waiting_for_owner(job):
            return f"Queued, {WAITING_FOR_OWNER}."
        return f"Waiting for the GPU: place {self.queue.store.queue_position(job.id)} in the queue."

    def view(self, job: Job) -> RunView:
        """What the run's folder says now (call with a job from `find`, so the owner is checked)."""
        from trainer.trl_export import trl_file_of

        run_dir = Path(job.run_dir)
        return RunView(
            job=job,
            status=rf.read_json(run_dir / rf.STATUS_FILE, {}) or {},
            events=rf.read_events(run_dir),
            samples=rf.read_json(run_dir / rf.SAMPLES_FILE, []) or [],
            has_adapter=(run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors").is_file(),
            has_trl_export=trl_file_of(run_dir) is not None,
        )

    @staticmethod
    def stamp(job: Job) -> list:
        """What a view of the run can only have changed if this changed (its row, its files' sizes and times)."""
        stats = []
        for name in (rf.STATUS_FILE, rf.EVENTS_FILE, rf.LOG_FILE, rf.SAMPLES_FILE):
            try:
                info = (Path(job.run_dir) / name).stat()
                stats.append([info.st_size, info.st_mtime_ns])
            except OSError:
                stats.append(None)
        return [job.status, job.error, job.finished_at, stats]

    adapter_archive = staticmethod(archives.adapter_archive)  # the adapter (.zip), its tracker's files with it
    trl_archive = staticmethod(archives.trl_archive)  # trl_<method>.yaml and trl_data/ (.zip) for stock TRL

    def trained(self, who: Caller) -> list[Job]:
        """The caller's runs that finished training (their adapter is saved), newest first."""
        return [job for job in self.visible(who) if job.status in TRAINED]

    def training_here(self) -> bool:
        """True while a run trains on this machine (its GPU is taken)."""
        return any(job.status == RunState.RUNNING and job.backend == "local" for job in self.queue.store.list())

    def chat_source(self, who: Caller, run_id: str | None, hub_id: str | None = None) -> str:
        """What the chat loads for this caller: one of their own runs (by id; its folder) or a Hub adapter repo,
        never a typed path.

        Raises:
            AccessError: not signed in (on a Space), not the caller's run, or not a Hub repo ID.
        """
        who.require("compare models")
        repo = (hub_id or "").strip()
        if repo:
            if problem := repo_id_problem(repo):
                raise AccessError(problem.replace("hub.repo_id", "adapter repo"))
            if Path(repo).expanduser().exists():
                raise AccessError(
                    f"adapter repo: {repo!r} names a folder on this server; give a Hub repo ID (user/name)."
                )
            return repo
        if not run_id:
            raise AccessError("Pick a finished run, or type an adapter repo ID.")
        return self.find(who, run_id).run_dir

    @staticmethod
    def config_of(job: Job) -> RunConfig:
        """The config the run was started with (call with a job from `find`, so the owner is checked)."""
        from trainer.config import load_yaml

        return load_yaml(Path(job.run_dir) / rf.CONFIG_FILE)

    def continuable(self, who: Caller, run_id: object) -> Job:
        """The caller's own finished run with a saved adapter (what a new run may continue from).

        Raises:
            AccessError: not signed in, no such run, or another user's run. ValueError: it has not finished training.
        """
        return self.trained_run(who, run_id, "continued")

    def continue_config(self, who: Caller, run_id: object, method: str | None = None) -> RunConfig:
        """The Train form's config to continue a finished run: its own config, its adapter to start from (named by
        id, never by a path), and the name "<its name> (continued)".

        With `method` (e.g. ``dpo`` after an SFT run): the next stage, with that method's data and settings (see
        `stage_config`), named "<its name> (DPO)"; the run's adapter is the new run's start and its reference.

        Raises:
            AccessError: not the caller's run. ValueError: not finished, or an unknown method.
        """
        from trainer.config import load_yaml, stage_config
        from trainer.config.methods import METHODS
        from trainer.config.rules import RUN_NAME_MAX

        if method is not None and method not in METHODS:
            raise ValueError(f"method {method!r}: use one of {', '.join(METHODS)}.")
        job = self.continuable(who, run_id)
        cfg = load_yaml(Path(job.run_dir) / rf.CONFIG_FILE)
        suffix = " (continued)"
        if method is not None and method != cfg.training.method:
            cfg, suffix = stage_config(cfg, method), f" ({method.upper()})"
        cfg.model.adapter_name_or_path = f"run #{job.id}"
        cfg.run.name = (cfg.run.name.strip() or job.name)[: RUN_NAME_MAX - len(suffix)] + suffix
        return cfg

    # --- before a run: what the caller may read and train on

    @staticmethod
    def read_problems(who: Caller, cfg: RunConfig) -> list[str]:
        """What this caller may not read for a preview: a dataset or base model that is not theirs to use here."""
        problem = dataset_problem(who, cfg.data.dataset_name) or model_problem(who, cfg.model.model_name_or_path)
        return [problem] if problem else []

    def save_upload(self, who: Caller, path: str | None) -> tuple[str | None, str]:
        """Keep an uploaded dataset file in the caller's own upload folder, in a folder with a random name, under
        its own name made safe (letters, digits, ``_.-``): messages about it then name the user's file.

        Returns:
            (its path or None, an error message or '').
        """
        from trainer.data import SUPPORTED_SUFFIXES

        if not path:
            return None, ""
        limits = self.limits
        name, suffix = Path(path).name, Path(path).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            return None, (
                f"### Dataset problem\n**{name}**: {suffix or 'no suffix'} files are not supported. "
                f"Upload a {', '.join(SUPPORTED_SUFFIXES)} file."
            )
        size_mb = Path(path).stat().st_size / 2**20
        if limits.upload_mb is not None and size_mb > limits.upload_mb:
            too_big = f"**{name}** is {size_mb:.0f} MB; uploads here are up to {limits.upload_mb:g} MB."
            return None, f"### Dataset problem\n{too_big}"
        try:
            folder = upload_dir(who)
        except AccessError as exc:
            return None, f"### {exc}"
        kept_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20 if folder.is_dir() else 0.0
        if limits.uploads_mb is not None and kept_mb + size_mb > limits.uploads_mb:
            return None, (
                f"### Dataset problem\nYour uploads here already take {kept_mb:.0f} MB, and **{name}** would pass the "
                f"{limits.uploads_mb:g} MB a user may keep. Train on a Hub dataset, or on what you uploaded before."
            )
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem).strip("._")[:80] or "upload"  # no path games
        target = folder / secrets.token_hex(8) / f"{safe}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return str(target), ""

    @staticmethod
    def flavors() -> list[Flavor]:
        """The Hugging Face Jobs flavours a run may be sent to, where Jobs are offered (a Space, or
        PHI3_STUDIO_JOB_IMAGE); [] elsewhere. The list is public: read without any token."""
        import logging

        from trainer.runs.remote import HfJobsBackend, job_image

        if job_image() is None:
            return []
        try:
            return HfJobsBackend().flavors(False)
        except Exception as exc:  # noqa: BLE001 - offline, Hub down: the app starts without the choice, and says why
            logging.getLogger(__name__).warning(
                "Hugging Face Jobs are not offered: their hardware could not be listed (%s)", exc
            )
            return []

    @staticmethod
    def where_problem(flavor: str | None, on_gpu: bool, zero_gpu: bool, who: Caller) -> str | None:
        """Why the run cannot go where asked (Jobs without the user's own token; local training on ZeroGPU)."""
        from trainer.runs.remote import JOBS, LOCAL, job_image, where_to_train

        choice = JOBS if flavor else LOCAL
        return where_to_train(choice, on_gpu, zero_gpu, job_image() is not None, who.token is not None)[1] or None

    @staticmethod
    def warm_up() -> None:
        """Load what Start's checks use, so the first Start answers at once (run in a thread as the app starts)."""
        from trainer.preflight import warm_up

        warm_up()

    @staticmethod
    def unavailable_options(on_gpu: bool) -> dict[str, str]:
        """Settings' choices this machine cannot run (GPU-only ones on a CPU), each with why."""
        from trainer.preflight import unavailable_options

        return unavailable_options(on_gpu)

    # --- acting on runs

    def start(
        self,
        who: Caller,
        config: RunConfig,
        flavor: str | None = None,
        on_gpu: bool = False,
        zero_gpu: bool = False,
        tracker_key: str | None = None,
    ) -> Job:
        """Queue a run for the caller, after every check that can be made before any GPU time is spent.

        Args:
            who: the caller (a signed-out visitor on a Space is refused).
            config: the run (its `model.adapter_name_or_path` may be `run #<id>`, resolved here, or a Hub repo).
            flavor: a Hugging Face Jobs flavour to run on, at the caller's expense; None: this machine.
            on_gpu: this machine trains on a CUDA GPU.
            zero_gpu: this is a ZeroGPU Space (nothing trains in the background here).
            tracker_key: the caller's key for `run.report_to` (W&B, MLflow), held in memory until the worker starts.

        Raises:
            AccessError: not signed in. RefusedRun: the problems, each naming its setting. ValueError: the caller's
                limit of runs queued or training is reached.
        """
        who.require("train")
        if problems := self.problems_before_queueing(who, config, flavor, on_gpu, zero_gpu, tracker_key):
            raise RefusedRun(problems)
        tracker_env = tracker_environment(who, config.run.report_to, tracker_key)
        return self.queue.submit(config, owner=who.owner, token=who.token, flavor=flavor, secrets=tracker_env)

    def problems_before_queueing(
        self, who: Caller, config: RunConfig, flavor=None, on_gpu=False, zero_gpu=False, tracker_key=None
    ) -> list[str]:
        """Every problem of a run knowable before it is queued (`start`'s arguments): its values, what the caller
        may use, where it runs, then the machine, the push rights and the data."""
        from trainer.preflight import check_before_queueing

        problems = config.problems()
        for check in (
            lambda: dataset_problem(who, config.data.dataset_name),
            lambda: model_problem(who, config.model.model_name_or_path),
            lambda: hub_kernels_problem(config.model.hub_kernels),
            lambda: reward_module_problem(who, config.grpo.reward_module),
            lambda: self.resolve_parent(who, config),
            lambda: self.where_problem(flavor, on_gpu, zero_gpu, who),
            lambda: flavor and Path(config.model.adapter_name_or_path or "\0").exists() and JOBS_ADAPTER,
            lambda: flavor and config.grpo.reward_module.strip() and JOBS_REWARD_MODULE,
            lambda: flavor and (tracker_key or "").strip() and JOBS_TRACKER_KEY,
            lambda: self.space_mode() and trackio_space_problem(who, config.run.trackio_space_id),
        ):
            if problems:
                break
            if problem := check():
                problems = [problem]
        if not problems:  # a Hugging Face Job trains on a GPU whatever this machine has
            problems = check_before_queueing(config, on_gpu or flavor is not None, hub_token(who))
        return problems

    def resolve_parent(self, who: Caller, cfg: RunConfig) -> str | None:
        """Make `model.adapter_name_or_path` something the server may load for this caller (in place).

        `run #<id>` (what Continue training fills in) becomes that run's folder, if it is the caller's own finished
        run. On a Space anything else must be a Hub adapter repo, never a path on the server; the person at the
        machine (local mode) may also name a folder. Returns the problem, or None.
        """
        value = (cfg.model.adapter_name_or_path or "").strip()
        if not value:
            return None
        try:
            if match := RUN_REF.fullmatch(value):
                cfg.model.adapter_name_or_path = self.continuable(who, match[1]).run_dir
            elif not who.local:
                cfg.model.adapter_name_or_path = self.chat_source(who, None, value)
        except (AccessError, ValueError) as exc:
            return f"model.adapter_name_or_path: {exc}"
        return None

    def cancel(self, who: Caller, run_id: object) -> Job:
        """Cancel the caller's queued run, or stop their running one cleanly (it saves a checkpoint)."""
        return self.queue.cancel(self.find(who, run_id).id)

    def resume(self, who: Caller, run_id: object) -> Job:
        """Queue the caller's stopped run again; it continues from its checkpoint, with the caller's token."""
        return self.queue.resume(self.find(who, run_id).id, who.token)

    def delete(self, who: Caller, run_id: object) -> None:
        """Delete the caller's finished run and its folder (its evaluation and exports with it, unless one is under
        way)."""
        from trainer.runs.evaluations import forget

        job = self.find(who, run_id)
        if not job.finished:
            raise ValueError(f"job {job.id} is {job.status}; cancel it before deleting it.")
        forget(self.queue.store, job)
        forget(self.queue.store, job, GGUF_DIR)
        self.votes.store.forget(Path(job.run_dir).name)
        self.queue.delete(job.id)

    def retry_push(self, who: Caller, run_id: object) -> Job:
        """Push the caller's trained run again, with the caller's own token (never the Space's)."""
        who.require("push to the Hub")
        return self.queue.retry_push(self.find(who, run_id).id, hub_token(who))
