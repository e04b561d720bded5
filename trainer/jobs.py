"""Background jobs: one worker subprocess per run, a SQLite job table, a one-at-a-time queue, cancel, recovery.

The web server never holds a model: each run is `python -m trainer train --config <run>/config.yaml --run-dir <run>`
in its own process (argv list, never a shell), its stdout/stderr appended to the run's `log.txt`. The worker reports
only through the run folder (`events.jsonl`, `status.json`); the job table records who asked for what and how it
ended. Only one job runs at a time (one GPU); later jobs wait in order. Cancel sends SIGTERM (the worker saves a
checkpoint and exits), then SIGKILL after a grace period. When the server starts, jobs whose worker is gone are
marked failed with a note saying whether they can be resumed from a checkpoint; none stays "running" forever.

A Hugging Face token never reaches the table, the YAML or the run folder: it is held in memory until the worker
starts and then passed in the worker's environment only.

Example:
    >>> from trainer.jobs import JobManager
    >>> manager = JobManager.default()     # the table in <data dir>/jobs.sqlite; recovers stale jobs
    >>> job = manager.submit(config)       # queued, then started when the GPU is free
    >>> manager.cancel(job.id)
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from trainer import runfolder as rf
from trainer.config import RunConfig, save_yaml
from trainer.errors import EXIT_CANCELLED, EXIT_PUSH_FAILED
from trainer.paths import PROJECT_ROOT

logger = logging.getLogger(__name__)

DB_FILE = "jobs.sqlite"
STATES = ("queued", "running", "succeeded", "failed", "cancelled", "push_failed")
FINISHED = ("succeeded", "failed", "cancelled", "push_failed")  # push_failed: trained and saved, not on the Hub
GRACE_S = 30.0


@dataclass
class Job:
    """One row of the job table."""

    id: int
    owner: str | None
    name: str
    status: str
    run_dir: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    resume: bool = False
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def resumable(self) -> bool:
        """A failed or cancelled run with a checkpoint to continue from."""
        return self.status in ("failed", "cancelled") and rf.has_checkpoint(Path(self.run_dir))


_COLUMNS = [f.name for f in fields(Job)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'push_failed')),
    run_dir TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    pid INTEGER,
    exit_code INTEGER,
    error TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0
)
"""


class JobStore:
    """The job table in SQLite (a fresh connection per call, so any thread may use it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.row_factory = sqlite3.Row
        return db

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        if row is None:
            return None
        data = dict(row)
        data["resume"], data["cancel_requested"] = bool(data["resume"]), bool(data["cancel_requested"])
        return Job(**data)

    def create(self, run_dir: Path, name: str, owner: str | None = None) -> Job:
        """Insert a queued job for run_dir."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO jobs (owner, name, status, run_dir, created_at) VALUES (?, ?, 'queued', ?, ?)",
                (owner, name, str(run_dir), time.time()),
            )
            return self.get(cur.lastrowid)

    def get(self, job_id: int) -> Job | None:
        with self._connect() as db:
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, owner: str | None = None) -> list[Job]:
        """Jobs newest first; only owner's when owner is given (signed in), else all (local use)."""
        with self._connect() as db:
            if owner is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY id DESC").fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs WHERE owner = ? ORDER BY id DESC", (owner,)).fetchall()
        return [self._job(r) for r in rows]

    def update(self, job_id: int, **values) -> None:
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job fields: {sorted(unknown)}")
        if "status" in values and values["status"] not in STATES:
            raise ValueError(f"unknown job status {values['status']!r}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))  # noqa: S608 - keys checked

    def delete(self, job_id: int) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to running, unless a job is already running (one at a time)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM jobs WHERE status = 'running'").fetchone():
                    return None
                row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    return None
                db.execute("UPDATE jobs SET status = 'running', started_at = ? WHERE id = ?", (time.time(), row["id"]))
            finally:
                db.execute("COMMIT")
        return self.get(row["id"])

    def queue_position(self, job_id: int) -> int | None:
        """1 for the next job to start, 2 for the one after, ...; None when the job is not queued."""
        with self._connect() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id")]
        return ids.index(job_id) + 1 if job_id in ids else None


class JobManager:
    """Starts workers from the queue, watches them, cancels and recovers them."""

    def __init__(self, store: JobStore, python: str = sys.executable, grace_s: float = GRACE_S):
        self.store = store
        self.python = python
        self.grace_s = grace_s
        self._tokens: dict[int, str] = {}  # in memory only, until the worker starts
        self._lock = threading.RLock()

    @classmethod
    def default(cls) -> JobManager:
        """The manager of the data dir's job table, with stale jobs recovered and the queue started."""
        manager = cls(JobStore(rf.data_dir() / DB_FILE))
        manager.recover()
        return manager

    # --- submitting and scheduling

    def submit(self, config: RunConfig, owner: str | None = None, token: str | None = None) -> Job:
        """Write a new run folder with config.yaml, queue it, and start it if nothing is running."""
        config.validate()
        run_dir = rf.new_run_dir(_slug(config))
        save_yaml(config, run_dir / rf.CONFIG_FILE)
        rf.write_status(run_dir, "queued")
        job = self.store.create(run_dir, name=run_name(config), owner=owner)
        if token:
            self._tokens[job.id] = token
        self.schedule()
        return self.store.get(job.id)

    def resume(self, job_id: int, token: str | None = None) -> Job:
        """Queue a failed or cancelled run again; it continues from its last checkpoint."""
        job = self._require(job_id)
        if not job.resumable:
            raise ValueError(f"job {job_id}: only a failed or cancelled run with a checkpoint can be resumed.")
        self.store.update(
            job_id,
            status="queued",
            resume=True,
            cancel_requested=False,
            error=None,
            exit_code=None,
            finished_at=None,
            pid=None,
        )
        rf.write_status(Path(job.run_dir), "queued")
        if token:
            self._tokens[job_id] = token
        self.schedule()
        return self.store.get(job_id)

    def schedule(self) -> None:
        """Start the next queued job if none is running."""
        with self._lock:
            job = self.store.claim_next()
            if job is not None:
                self._spawn(job)

    def _spawn(self, job: Job) -> None:
        run_dir = Path(job.run_dir)
        argv = [
            self.python,
            "-m",
            "trainer",
            "train",
            "--config",
            str(run_dir / rf.CONFIG_FILE),
            "--run-dir",
            str(run_dir),
        ]
        if job.resume:
            argv.append("--resume")
        env = {
            **os.environ,
            "PHI3_STUDIO_WORKER": "1",
            "PYTHONUNBUFFERED": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "PYTHONWARNINGS": "ignore::FutureWarning",
        }
        env.pop("HF_TOKEN", None)
        if token := self._tokens.pop(job.id, None):
            env["HF_TOKEN"] = token  # the only place the token goes: the worker's environment
        try:
            with open(run_dir / rf.LOG_FILE, "ab") as log:
                # DO NOT use shell=True: argv is a list, the worker gets only the run folder.
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT, start_new_session=True
                )
        except OSError as exc:
            self.store.update(
                job.id, status="failed", error=f"could not start the worker: {exc}", finished_at=time.time()
            )
            return
        self.store.update(job.id, pid=proc.pid)
        logger.info("job %d started: pid %d, %s", job.id, proc.pid, run_dir)
        threading.Thread(target=self._watch_child, args=(job.id, proc), daemon=True).start()

    def _watch_child(self, job_id: int, proc: subprocess.Popen) -> None:
        self._finish(job_id, proc.wait())

    def _watch_pid(self, job_id: int, pid: int, poll_s: float = 2.0) -> None:
        """Watch a worker started by an earlier server process (not our child, so no exit code)."""
        while pid_alive(pid):
            time.sleep(poll_s)
        status = (rf.read_json(Path(self._require(job_id).run_dir) / rf.STATUS_FILE, {}) or {}).get("state")
        self._finish(job_id, 0 if status == "succeeded" else (EXIT_CANCELLED if status == "cancelled" else None))

    def _finish(self, job_id: int, exit_code: int | None) -> None:
        job = self._require(job_id)
        if exit_code == 0:
            status, error = "succeeded", None
        elif job.cancel_requested or exit_code == EXIT_CANCELLED:
            status, error = "cancelled", "cancelled by the user"
        elif exit_code == EXIT_PUSH_FAILED:
            status, error = "push_failed", failure_cause(_tail(Path(job.run_dir) / rf.LOG_FILE), exit_code)
        else:
            status, error = "failed", failure_cause(_tail(Path(job.run_dir) / rf.LOG_FILE), exit_code)
        self.store.update(job_id, status=status, exit_code=exit_code, error=error, finished_at=time.time())
        if status not in ("succeeded", "push_failed"):  # a push failure keeps the run's own state (succeeded)
            rf.write_status(Path(job.run_dir), status, error=error)
        logger.info("job %d %s (exit %s)", job_id, status, exit_code)
        self.schedule()

    # --- cancel, delete, recover

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job, or stop a running one cleanly (SIGTERM, then SIGKILL after the grace period)."""
        with self._lock:
            job = self._require(job_id)
            if job.status == "queued":
                self.store.update(
                    job_id, status="cancelled", error="cancelled before it started", finished_at=time.time()
                )
                rf.write_status(Path(job.run_dir), "cancelled")
                self._tokens.pop(job_id, None)
            elif job.status == "running" and job.pid:
                self.store.update(job_id, cancel_requested=True)
                _signal_group(job.pid, signal.SIGTERM)
                timer = threading.Timer(self.grace_s, self._hard_kill, args=(job_id, job.pid))
                timer.daemon = True  # never keeps the server (or the test run) alive after it is done
                timer.start()
        return self.store.get(job_id)

    def _hard_kill(self, job_id: int, pid: int) -> None:
        job = self.store.get(job_id)
        if job is not None and job.status == "running" and job.pid == pid and pid_alive(pid):
            logger.warning("job %d did not stop within %.0f s; killing it", job_id, self.grace_s)
            _signal_group(pid, signal.SIGKILL)

    def retry_push(self, job_id: int, token: str | None = None) -> Job:
        """Push a trained run again (in this process: the push is network I/O, no model is loaded)."""
        from trainer.config import load_yaml
        from trainer.hub import push_run, resolve_token

        job = self._require(job_id)
        if job.status not in ("push_failed", "succeeded"):
            raise ValueError(f"job {job_id} is {job.status}; only a trained run can be pushed.")
        config = load_yaml(Path(job.run_dir) / rf.CONFIG_FILE)
        push_run(Path(job.run_dir), config.hub.repo_id, resolve_token(token), private=config.hub.private)
        self.store.update(job_id, status="succeeded", error=None)
        return self.store.get(job_id)

    def delete(self, job_id: int) -> None:
        """Delete a finished job and its run folder."""
        job = self._require(job_id)
        if not job.finished:
            raise ValueError(f"job {job_id} is {job.status}; cancel it before deleting it.")
        shutil.rmtree(job.run_dir, ignore_errors=True)
        self.store.delete(job_id)

    def recover(self) -> None:
        """After a server (re)start: fail jobs whose worker is gone, keep watching live ones, restart the queue."""
        for job in self.store.list():
            if job.status != "running":
                continue
            if job.pid and pid_alive(job.pid):
                threading.Thread(target=self._watch_pid, args=(job.id, job.pid), daemon=True).start()
                continue
            note = (
                "The server restarted while this run was training; resume it from its last checkpoint."
                if rf.has_checkpoint(Path(job.run_dir))
                else "The server restarted while this run was training, before its first checkpoint; start it again."
            )
            self.store.update(job.id, status="failed", error=note, finished_at=time.time())
            rf.write_status(Path(job.run_dir), "failed", error=note)
        self.schedule()

    def _require(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise ValueError(f"job {job_id}: no such job.")
        return job


# --------------------------------------------------------------------------- pure helpers


def run_name(config: RunConfig) -> str:
    """A short human name for a run: '<dataset> on <model>'."""
    dataset = Path(config.data.dataset_name).name if config.data.dataset_name else "?"
    return f"{dataset} on {config.model.model_name_or_path.split('/')[-1]}"


def _slug(config: RunConfig) -> str:
    name = Path(config.data.dataset_name).stem or "run"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def failure_cause(log_tail: str, exit_code: int | None) -> str:
    """One line saying why a worker failed, with the fix where one is known."""
    text = log_tail or ""
    if "CUDA out of memory" in text or "OutOfMemoryError" in text:
        return "CUDA out of memory: lower the batch size or max length, turn gradient checkpointing on, or use QLoRA."
    for line in reversed(text.splitlines()):
        if line.startswith("error: "):  # the CLI's message for bad config or data
            return line[len("error: ") :].strip()
    if exit_code in (-signal.SIGKILL, 137):
        return "the worker was killed (out of memory, or it did not stop after Cancel)."
    if "Traceback" in text:
        for line in reversed(text.splitlines()):
            if line.strip() and not line.startswith((" ", "\t")):
                return line.strip()
    return f"the worker exited with code {exit_code}; see the log."


def _tail(path: Path, max_bytes: int = 20_000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(run_dir: Path, lines: int = 40) -> str:
    """The last lines of a run's log.txt."""
    return "\n".join(_tail(Path(run_dir) / rf.LOG_FILE).splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
