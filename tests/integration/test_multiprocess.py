"""`python -m trainer train` run unchanged by a launcher, as a user types it: `accelerate launch` with the documented
FSDP config (on a machine without CUDA, accelerate runs it as two DDP processes over gloo) and no --run-dir, so the
two processes must agree on one run folder that only the main one writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import runfolder as rf
from trainer.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_cli_under_accelerate_launch_with_the_fsdp_config_makes_one_run(tiny_model_path, tmp_path):
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    argv += ["-m", "trainer", "train", "--preset", "tiny-demo"]
    argv += ["--set", "max_steps=2", "--set", "logging_steps=1", "--set", "sample_prompts=1", "--set", "max_rows=64"]
    env = {**os.environ, "PHI3_STUDIO_DATA_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # without --run-dir each process would have made its own
    run_dir = runs[0]
    assert proc.stdout.count("adapter saved to") == 1 and str(run_dir) in proc.stdout  # printed once, by the main one
    events = rf.read_events(run_dir)
    assert [e["step"] for e in events if "loss" in e] == [1, 2]  # each step once
    status = rf.read_json(run_dir / rf.STATUS_FILE)
    assert status["state"] == "succeeded" and status["world_size"] == 2
    assert len(rf.read_json(run_dir / rf.SAMPLES_FILE)) == 1
    assert (run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors").exists()
    assert not (run_dir / rf.ADAPTER_DIR / "training_args.bin").exists()  # the Trainer's pickle is not an adapter file
    assert "the adapter is the same in all 2 processes" in (run_dir / rf.LOG_FILE).read_text()
    assert Path(run_dir / rf.CONFIG_FILE).read_text().count("max_steps: 2") == 1
