"""Optional per-checkpoint push: each saved checkpoint's adapter lands in checkpoints/<name>/ while training."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow


def test_each_checkpoint_is_pushed_during_training(
    hub_server: HubServer, hub_client: ClientRunner, tmp_path: Path, tiny_model_path
):
    result = hub_client(f"""
        from trainer.config import load_config
        from trainer.training import run

        cfg = load_config(preset="tiny-demo", overrides=[
            "max_steps=4", "save_steps=2", "eval_steps=100", "sample_prompts=0",
            "repo_id=alice/ckpt-pirate", "push_checkpoints=true"])
        events = []
        run(cfg, on_event=events.append, run_dir={str(tmp_path / "run")!r}, token={ALICE_TOKEN!r})
        emit(messages=[e["message"] for e in events if "message" in e])
    """)
    files = set(hub_server.files("alice/ckpt-pirate"))
    for step in (2, 4):
        assert {
            f"checkpoints/checkpoint-{step}/adapter_model.safetensors",
            f"checkpoints/checkpoint-{step}/adapter_config.json",
        } <= files
    assert "pushed checkpoint-2 to alice/ckpt-pirate" in result["messages"]
    assert not any(ALICE_TOKEN in m for m in result["messages"])
