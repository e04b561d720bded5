"""`python -m trainer sweep`: a sweep's runs trained here one after another, each a normal `train` run in its own run
folder (the app's Runs tab adopts them; *Compare runs* picks them by their sweep), then a table with the best marked.

    python -m trainer sweep --preset lora --grid learning_rate=1e-4,2e-4 --grid r=8,16
    python -m trainer sweep --preset tiny-demo --grid learning_rate=1e-3,3e-3,1e-2 --grid r=4,8,16 --sample 4
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from trainer.config import RunConfig, save_yaml
from trainer.paths import PROJECT_ROOT
from trainer.runs import folder as rf
from trainer.runs.state import RunState
from trainer.sweeps import best_run, sweep_id


def add_arguments(parser) -> None:
    """The sweep's own flags (the run's settings come from the same flags as `train`)."""
    parser.add_argument(
        "--grid",
        dest="axes",
        action="append",
        default=[],
        metavar="SETTING=V1,V2",
        help="a setting and its values, e.g. --grid learning_rate=1e-4,2e-4 (repeatable: one run per combination)",
    )
    parser.add_argument("--sample", type=int, help="train only this many of the combinations, drawn at random")
    parser.add_argument(
        "--sample-seed", dest="sample_seed", type=int, default=0, help="the seed of --sample's draw (default: 0)"
    )


def run_sweep(configs: list[RunConfig], name: str, python: str = sys.executable) -> list[Path]:
    """Train each config in a run folder of its own (`python -m trainer train`, one after another), recording the
    sweep's id in each status.json; the run folders, in order (a failed run does not stop the others)."""
    sweep, folders = sweep_id(name, time.time()), []
    for number, cfg in enumerate(configs, 1):
        run_dir = rf.new_run_dir(rf.run_slug(cfg.data.dataset_name))
        save_yaml(cfg, run_dir / rf.CONFIG_FILE)
        rf.write_status(run_dir, RunState.QUEUED, name=cfg.run.name, sweep=sweep)
        print(f"[{number}/{len(configs)}] {cfg.run.name}: {run_dir}", flush=True)
        argv = [python, "-m", "trainer", "train", "--config", str(run_dir / rf.CONFIG_FILE), "--run-dir", str(run_dir)]
        subprocess.run(argv, cwd=PROJECT_ROOT)
        folders.append(run_dir)
    return folders


def summary(folders: list[Path]) -> str:
    """The sweep's runs as a table: name, state, eval loss before → after, and the best marked."""
    rows = {}
    for folder in folders:
        status = rf.read_json(folder / rf.STATUS_FILE, {}) or {}
        rows[str(folder)] = status
    best = best_run(list(rows), rows)
    lines = ["run | state | eval loss | ", "--- | --- | --- | ---"]
    for folder, status in rows.items():
        before, after = status.get("eval_loss_before"), status.get("eval_loss_after")
        loss = " -> ".join(f"{x:.4f}" for x in (before, after) if isinstance(x, (int, float)))
        mark = f"best ({best[1]})" if best and best[0] == folder else ""
        lines.append(f"{status.get('name', Path(folder).name)} | {status.get('state', '?')} | {loss} | {mark}")
    return "\n".join(lines)
