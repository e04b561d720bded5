"""`python -m trainer train` run unchanged by a launcher, as a user types it: `accelerate launch` with the documented
FSDP config (on a machine without CUDA, accelerate runs it as two DDP processes over gloo), no --run-dir, and a push
of each checkpoint to the local Hub: the two processes must agree on one run folder that only the main one writes,
and only the main one pushes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainer.paths import PROJECT_ROOT
from trainer.runs import folder as rf

from .conftest import ALICE_TOKEN, client_env
from .server import HubServer

pytestmark = pytest.mark.slow


def test_the_cli_under_accelerate_launch_with_the_fsdp_config_makes_one_run(
    tiny_model_path, hub_server: HubServer, tmp_path
):
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    argv += ["-m", "trainer", "train", "--preset", "tiny-demo", "--set", "max_steps=2", "--set", "logging_steps=1"]
    argv += ["--set", "sample_prompts=1", "--set", "max_rows=64", "--set", "save_steps=1"]
    argv += ["--set", "repo_id=alice/two-process-pirate", "--set", "push_checkpoints=true"]
    env = client_env(hub_server, tmp_path / "hf-home", {"HF_TOKEN": ALICE_TOKEN, "OMP_NUM_THREADS": "1"})
    env["PHI3_STUDIO_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    runs = list((tmp_path / "data" / "runs").iterdir())
    assert len(runs) == 1  # without --run-dir each process would have made its own
    run_dir = runs[0]
    assert proc.stdout.count("adapter saved to") == 1 and str(run_dir) in proc.stdout  # printed once, by the main one
    events = rf.read_events(run_dir)
    assert [e["step"] for e in events if "loss" in e] == [1, 2]  # each step once
    status = rf.read_json(run_dir / rf.STATUS_FILE)
    assert status["state"] == "succeeded" and status["world_size"] == 2 and status["push_state"] == "pushed"
    assert len(rf.read_json(run_dir / rf.SAMPLES_FILE)) == 1
    assert not (run_dir / rf.ADAPTER_DIR / "training_args.bin").exists()  # the Trainer's pickle is not an adapter file
    assert "the adapter is the same in all 2 processes" in (run_dir / rf.LOG_FILE).read_text()
    titles = [c.title for c in hub_server.repos[("model", "alice/two-process-pirate")].commits]
    for name in ("checkpoint-1", "checkpoint-2"):  # each checkpoint uploaded once: by the main process only
        assert titles.count(f"Upload {name} adapter") == 1, titles
    assert "adapter_model.safetensors" in hub_server.files("alice/two-process-pirate")  # the final push, once
