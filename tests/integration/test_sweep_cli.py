"""`python -m trainer sweep`: every run of the sweep checked first, then trained one after another as normal runs
(each in its own folder, recording its sweep), and a table with the best run marked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.slow


def test_the_cli_trains_each_run_of_the_sweep_and_marks_the_best(tiny_model_path, tmp_path):
    flags = ["--preset", "tiny-demo", "--max-steps", "6", "--eval-steps", "6", "--sample-prompts", "0"]
    grid = ["--grid", "learning_rate=1e-3,1e-2", "--name", "cli sweep"]
    done = run_cli("sweep", *flags, *grid, env={"PHI3_STUDIO_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folders = [Path(p) for p in re.findall(r"^\[\d/2\] .*: (\S+)$", done.stdout, flags=re.M)]
    assert len(folders) == 2 and all(f.parent == tmp_path / "runs" for f in folders)
    status = [json.loads((f / "status.json").read_text()) for f in folders]
    assert [s["name"] for s in status] == ["cli sweep · learning_rate=1e-3", "cli sweep · learning_rate=1e-2"]
    assert status[0]["sweep"] == status[1]["sweep"] and {s["state"] for s in status} == {"succeeded"}
    best = min(status, key=lambda s: s["eval_loss_after"])
    (line,) = [line for line in done.stdout.splitlines() if "best (lowest eval loss)" in line]
    assert line.startswith(best["name"] + " | succeeded")


def test_a_bad_value_stops_the_sweep_before_any_run(tmp_path):
    done = run_cli(
        "sweep", "--preset", "tiny-demo", "--grid", "learning_rate=1e-3,7", env={"PHI3_STUDIO_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode != 0 and "learning_rate=7" in done.stderr and "training.learning_rate" in done.stderr
    assert not (tmp_path / "runs").exists()
