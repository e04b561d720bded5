"""GRPO on several processes: `accelerate launch` with the documented config (two DDP processes over gloo on a CPU,
where accelerate does not shard) makes one run, as SFT and DPO do (tests/integration/test_continue_dpo.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainer.paths import PROJECT_ROOT
from trainer.runs import folder as rf

pytestmark = pytest.mark.slow


def test_grpo_under_accelerate_launch_trains_in_two_processes_as_one_run(tiny_model_path, tmp_path):
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    argv += ["-m", "trainer", "train", "--preset", "tiny-demo-grpo", "--run-dir", str(tmp_path / "run")]
    argv += ["--set", "max_steps=4", "--set", "logging_steps=1", "--set", "sample_prompts=0"]
    env = {**os.environ, "PHI3_STUDIO_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    status = rf.read_json(tmp_path / "run" / rf.STATUS_FILE)
    assert status["state"] == "succeeded" and status["world_size"] == 2
    events = rf.read_events(tmp_path / "run")
    logged = [e for e in events if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2, 3, 4] and all("rewards/words/mean" in e for e in logged)
    assert [e["step"] for e in events if "completions" in e] == [1]  # recorded once, by the main process
    assert status["reward_before"]["prompts"] == status["reward_after"]["prompts"] == 24
    assert (tmp_path / "run" / rf.ADAPTER_DIR / "adapter_model.safetensors").is_file()
