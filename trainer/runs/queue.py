"""Background jobs: one worker subprocess per run, a SQLite job table, a one-at-a-time queue, cancel, recovery.

The web server never holds a model: each run is `python -m trainer train --config <run>/config.yaml --run-dir <run>`
in its own process (argv list, never a shell), its stdout/stderr appended to the run's `log.txt`. The worker reports
only through the run folder (`events.jsonl`, `status.json`); the job table records who asked for what and how it
ended. Only one job runs at a time (one GPU); later jobs wait in order. Cancel sends SIGTERM (the worker saves a
checkpoint and exits), then SIGKILL after a grace period. When the server starts, jobs whose worker is gone are
marked failed with a note saying whether they can be resumed from a checkpoint; none stays "running" forever.

Where a run trains is one choice at `submit`: here, or a Hugging Face Job the user pays for (`trainer.runs.remote`),
followed from its logs into the same run folder, so the job table and the Runs tab treat both alike.

A Hugging Face token never reaches the table, the YAML or the run folder: it is held in memory until the worker
starts and then passed in the worker's environment only.

Example:
    >>> from trainer.runs.queue import RunQueue
    >>> manager = RunQueue.default()     # the table in <data dir>/jobs.sqlite; recovers stale jobs
    >>> job = manager.submit(config)       # queued, then started when the GPU is free
    >>> manager.cancel(job.id)
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from trainer import distributed as dist
from trainer.config import RunConfig, save_yaml
from trainer.errors import EXIT_CANCELLED, EXIT_OK, EXIT_PUSH_FAILED, EXIT_TIME_LIMIT
from trainer.noise import QUIET_ENV
from trainer.paths import PROJECT_ROOT
from trainer.runs import folder as rf
from trainer.runs.processes import (
    TIME_LIMIT_ENV,
    failure_cause,
    pid_alive,
    read_tail,
    recorded_exit,
    recorded_start,
    signal_group,
    term_held,
    time_left,
    training_pids,
    worker_argv,
    worker_environment,
)
from trainer.runs.state import RunState
from trainer.runs.store import TRAIN, Job, JobStore

__all__ = ["Job", "JobStore", "RunQueue"]

logger = logging.getLogger(__name__)

DB_FILE = "jobs.sqlite"
GRACE_S = 30.0
WORKER_WRITES = frozenset({RunState.SUCCEEDED, RunState.PUSH_FAILED, RunState.TIME_LIMIT})
"""The final states a worker records in its run folder itself (every other ending is recorded here)."""
WAITING_FOR_OWNER = "waiting for its owner to sign in (the server restarted and forgot their token)"


class RunQueue:
    """Starts workers from the queue, watches them, cancels and recovers them."""

    def __init__(
        self, store: JobStore, python: str = sys.executable, grace_s: float = GRACE_S, limits=None, gpu_count=None
    ):
        from trainer.runs.access import Limits

        self.store = store
        self.python = python
        self.gpu_count = gpu_count or dist.visible_gpus  # a run set to "all" GPUs gets one process per GPU
        self.grace_s = grace_s
        self.limits = limits or Limits()
        self._tokens: dict[int, str] = {}  # in memory only, until the worker starts
        self._secrets: dict[int, dict[str, str]] = {}  # a tracker's key (trainer.trackers): the same, never stored
        self._lock = threading.RLock()
        self._runs_seen: int | None = None  # the runs folder's mtime when every folder in it was listed
        self._watched: set[int] = set()  # jobs whose worker (not our child) a thread is watching
        self.remote = None  # the Hugging Face Jobs backend (see _jobs)
        self.poll_s = 5.0  # how often a Hugging Face Job is read

    @classmethod
    def default(cls) -> RunQueue:
        """The manager of the data dir's job table, with stale jobs recovered and the queue started.

        Raises:
            OSError: the data dir cannot be written (the message names it).
        """
        from trainer.runs.access import Limits

        folder = rf.data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(
                f"the data dir {folder} is read-only: runs cannot be kept there. Make it writable, "
                f"or point {rf.DATA_DIR_ENV} at a folder that is."
            )
        if folder == rf.LOCAL_DATA_DIR and (old := rf.left_in_checkout()):
            logger.warning(
                "%s from an older version are not in the data dir %s; to see them here: mv %s %s/",
                " and ".join(p.name for p in old),
                folder,
                " ".join(p.name for p in old),
                folder.name,
            )
        manager = cls(JobStore(folder / DB_FILE), limits=Limits.from_env())
        manager.adopt_runs()
        manager.recover()
        return manager

    def adopt_runs(self) -> list[Job]:
        """List the runs in the data dir's runs/ that the table does not know (started with the CLI, say).

        Cheap enough to call on every refresh: it looks inside only when the runs folder changed (or a folder was
        still being made). A live CLI run is listed as running and watched until it ends.
        """
        runs = self.store.path.parent / "runs"
        try:
            stamp = runs.stat().st_mtime_ns
        except OSError:
            return []
        if stamp == self._runs_seen:
            return []
        with self._lock:
            added, later = self.store.adopt_runs(runs, alive=pid_alive)
            self._runs_seen = None if later else stamp
        for job in added:
            logger.info("listed run %s (%s) found in %s", job.name, job.status, runs)
            if job.status == RunState.RUNNING and job.backend == "local":  # a Hugging Face Job has no pid here: its
                self._watch(job)  # follower takes it up when its owner's token comes back (attach_token)
        return added

    def _watch(self, job: Job) -> None:
        """Watch a live worker this process did not start (once per job), until it ends."""
        self._once(job.id, self._watch_pid, job.id, job.pid, recorded_start(Path(job.run_dir), job.pid))

    def _once(self, job_id: int, target, *args) -> None:
        """Run `target(*args)` in a thread unless one already watches this job (it removes the job when done)."""
        with self._lock:
            if job_id in self._watched:
                return
            self._watched.add(job_id)
        threading.Thread(target=target, args=args, daemon=True).start()

    # --- submitting and scheduling

    def submit(
        self,
        config: RunConfig,
        owner: str | None = None,
        token: str | None = None,
        flavor: str | None = None,
        secrets: dict[str, str] | None = None,
        sweep: str | None = None,
    ) -> Job:
        """Write a new run folder with config.yaml, queue it, and start it if nothing is running.

        With a `flavor`, the run goes to Hugging Face Jobs on that hardware instead, at the owner's expense.
        `secrets` (a tracker's key) are held in memory like the token and added to the worker's environment; `sweep`
        (its id) is recorded in status.json.

        The config is validated by the caller (`RunService.start`, the form's and the CLI's one seam), once.

        Raises:
            ValueError: the owner already has as many runs queued or training as the limit allows, or a Hugging
                Face Job was asked for without a signed-in owner and their token.
        """
        if flavor and not (owner and token):
            raise ValueError("Hugging Face Jobs are paid by your account: sign in with Hugging Face to start one.")
        self.check_active_runs(owner)
        run_dir = rf.new_run_dir(rf.run_slug(config.data.dataset_name))
        save_yaml(config, run_dir / rf.CONFIG_FILE)
        name = config.display_name()
        rf.write_status(  # the table can be rebuilt from run folders; the queue reads `gpus` here, not the YAML
            run_dir,
            RunState.QUEUED,
            owner=owner,
            name=name,
            gpus=config.run.gpus,
            **({"sweep": sweep} if sweep else {}),
        )
        if flavor:
            return self._start_remote(config, run_dir, name, owner, token, flavor)
        return self.enqueue(run_dir, name, owner, token, secrets=secrets)

    def enqueue(
        self,
        folder: Path,
        name: str,
        owner: str | None,
        token: str | None,
        kind: str = TRAIN,
        secrets: dict[str, str] | None = None,
    ) -> Job:
        """Queue a job whose folder is ready (its status.json says queued), and start it if nothing is running; the
        owner's token (and `secrets`, environment variables) are held in memory until its worker starts."""
        job = self.store.create(folder, name=name, owner=owner, needs_token=token is not None, kind=kind)
        if token:
            self._tokens[job.id] = token
        if secrets:
            self._secrets[job.id] = dict(secrets)
        self.schedule()
        return self.store.get(job.id)

    # --- Hugging Face Jobs

    def _start_remote(self, config: RunConfig, run_dir: Path, name: str, owner: str, token: str, flavor: str) -> Job:
        """Submit the run as a Hugging Face Job and follow it; a refusal is recorded as the run's failure."""
        from trainer.runs.remote import start_remote

        limit = round(self.limits.run_minutes * 60) if self.limits.run_minutes else 6 * 3600
        job = start_remote(self.store, self._jobs(), config, run_dir, name, owner, token, flavor, limit)
        if job.status == RunState.RUNNING:
            self._follow(job.id, token)
        return job

    def _jobs(self):
        """The Hugging Face Jobs backend, made on first use (also after a restart, to follow a job again)."""
        from trainer.runs.remote import HfJobsBackend

        self.remote = self.remote or HfJobsBackend()  # tests hand in their own
        return self.remote

    def _follow(self, job_id: int, token: str) -> None:
        """Follow a running Hugging Face Job (once per job) with its owner's token, held in memory only."""
        self._tokens[job_id] = token
        self._once(job_id, self._follow_remote, job_id)

    def _follow_remote(self, job_id: int) -> None:
        from trainer.runs.remote import follow_remote

        try:  # the token is kept only while the job runs (Cancel needs it)
            follow_remote(self.store, self._jobs(), job_id, self._tokens[job_id], self.poll_s)
        finally:
            self._watched.discard(job_id)
            self._tokens.pop(job_id, None)

    def attach_token(self, owner: str | None, token: str | None) -> None:
        """Give the owner's waiting runs (queued before a restart; their token was lost) the token back, and start;
        follow again their Hugging Face Jobs that ran on while the server restarted."""
        if not owner or not token:
            return
        jobs = self.store.list(owner)  # read once: this runs on every refresh of the Runs tab
        for job in jobs:
            if job.backend != "local" and job.status == RunState.RUNNING:
                self._follow(job.id, token)
        waiting = [j.id for j in jobs if self.waiting_for_owner(j)]
        if waiting:
            self._tokens.update(dict.fromkeys(waiting, token))
            self.schedule()

    def waiting_for_owner(self, job: Job) -> bool:
        """A queued run that needs its owner's token, which this server does not hold (it restarted)."""
        return job.status == RunState.QUEUED and job.needs_token and job.id not in self._tokens

    def check_active_runs(self, owner: str | None, more: int = 1) -> None:
        """Raise ValueError when `more` runs (a sweep's, or one) would take the owner past the limit of runs queued or
        training."""
        if owner is not None and (problem := self.limits.room_problem(self.store.count_active(owner), more)):
            raise ValueError(problem)

    def _time_left(self, job: Job, resumed: bool) -> float | None:
        """Seconds the run may still train under the time limit (None: no limit); see `workers.time_left`."""
        limit = self.limits.run_minutes
        return time_left(Path(job.run_dir), limit * 60, resumed) if limit else None

    def resume(self, job_id: int, token: str | None = None) -> Job:
        """Queue a stopped run again (failed, cancelled, interrupted, time limit); it continues from its checkpoint.

        It counts against the owner's active-run limit, and its time limit runs from its first start.
        """
        job = self._require(job_id)
        if not job.resumable:
            raise ValueError(f"job {job_id}: only a stopped run with a checkpoint can be resumed.")
        self.check_active_runs(job.owner)
        if (left := self._time_left(job, resumed=True)) is not None and left <= 0:
            raise ValueError(
                f"run #{job_id} has had the {self.limits.run_minutes:g} minutes a run may train here since it first "
                "started; start a new run from its adapter (Continue training) instead."
            )
        self.store.update(
            job_id,
            status=RunState.QUEUED,
            resume=True,
            cancel_requested=False,
            error=None,
            exit_code=None,
            finished_at=None,
            pid=None,
        )
        rf.write_status(Path(job.run_dir), RunState.QUEUED)
        if token:
            self._tokens[job_id] = token
        self.schedule()
        return self.store.get(job_id)

    def schedule(self) -> None:
        """Start the next queued job if none is running (one that needs a token only when it is at hand)."""
        with self._lock:
            job = self.store.claim_next(with_token=frozenset(self._tokens))
            if job is not None:
                self._spawn(job)

    def _spawn(self, job: Job) -> None:
        run_dir = Path(job.run_dir)
        processes = 1 if job.on_a_run else self._processes(run_dir, job.resume)
        argv = worker_argv(self.python, run_dir, job.resume, processes, job.kind)
        rf.write_exit(run_dir, None)  # an earlier attempt's ending is not this one's
        rf.set_phase(run_dir, "starting")
        env = {
            **worker_environment(os.environ),  # no secret of the server's: the owner's token alone is added below
            "PHI3_STUDIO_WORKER": "1",
            "PYTHONUNBUFFERED": "1",
            **QUIET_ENV,  # no datasets progress bars in the log
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also transformers' weight loading: a log, not a terminal
        }
        if processes > 1:  # torchrun would set 1 thread per process and say so in the log
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
        env.pop(TIME_LIMIT_ENV, None)
        if (left := self._time_left(job, job.resume)) is not None:
            env[TIME_LIMIT_ENV] = str(max(1, round(left)))  # from the run's first start, resumes included
        if token := self._tokens.pop(job.id, None):
            env["HF_TOKEN"] = token  # the only place the token goes: the worker's environment
        env.update(self._secrets.pop(job.id, {}))  # a tracker's key: likewise
        try:
            # DO NOT use shell=True: argv is a list. A Cancel during the start waits for the worker's handler.
            with open(run_dir / rf.LOG_FILE, "ab") as log, term_held():
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT, start_new_session=True
                )
        except OSError as exc:
            error = f"could not start the worker: {exc}"
            self.store.update(job.id, status=RunState.FAILED, error=error, finished_at=time.time())
            rf.write_status(run_dir, RunState.FAILED, error=error)
            return
        self.store.update(job.id, pid=proc.pid)
        logger.info("job %d started: pid %d, %d process(es), %s", job.id, proc.pid, processes, run_dir)
        threading.Thread(target=self._watch_child, args=(job.id, proc, processes), daemon=True).start()

    def _processes(self, run_dir: Path, resume: bool = False) -> int:
        """How many training processes the run gets: one per visible GPU when its config asks for all of them; a
        resumed run keeps the count its checkpoint was saved with while the GPUs are there (its batch size, data
        order and random states are per process). Read from status.json, where `submit` recorded the config's
        `run.gpus` (the config.yaml beside it is read only for a folder queued by an older version)."""
        from trainer.config import load_yaml

        status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
        gpus = status.get("gpus")
        if gpus not in ("all", "one"):
            try:
                gpus = load_yaml(run_dir / rf.CONFIG_FILE).run.gpus
            except (OSError, ValueError):  # the worker itself reports a config it cannot read
                return 1
        visible = self.gpu_count()
        before = status.get("world_size")
        if resume and isinstance(before, int) and 1 <= before <= max(visible, 1):
            return before
        return dist.worker_processes(gpus, visible)

    def _watch_child(self, job_id: int, proc: subprocess.Popen, processes: int = 1) -> None:
        code = proc.wait()
        if processes > 1:  # torchrun exits 1 whenever a child did not exit 0: the main process's own code counts
            job = self.store.get(job_id)
            recorded = recorded_exit(Path(job.run_dir)) if job else None
            code = code if recorded is None else recorded
        self._finish(job_id, code)

    def _watch_pid(self, job_id: int, pid: int, start: int | None = None, poll_s: float = 0.5) -> None:
        """Watch a worker started by an earlier server process or the CLI (not our child, so no exit code)."""
        while pid_alive(pid, start):
            time.sleep(poll_s)
        self._watched.discard(job_id)
        job = self.store.get(job_id)
        if job is not None:
            self._finish(job_id, recorded_exit(Path(job.run_dir)))

    def _finish(self, job_id: int, exit_code: int | None) -> None:
        job = self.store.get(job_id)
        if job is None:  # its row is gone (the table was replaced under a live worker): nothing to record
            logger.warning("job %d ended (exit %s) but is no longer in the job table", job_id, exit_code)
            return
        if exit_code == EXIT_OK:
            status, error = RunState.SUCCEEDED, None
        elif exit_code == EXIT_TIME_LIMIT:
            status, error = RunState.TIME_LIMIT, "stopped at the training time limit of this Space; resume to continue"
        elif job.cancel_requested or exit_code == EXIT_CANCELLED:
            status, error = RunState.CANCELLED, "cancelled by the user"
        elif exit_code == EXIT_PUSH_FAILED:
            status, error = RunState.PUSH_FAILED, failure_cause(read_tail(Path(job.run_dir) / rf.LOG_FILE), exit_code)
        else:
            status, error = RunState.FAILED, failure_cause(read_tail(Path(job.run_dir) / rf.LOG_FILE), exit_code)
        self.store.update(job_id, status=status, exit_code=exit_code, error=error, finished_at=time.time())
        if status not in WORKER_WRITES:  # the worker wrote its own final state
            rf.write_status(Path(job.run_dir), status, error=error)
        logger.info("job %d %s (exit %s)", job_id, status, exit_code)
        self.schedule()

    # --- cancel, delete, recover

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job, or stop a running one cleanly (SIGTERM, then SIGKILL after the grace period)."""
        with self._lock:
            job = self._require(job_id)
            if job.backend != "local" and job.status == RunState.RUNNING:  # a Hugging Face Job: stopped on the Hub
                from trainer.runs.remote import cancel_remote

                return cancel_remote(self.store, self._jobs(), job, self._tokens.get(job.id))
            if job.status == RunState.QUEUED:
                self.store.update(
                    job_id, status=RunState.CANCELLED, error="cancelled before it started", finished_at=time.time()
                )
                rf.write_status(Path(job.run_dir), RunState.CANCELLED)
                self._tokens.pop(job_id, None)
                self._secrets.pop(job_id, None)  # a tracker's key, likewise never kept for a run that will not start
            elif (
                job.status == RunState.RUNNING
                and job.pid
                and pid_alive(job.pid, recorded_start(Path(job.run_dir), job.pid))
            ):
                self.store.update(job_id, cancel_requested=True)  # signalled only when it is still that process
                for pid in training_pids(Path(job.run_dir)) or [job.pid]:  # each training process (see workers)
                    signal_group(pid, signal.SIGTERM)
                timer = threading.Timer(self.grace_s, self._hard_kill, args=(job_id, job.pid))
                timer.daemon = True  # never keeps the server (or the test run) alive after it is done
                timer.start()
        return self.store.get(job_id)

    def _hard_kill(self, job_id: int, pid: int) -> None:
        job = self.store.get(job_id)
        if (
            job is not None
            and job.status == RunState.RUNNING
            and job.pid == pid
            and pid_alive(pid, recorded_start(Path(job.run_dir), job.pid))
        ):
            logger.warning("job %d did not stop within %.0f s; killing it", job_id, self.grace_s)
            for each in training_pids(Path(job.run_dir)):  # torchrun's children live in sessions of their own
                signal_group(each, signal.SIGKILL)
            signal_group(pid, signal.SIGKILL)

    def retry_push(self, job_id: int, token: str | bool | None) -> Job:
        """Push a trained run again with the given token (the caller's own; in this process: network I/O only)."""
        from trainer.config import load_yaml
        from trainer.hub import push_run

        job = self._require(job_id)
        if not job.status.trained:
            raise ValueError(f"job {job_id} is {job.status}; only a trained run can be pushed.")
        config = load_yaml(Path(job.run_dir) / rf.CONFIG_FILE)
        push_run(Path(job.run_dir), config.hub.repo_id, token, private=config.hub.private)
        self.store.update(job_id, status=RunState.SUCCEEDED, error=None)
        return self.store.get(job_id)

    def delete(self, job_id: int) -> None:
        """Delete a finished job and its run folder."""
        job = self._require(job_id)
        if not job.finished:
            raise ValueError(f"job {job_id} is {job.status}; cancel it before deleting it.")
        shutil.rmtree(job.run_dir, ignore_errors=True)
        self.store.delete(job_id)

    def recover(self) -> None:
        """After a server (re)start: settle runs whose worker is gone, keep watching live ones, restart the queue.

        A worker that ended while the server was down left its exit code in the run folder, so its run keeps its true
        outcome; one that left nothing (killed with the machine) is *interrupted*, resumable from a checkpoint. Queued
        runs that need their owner's token (lost with the old process) wait for the owner to come back.
        """
        for job in self.store.list():
            if job.status != RunState.RUNNING or job.backend != "local":  # a Hugging Face Job runs on without us
                continue
            if job.pid and pid_alive(job.pid, recorded_start(Path(job.run_dir), job.pid)):
                self._watch(job)
                continue
            code = recorded_exit(Path(job.run_dir))
            if code is not None:
                self._finish(job.id, code)
                continue
            note = (
                "The server stopped while this run was training; resume it from its last checkpoint."
                if rf.has_checkpoint(Path(job.run_dir))
                else "The server stopped while this run was training, before its first checkpoint; start it again."
            )
            self.store.update(job.id, status=RunState.INTERRUPTED, error=note, finished_at=time.time())
            rf.write_status(Path(job.run_dir), RunState.INTERRUPTED, error=note)
        self.schedule()

    def _require(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise ValueError(f"job {job_id}: no such job.")
        return job
