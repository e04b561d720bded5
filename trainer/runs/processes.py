"""A local run's worker processes: how they are launched, whether they live, how they are stopped, how they ended.

A run trains in one worker process (`python -m trainer train --config <run>/config.yaml --run-dir <run>`), or, on
a machine with several GPUs, under torchrun with one training process per GPU (see trainer.distributed). torchrun
starts each training process in a session of its own, so a Cancel signals the training processes themselves (their
pids, recorded in status.json by the main one) rather than trusting the launcher to pass it on; torchrun then sees
them end and ends too. The exit code that counts is the one the main training process writes to exit.json (torchrun
turns every failure of a child into its own exit code 1).

A worker starts with SIGTERM held (`term_held`) and lets it through once its handler is in place (`on_term`): a
Cancel that lands while the worker is still importing torch is handled like any other, never fatal to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from trainer import distributed as dist
from trainer.errors import EXIT_CANCELLED, EXIT_OK, EXIT_TIME_LIMIT
from trainer.runs import folder as rf
from trainer.runs.state import RunState

_STATE_EXITS = {
    RunState.SUCCEEDED: EXIT_OK, RunState.CANCELLED: EXIT_CANCELLED, RunState.TIME_LIMIT: EXIT_TIME_LIMIT,
    RunState.FAILED: 1,
}  # fmt: skip


TIME_LIMIT_ENV = "PHI3_STUDIO_MAX_RUN_S"
"""A worker's time limit in seconds (set by the queue from Limits.run_minutes; unset: none)."""


def worker_time_limit() -> float | None:
    """The time limit the queue gave this worker (seconds), None when it has none."""
    value = os.environ.get(TIME_LIMIT_ENV)
    return float(value) if value else None


def worker_argv(
    python: str, run_dir: Path, resume: bool = False, processes: int = 1, kind: str = "train"
) -> list[str]:
    """The argv of a job's worker: the CLI's `train` on the run folder, under torchrun when several processes train;
    for an evaluation (`kind` "eval", `run_dir` the run's eval/ folder), `eval` on the run with the request that
    folder holds; for a GGUF export (`kind` "export", its gguf/ folder), `export-gguf` likewise.

    An argv list, never a shell line: the worker gets only the run folder.
    """
    if kind in ("eval", "export"):  # the job's folder is the run's eval/ or gguf/; the command reads its request
        return [python, "-m", "trainer", "eval" if kind == "eval" else "export-gguf", str(run_dir.parent), "--request"]
    argv = [*dist.launch_argv(python, processes), "-m", "trainer", "train"]
    argv += ["--config", str(run_dir / rf.CONFIG_FILE), "--run-dir", str(run_dir)]
    return argv + ["--resume"] if resume else argv


SECRET_NAMES = re.compile(r"^OAUTH_|SECRET|PASSWORD|PASSWD|_TOKEN$|^HUGGING_FACE_HUB_TOKEN$|_API_KEY$|_PRIVATE_KEY$")
"""Environment variables a worker never inherits: the Space's sign-in settings (OAUTH_CLIENT_SECRET signs session
cookies), the Space's own HF_TOKEN and any other secret by its name (the owner's token is added for their run)."""


def worker_environment(server_env: Mapping[str, str]) -> dict[str, str]:
    """The server's environment less every secret (`SECRET_NAMES`): what a run's worker starts from."""
    return {name: value for name, value in server_env.items() if not SECRET_NAMES.search(name)}


def recorded_exit(run_dir: Path) -> int | None:
    """How a worker that is gone ended: the exit code it wrote as it ended, else the final state of its status.json.

    None when it left neither (killed with the machine, say): the run was interrupted.
    """
    record = rf.read_json(run_dir / rf.EXIT_FILE, None)
    if isinstance(record, dict) and isinstance(record.get("code"), int):
        return record["code"]
    return _STATE_EXITS.get((rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}).get("state"))


def time_left(run_dir: Path, limit_s: float, resumed: bool) -> float:
    """Seconds a run may still train under a limit of `limit_s`: from its first start (status.json's started_at,
    which a resume keeps) when it resumes, so that resuming never restarts the clock."""
    import time

    started = (rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}).get("started_at")
    return limit_s - (time.time() - started if resumed and isinstance(started, (int, float)) else 0.0)


def process_start(pid: int) -> float | None:
    """When a process started (psutil's create time, seconds since the epoch), so that a pid recorded in
    status.json is known to still be the same process and not a later one that reused the number.

    None when there is no such process, when it is a zombie, or when `pid` is a thread of another process.
    """
    import psutil

    try:
        if not psutil.pid_exists(pid):  # on Linux, False for another process's thread id too
            return None
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except (psutil.Error, ValueError, OverflowError):  # gone meanwhile, or not a pid at all
        return None


def pid_alive(pid: int, start: float | None = None) -> bool:
    """True when a process with this pid exists, is not a zombie, is a process (not another one's thread) and, when
    `start` is given, is the one that started then (`process_start`), not a later one that reused the pid.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    started = process_start(pid)
    return started is not None and (start is None or started == start)


def recorded_start(run_dir: Path, pid: int) -> int | None:
    """The start time recorded in status.json for `pid`: the worker's, or the launcher's (None: not recorded)."""
    status = rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}
    if status.get("pid") == pid:
        return status.get("pid_start")
    launcher = status.get("launcher") or [None, None]
    return launcher[1] if launcher[0] == pid else None


def training_pids(run_dir: Path) -> list[int]:
    """The run's training processes that are still alive (each checked against its recorded start)."""
    recorded = (rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}).get("worker_pids") or []
    return [pid for pid, start in recorded if pid_alive(pid, start)]


@contextlib.contextmanager
def term_held() -> Iterator[None]:
    """SIGTERM blocked in this thread while a worker is started: the worker inherits the block (a signal mask
    survives fork and exec) and the Cancel waits, pending, until the worker's handler is installed by `on_term`."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def on_term(handler: Callable[[int, object], None]) -> None:
    """A worker's SIGTERM handler, installed; then a Cancel held since the worker started (`term_held`) reaches it."""
    signal.signal(signal.SIGTERM, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def signal_group(pid: int, sig: int) -> None:
    """Signal a worker and its children (its process group; just the process when it leads none, as a CLI run)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


_LAUNCHER_REPORT = re.compile(r"^E\d{4} [^\n]*elastic/multiprocessing/api\.py[^\n]*failed \(exitcode", re.M)
_RANK_PREFIX = re.compile(r"^\[rank\d+\]: ?", re.M)


def worker_output(log_text: str) -> str:
    """A log's text as the training processes wrote it: torchrun's failure report cut off (it follows any child's
    non-zero exit, a clean Cancel's included, and ends in a traceback of torchrun's own) and the `[rankN]: ` prefixes
    it puts on a child's traceback removed. A single worker's log is returned as it is."""
    reports = list(_LAUNCHER_REPORT.finditer(log_text))
    if reports:
        log_text = log_text[: reports[-1].start()]
    return _RANK_PREFIX.sub("", log_text)


def failure_cause(log_tail: str, exit_code: int | None) -> str:
    """One line saying why a worker failed, with the fix where one is known."""
    text = worker_output(log_tail or "")
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


def read_tail(path: Path, max_bytes: int = 20_000) -> str:
    """The last `max_bytes` of a file as text ("" when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(run_dir: Path, lines: int = 40) -> str:
    """The last lines of a run's log.txt."""
    return "\n".join(read_tail(Path(run_dir) / rf.LOG_FILE).splitlines()[-lines:])
