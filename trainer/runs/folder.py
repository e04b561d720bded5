"""The run folder: where a run's files live, how they are written, and what a run folder says about itself.

`<data dir>/runs/<run id>/` holds `config.yaml`, `events.jsonl`, `log.txt`, `checkpoints/`, `adapter/`,
`samples.json`, `versions.json` and `status.json`. The data dir is `$PHI3_STUDIO_DATA_DIR` when set, else `/data`
when it exists and is writable (Space persistent storage), else `studio-data/` in the repository (git-ignored): the
job table, uploads and runs all live under it, never loose in the checkout. Every JSON/YAML file is written
atomically (temp file, then rename), so a reader polling the folder never sees half a file.

This is the contract between the pieces (the worker writes, the web app, the Hub push and the chat read), so it sits
on the lowest floor: it imports nothing from `trainer` but `trainer.paths`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.paths import PROJECT_ROOT
from trainer.runs.state import RunState

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "PHI3_STUDIO_DATA_DIR"

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
STATUS_FILE = "status.json"
SAMPLES_FILE = "samples.json"
VERSIONS_FILE = "versions.json"
EXIT_FILE = "exit.json"  # the worker's exit code, written as it ends (read back after a server restart)
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_GLOB = "checkpoint-*"  # the Trainer's checkpoint folders inside CHECKPOINTS_DIR
ADAPTER_DIR = "adapter"
GGUF_DIR = "gguf"  # GGUF exports (trainer.gguf): the .gguf files, their Modelfiles, the export job's status.json
EVAL_DIR = "eval"  # the run's last evaluation (trainer.evaluation): a folder a queued evaluation runs in, as a run's
REQUEST_FILE = "request.json"  # in EVAL_DIR or GGUF_DIR: what the queued job on the run was asked to do
EVAL_RESULTS_FILE = "results.json"  # in EVAL_DIR: every prompt, both answers, per-row scores
EVAL_SUMMARY_FILE = "summary.json"  # in EVAL_DIR: the corpus figures per side (the card's Evaluation section)
EVAL_CHART_FILE = "chart.png"  # in EVAL_DIR: base vs tuned bars
EVAL_JUDGE_FILE = "judge.json"  # in EVAL_DIR: the judge model's verdicts on the evaluation's pairs, and its tally
EVAL_BENCHMARKS_FILE = "benchmarks.json"  # in EVAL_DIR: lm-eval's results on the base and the tuned model
EVAL_VOTES_FILE = "votes.json"  # in EVAL_DIR: the blind votes' tally, counts only (trainer.runs.voting)


BUILD_PHASE = "building the demo model (first time only)"
"""The phase of a run that builds the tiny model (`trainer.tools.tiny`): it has a bar of its own, by warm-up steps."""

PHASES = {
    "starting": 2,
    BUILD_PHASE: 0,
    "preparing data": 4,
    "loading the model": 10,
    "evaluating before": 5,
    "training": 70,
    "evaluating after": 5,
    "saving": 2,
    "pushing": 2,
}
"""A running run's phases in order (status.json `phase`), each with its rough share of the run in percent: the
progress bar moves through them, and through the training share step by step. 'pushing' is read from `push_state`."""
EVAL_PHASES = {
    "starting": 2,
    "reading the prompts": 8,
    "loading the models": 10,
    "answering": 80,
    "judging": 80,
    "benchmarking": 80,
}
"""A running evaluation's phases (its own status.json in the run's `eval/`), answering counted by prompts done."""
EXPORT_PHASES = {"starting": 2, "fetching llama.cpp's tools": 8, "merging": 30, "converting": 40, "quantizing": 20}
"""A running GGUF export's phases (its own status.json in the run's `gguf/`)."""


class RunFolderError(ValueError):
    """A folder is not (or not yet) the run folder the caller needs; the message names the fix."""


LOCAL_DATA_DIR = PROJECT_ROOT / "studio-data"


def data_dir() -> Path:
    """The folder that holds everything the app writes: runs/, uploads/ and the job table."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    space = Path("/data")
    if space.is_dir() and os.access(space, os.W_OK):
        return space
    return LOCAL_DATA_DIR


def left_in_checkout(root: Path = PROJECT_ROOT) -> list[Path]:
    """Runs and the job table that an older version kept loose in the checkout (before studio-data/ held them)."""
    return [path for path in (root / "runs", root / "jobs.sqlite") if path.exists()]


def run_slug(dataset_name: str) -> str:
    """A run folder's name part from its dataset (its file or repo name, letters, digits, - and _ only)."""
    name = Path(dataset_name).stem or "run"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def new_run_dir(name: str = "run") -> Path:
    """Create and return a fresh, uniquely named run folder under `<data dir>/runs/`."""
    root = data_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (f"{stamp}-{name}" if i == 0 else f"{stamp}-{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")  # pragma: no cover


# --------------------------------------------------------------------------- atomic writes


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write bytes to path via a temp file in the same folder and a rename (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (see `write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def without_server_paths(text: str) -> str:
    """Text shown to a Space's users (a log tail, an error) with this server's folders named, not spelled out: the
    data dir, the app's folder, Python's and the home folder (a traceback's file names included)."""
    import sys

    from trainer.paths import PROJECT_ROOT

    names = {str(data_dir()): "<data dir>", str(PROJECT_ROOT): "<app>", sys.prefix: "<python>", str(Path.home()): "~"}
    for path in sorted(names, key=len, reverse=True):  # the longest first: a folder inside another keeps its name
        if len(path) > 1:
            text = text.replace(path, names[path])
    return text


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file, or return default when it is missing or damaged (a damaged one is logged, never fatal).

    A file of another shape than `default` (a list or a string where an object is expected) is damaged too.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("%s is damaged (%s); reading it as empty", path, exc)
        return default
    if default is not None and not isinstance(value, type(default)):
        logger.warning(
            "%s holds a JSON %s, not a %s; reading it as empty", path, type(value).__name__, type(default).__name__
        )
        return default
    return value


# --------------------------------------------------------------------------- events and status


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line to events.jsonl (one write call, so lines never interleave)."""
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, ensure_ascii=False) + "\n")


def write_events(run_dir: Path, events: list[dict[str, Any]]) -> None:
    """Replace events.jsonl with `events` (a Hugging Face Job's, mirrored from its log), in one atomic write."""
    write_text_atomic(run_dir / EVENTS_FILE, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))


def write_exit(run_dir: Path, code: int | None) -> None:
    """Record how a worker ended (its exit code; None: clear an earlier attempt's record before a new one)."""
    if code is None:
        (run_dir / EXIT_FILE).unlink(missing_ok=True)
    else:
        write_json_atomic(run_dir / EXIT_FILE, {"code": code, "time": time.time()})


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All complete events of a run: JSON objects, one a line (a half-written last line, or a line that holds no
    object, is skipped)."""
    try:
        lines = (Path(run_dir) / EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def truncate_events(run_dir: Path, last_step: int) -> None:
    """Keep only events up to last_step (used when resuming from a checkpoint at that step)."""
    kept = [e for e in read_events(run_dir) if e.get("step", 0) <= last_step]
    write_text_atomic(run_dir / EVENTS_FILE, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))


def write_status(run_dir: Path, state: RunState | None, **fields: Any) -> None:
    """Record the run's state (None: keep the one recorded) and `fields`, with a timestamp, in status.json.

    The one writer of status.json: every state change, phase and push record goes through here.
    """
    status = read_json(run_dir / STATUS_FILE, {}) or {}
    status.update(fields, updated_at=time.time())
    if state is not None:
        status["state"] = RunState(state).value
    write_json_atomic(run_dir / STATUS_FILE, status)


def set_phase(run_dir: Path, phase: str) -> None:
    """Record what a running run is doing now (one of PHASES), so a reader can tell it is alive and where it is."""
    if phase not in PHASES and phase not in EVAL_PHASES and phase not in EXPORT_PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    logger.info("phase: %s", phase)
    write_status(run_dir, RunState.RUNNING, phase=phase, phase_at=time.time(), phase_steps=None)


def set_phase_steps(run_dir: Path, done: int, total: int) -> None:
    """Record how far the current phase is, when it counts steps of its own (the demo model's build, the prompts an
    evaluation has answered)."""
    write_status(run_dir, RunState.RUNNING, phase_steps=[done, total])


def progress(phase: str | None, step: int = 0, total: int = 0) -> float:
    """How far a run is, 0..1: the phases before this one, plus the training share by steps (pure)."""
    names = list(PHASES)
    if phase not in PHASES:
        return 0.0
    done = sum(PHASES[name] for name in names[: names.index(phase)])
    if phase == "training" and total:
        done += PHASES["training"] * min(step, total) / total
    return done / sum(PHASES.values())


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run folder holds at least one Trainer checkpoint (so the run can be resumed)."""
    return any((Path(run_dir) / CHECKPOINTS_DIR).glob(CHECKPOINT_GLOB))


# --------------------------------------------------------------------------- what a run folder says


@dataclass
class RunRecord:
    """What a run folder says about itself (the inputs of the model card, the Runs tab, the chat)."""

    config: dict[str, Any]
    config_text: str
    status: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def read_run(run_dir: Path) -> RunRecord:
    """Read the run folder's config.yaml, status.json, samples.json, versions.json and events.jsonl.

    Raises:
        RunFolderError: config.yaml is missing (not a run folder).
    """
    import yaml

    run_dir = Path(run_dir)
    try:
        config_text = (run_dir / CONFIG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFolderError(
            f"run folder: {run_dir} has no {CONFIG_FILE}. Point to a run folder under runs/."
        ) from None
    return RunRecord(
        config=yaml.safe_load(config_text) or {},
        config_text=config_text,
        status=read_json(run_dir / STATUS_FILE, {}) or {},
        samples=read_json(run_dir / SAMPLES_FILE, []) or [],
        versions=read_json(run_dir / VERSIONS_FILE, {}) or {},
        events=read_events(run_dir),
    )


def loss_drop(before: float | None, after: float | None) -> float | None:
    """Relative eval-loss reduction (0.3 = 30 % lower), or None when either is missing."""
    if before is None or after is None or not math.isfinite(before) or before == 0:
        return None
    return (before - after) / before


def loss_change(drop: float) -> str:
    """A `loss_drop` in words: "30.0 % lower", or "5.0 % higher" when the loss rose."""
    return f"{abs(100 * drop):.1f} % {'lower' if drop >= 0 else 'higher'}"
