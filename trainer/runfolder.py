"""The run folder: where a run's files live and how they are written.

`<data dir>/runs/<run id>/` holds `config.yaml`, `events.jsonl`, `log.txt`, `checkpoints/`, `adapter/`,
`samples.json`, `versions.json` and `status.json`. The data dir is `$PHI3_STUDIO_DATA_DIR` when set, else `/data`
when it exists and is writable (Space persistent storage), else `./runs`' parent beside the app. Every JSON/YAML
file is written atomically (temp file, then rename), so a reader polling the folder never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer.config import PROJECT_ROOT

DATA_DIR_ENV = "PHI3_STUDIO_DATA_DIR"

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
STATUS_FILE = "status.json"
SAMPLES_FILE = "samples.json"
VERSIONS_FILE = "versions.json"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"


def data_dir() -> Path:
    """The folder that holds runs/ (and later the job database)."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    space = Path("/data")
    if space.is_dir() and os.access(space, os.W_OK):
        return space
    return PROJECT_ROOT


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


def write_text_atomic(path: Path, text: str) -> Path:
    """Write text to path via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file, or return default when it is missing."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line to events.jsonl (one write call, so lines never interleave)."""
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, ensure_ascii=False) + "\n")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All complete events of a run (a half-written last line is skipped)."""
    try:
        lines = (run_dir / EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def truncate_events(run_dir: Path, last_step: int) -> None:
    """Keep only events up to last_step (used when resuming from a checkpoint at that step)."""
    kept = [e for e in read_events(run_dir) if e.get("step", 0) <= last_step]
    write_text_atomic(run_dir / EVENTS_FILE, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))


def write_status(run_dir: Path, state: str, **fields: Any) -> None:
    """Record the run's state ('running', 'succeeded', 'failed', ...) with a timestamp in status.json."""
    status = read_json(run_dir / STATUS_FILE, {}) or {}
    status.update(fields, state=state, updated_at=time.time())
    write_json_atomic(run_dir / STATUS_FILE, status)
