"""SFT, then DPO (the Runs tab's Continue with DPO) on the tiny Phi-3 (CPU): the parent adapter is the start and the
reference, through Cancel and Resume; and DPO under `accelerate launch` in two processes."""

from __future__ import annotations

import math

import pytest

from trainer.runs import folder as rf
from trainer.training import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def continued(demo, tmp_path_factory):
    """DPO continued from the tiny SFT demo's adapter, as the Runs tab's Continue with DPO fills it, 4 steps (a
    checkpoint at step 2): (config, RunResult, events, run folder)."""
    from trainer.config import load_yaml, stage_config

    sft, _ = demo
    cfg = stage_config(load_yaml(sft.run_dir / rf.CONFIG_FILE), "dpo")
    cfg.model.adapter_name_or_path = str(sft.run_dir)
    t = cfg.training
    t.max_steps, t.logging_steps, t.save_steps, t.eval_steps, t.sample_prompts = 4, 1, 2, 100, 0
    events: list[dict] = []
    run_dir = tmp_path_factory.mktemp("continued") / "run"
    return cfg, run(cfg, on_event=events.append, run_dir=run_dir), events, run_dir


def test_continue_with_dpo_from_the_sft_demo_uses_the_parent_adapter_as_its_reference(continued):
    from peft import PeftConfig

    _, result, events, run_dir = continued
    first = next(e for e in events if "loss" in e)
    # the policy starts as the parent adapter; only a reference equal to it (not the bare base) gives log 2 at step 1
    assert first["step"] == 1 and first["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert result.eval_loss_before == pytest.approx(math.log(2), abs=1e-3)
    assert first["logps/chosen"] > -5.0  # the parent's pirate replies are likely (the base gives them about -85)
    status = rf.read_json(run_dir / rf.STATUS_FILE)
    assert status["parent_run"]["name"] == "tiny-phi3: pirate_chat"  # the SFT demo run, by its name
    # the saved adapter is the tuned one alone: TRL's frozen reference copy (adapter/ref/) is not kept
    assert not (result.adapter_dir / "ref").exists()
    assert PeftConfig.from_pretrained(str(result.adapter_dir)).r == 16


def test_a_cancelled_dpo_run_resumes_with_the_same_reference(continued, tmp_path):
    """Cancel at step 2 (a checkpoint), Resume: steps 3 and 4 are the uninterrupted run's (the reference is the
    parent adapter again, the policy the checkpoint's)."""
    from trainer.training import RunCancelled, request_stop

    cfg, _, whole, _ = continued

    def stop_at_step_1(event):
        if event.get("step") == 1 and "loss" in event:
            request_stop()  # what the worker's SIGTERM handler does

    with pytest.raises(RunCancelled, match="cancelled at step 2"):
        run(cfg, on_event=stop_at_step_1, run_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / rf.CHECKPOINTS_DIR).glob("checkpoint-*")) == ["checkpoint-2"]
    result = run(cfg, run_dir=tmp_path, resume=True)
    assert result.global_step == 4
    events = rf.read_events(tmp_path)
    assert [e["step"] for e in events if "loss" in e] == [1, 2, 3, 4]
    status = rf.read_json(tmp_path / rf.STATUS_FILE)
    assert status["preference_before"]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # kept from the start
    for step in (3, 4):
        ours, theirs = (
            next(e for e in run_events if e["step"] == step and "loss" in e) for run_events in (events, whole)
        )
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-3), step
        assert ours["rewards/margins"] == pytest.approx(theirs["rewards/margins"], rel=1e-3, abs=1e-4), step


def test_dpo_under_accelerate_launch_trains_in_two_processes_as_one_run(tiny_model_path, tmp_path):
    """`accelerate launch` with the documented config (two DDP processes over gloo on a CPU): one run folder, each
    step logged once, both processes' memory, the held-out accuracy and margin measured across both."""
    import os
    import subprocess
    import sys

    from trainer.paths import PROJECT_ROOT

    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    argv += ["-m", "trainer", "train", "--preset", "tiny-demo-dpo", "--run-dir", str(tmp_path / "run")]
    argv += ["--set", "max_steps=4", "--set", "logging_steps=1", "--set", "eval_steps=4", "--set", "sample_prompts=0"]
    env = {**os.environ, "PHI3_STUDIO_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    status = rf.read_json(tmp_path / "run" / rf.STATUS_FILE)
    assert status["state"] == "succeeded" and status["world_size"] == 2
    logged = [e for e in rf.read_events(tmp_path / "run") if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2, 3, 4] and all(len(e["mem_each_gb"]) == 2 for e in logged)
    assert status["preference_after"]["rewards/margins"] > status["preference_before"]["rewards/margins"]
    assert (tmp_path / "run" / rf.ADAPTER_DIR / "adapter_model.safetensors").is_file()
