"""The job table: one SQLite row per run (who asked, its folder, its state), safe to open whatever state it is in.

A fresh connection per call, so any thread or process may use it; claiming the next job is one IMMEDIATE
transaction, so two servers never start two jobs. Opening never fails on damaged state: an older table is migrated
in place, and a file that is not a database is moved aside (kept, named in the log) and the table is rebuilt from
the run folders, which record their owner and name in `status.json`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from trainer.runs import folder as rf
from trainer.runs.state import ACTIVE, FINISHED, RESUMABLE, RunState, state_of

logger = logging.getLogger(__name__)

TRAIN, EVAL, EXPORT = "train", "eval", "export"
"""The kinds of job: a training run, an evaluation of a trained run (`trainer.evaluation`), and a GGUF export of one
(`trainer.gguf`)."""
PENDING_S = 120.0
"""A run folder this young without its config or status may still be being made (see JobStore.adopt_runs)."""


@dataclass
class Job:
    """One row of the job table."""

    id: int
    owner: str | None
    name: str
    status: RunState
    run_dir: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    resume: bool = False
    cancel_requested: bool = False
    needs_token: bool = False
    backend: str = "local"  # where it trains: "local" (a worker process here) or "hf-jobs" (a Hugging Face Job)
    kind: str = "train"  # "train"; "eval" or "export": a job on a trained run, whose eval/ or gguf/ is its run_dir

    def __post_init__(self) -> None:
        self.status = RunState(self.status)  # the table's CHECK allows only RunState's values

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def evaluation(self) -> bool:
        """An evaluation job (its folder is the evaluated run's eval/), not a training run."""
        return self.kind == EVAL

    @property
    def on_a_run(self) -> bool:
        """A job on a trained run (an evaluation or an export), not a training run of its own."""
        return self.kind != TRAIN

    @property
    def resumable(self) -> bool:
        """A run that stopped before the end and has a checkpoint to continue from."""
        return self.status in RESUMABLE and rf.has_checkpoint(Path(self.run_dir))


_COLUMNS = [f.name for f in fields(Job)]
_BOOLS = ("resume", "cancel_requested", "needs_token")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s.value) for s in RunState)})),
    run_dir TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    pid INTEGER,
    exit_code INTEGER,
    error TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    needs_token INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL DEFAULT 'local',
    kind TEXT NOT NULL DEFAULT 'train' CHECK (kind IN ('train', 'eval', 'export'))
)
"""


class JobStore:
    """The job table in SQLite."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:  # not a database (truncated, overwritten ...): keep it, start anew
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(f"{aside}{suffix}")
            logger.error(
                "job table %s is damaged (%s); moved it to %s and rebuilt it from the run folders",
                self.path,
                exc,
                aside,
            )
            self._open()
            self.rebuild_from_runs(self.path.parent / "runs")

    def _open(self) -> None:
        with self._connect() as db:
            current = db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()
            if current is not None and any(part not in current["sql"] for part in ("backend", "kind", "'export'")):
                self._migrate(db)
            db.execute(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM jobs").fetchone()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """An older table (fewer states or kinds, no needs_token, backend or kind): copy it into the current shape."""
        old = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
        kept = ", ".join(c for c in _COLUMNS if c in old)
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE jobs RENAME TO jobs_old")
        db.execute(_SCHEMA)
        db.execute(f"INSERT INTO jobs ({kept}) SELECT {kept} FROM jobs_old")  # noqa: S608 - our column names
        db.execute("DROP TABLE jobs_old")
        db.execute("COMMIT")
        logger.info("job table migrated to the current schema")

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
        for name in _BOOLS:
            data[name] = bool(data[name])
        return Job(**data)

    def create(
        self,
        run_dir: Path,
        name: str,
        owner: str | None = None,
        needs_token: bool = False,
        backend: str = "local",
        kind: str = TRAIN,
    ) -> Job:
        """Insert a queued job for run_dir."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO jobs (owner, name, status, run_dir, created_at, needs_token, backend, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (owner, name, RunState.QUEUED.value, str(run_dir), time.time(), int(needs_token), backend, kind),
            )
            return self.get(cur.lastrowid)

    def get(self, job_id: int) -> Job | None:
        with self._connect() as db:
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, owner: str | None = None) -> list[Job]:
        """Jobs newest first; only owner's when owner is given, else all (the caller checks who may see them)."""
        with self._connect() as db:
            if owner is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY id DESC").fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs WHERE owner = ? ORDER BY id DESC", (owner,)).fetchall()
        return [self._job(r) for r in rows]

    def count_active(self, owner: str) -> int:
        """How many of the owner's jobs are queued or running (the per-user limit counts them)."""
        return len([job for job in self.list(owner) if job.status in ACTIVE])

    def update(self, job_id: int, **values) -> None:
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job fields: {sorted(unknown)}")
        if "status" in values:
            if state_of(values["status"]) is None:
                raise ValueError(f"unknown job status {values['status']!r}")
            values["status"] = RunState(values["status"]).value
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))  # noqa: S608 - keys checked

    def delete(self, job_id: int) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def claim_next(self, with_token: set[int] | frozenset[int] = frozenset()) -> Job | None:
        """Atomically move the oldest startable queued job to running, unless one is running (one at a time).

        A job that needs its owner's token is startable only when the token is at hand (its id in `with_token`).
        Only jobs of this machine take part: a Hugging Face Job uses none of its GPU.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute(
                    "SELECT 1 FROM jobs WHERE status = ? AND backend = 'local'", (RunState.RUNNING.value,)
                ).fetchone():
                    return None
                ready = [
                    r["id"]
                    for r in db.execute(
                        "SELECT id, needs_token FROM jobs WHERE status = ? AND backend = 'local' ORDER BY id",
                        (RunState.QUEUED.value,),
                    )
                    if not r["needs_token"] or r["id"] in with_token
                ]
                if not ready:
                    return None
                db.execute(  # a resumed run keeps the time it first started
                    "UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                    (RunState.RUNNING.value, time.time(), ready[0]),
                )
            finally:
                db.execute("COMMIT")
        return self.get(ready[0])

    def queue_position(self, job_id: int) -> int | None:
        """1 for the next job to start, 2 for the one after, ...; None when the job is not queued."""
        with self._connect() as db:
            queued = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY id", (RunState.QUEUED.value,))
            ids = [r["id"] for r in queued]
        return ids.index(job_id) + 1 if job_id in ids else None

    def rebuild_from_runs(self, runs_dir: Path) -> int:
        """Recreate rows for every run folder the table does not know (after it was damaged); returns how many.

        A run that was queued or running when the table was lost is marked interrupted (resumable with a checkpoint).
        """
        return len(self.adopt_runs(runs_dir, adopt_queued=True)[0])

    def adopt_runs(
        self,
        runs_dir: Path,
        alive: Callable[[int, int | None], bool] = lambda pid, start: False,
        adopt_queued: bool = False,
    ) -> tuple[list[Job], int]:
        """Add rows for run folders the table does not know, such as runs started with the CLI.

        A folder's `status.json` says its name, owner, state and (while it trains) its worker's pid and that
        process's start time: a running run whose process is `alive(pid, start)` is listed as running, any other
        unfinished one as interrupted. A folder made in the last PENDING_S seconds without its config or status yet
        (being created) or still queued (a web job between its folder and its row) is left for a later call, unless
        `adopt_queued` (rebuilding a lost table); an older one without them is not a run, and an older queued one was
        interrupted.

        Returns:
            (the jobs added, how many folders were left for later).
        """
        known = {str(Path(job.run_dir).resolve()) for job in self.list()}
        added, later = [], 0
        for run_dir in sorted(p for p in Path(runs_dir).glob("*") if p.is_dir()):
            if str(run_dir.resolve()) in known:
                continue
            status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
            state, pid = state_of(status.get("state")), status.get("pid")
            try:
                fresh = time.time() - run_dir.stat().st_mtime < PENDING_S
            except OSError:  # deleted meanwhile
                continue
            if (
                not (run_dir / rf.CONFIG_FILE).is_file()
                or state is None
                or (state == RunState.QUEUED and not adopt_queued)
            ):
                later += fresh
                if fresh or state != RunState.QUEUED or not (run_dir / rf.CONFIG_FILE).is_file():
                    continue
            remote = isinstance(status.get("hf_job"), dict) and state not in FINISHED  # runs on at the Hub
            running = (
                remote or state == RunState.RUNNING and isinstance(pid, int) and alive(pid, status.get("pid_start"))
            )
            state = RunState.RUNNING if running else state if state in FINISHED else RunState.INTERRUPTED
            job = self.create(
                run_dir,
                name=str(status.get("name") or run_dir.name),
                owner=status.get("owner"),
                **({"backend": "hf-jobs", "needs_token": True} if remote else {}),  # followed when its owner returns
            )
            self.update(
                job.id,
                status=state,
                started_at=status.get("started_at"),
                finished_at=None if running else status.get("finished_at") or status.get("updated_at"),
                error=status.get("error"),
                pid=pid if running and not remote else None,
            )
            added.append(self.get(job.id))
        return added, later
