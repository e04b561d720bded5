"""What only a CUDA GPU can show: bf16 LoRA and 4-bit QLoRA training, and the side-by-side chat on the device.

Run on a GPU machine with `python -m pytest -m gpu tests/gpu`; the default run deselects them (pyproject addopts),
so a machine without a GPU neither runs nor counts them. Each fails, never skips, when no GPU is there.
"""

from __future__ import annotations

import pytest

from trainer import runfolder as rf
from trainer.config import load_config

pytestmark = pytest.mark.gpu
STEPS = ["max_steps=20", "eval_steps=20", "save_steps=20", "logging_steps=5", "sample_prompts=1"]


@pytest.fixture(autouse=True)
def cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.fail("the gpu tests need a CUDA GPU: run them with -m gpu on a GPU machine")
    return torch


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_training_on_the_gpu_lowers_the_loss(cuda, tiny_model_path, tmp_path, method):
    from trainer.training import run

    overrides = [*STEPS, "dtype=auto", f"load_in_4bit={method == 'qlora'}"]
    events: list[dict] = []
    result = run(load_config(preset="tiny-demo", overrides=overrides), on_event=events.append, run_dir=tmp_path)
    assert result.eval_loss_after < result.eval_loss_before
    assert any(e.get("gpu_mem_gb") for e in events)  # GPU memory is reported while training
    versions = rf.read_json(tmp_path / rf.VERSIONS_FILE)
    assert versions["device"] == cuda.cuda.get_device_name(0)
    assert rf.read_json(tmp_path / rf.STATUS_FILE)["state"] == "succeeded"


def test_the_side_by_side_chat_on_the_gpu_equals_single_rows(cuda, tiny_model_path, tmp_path):
    from trainer.chat import ChatEngine, GenerationSettings
    from trainer.training import run

    run(load_config(preset="tiny-demo", overrides=[*STEPS, "dtype=auto"]), run_dir=tmp_path)
    engine = ChatEngine.from_run(tmp_path)
    assert engine.model.device.type == "cuda"
    moon = [{"role": "user", "content": "Tell me about the moon."}]
    settings = GenerationSettings(max_new_tokens=24)
    batched = engine.reply_pair(moon, moon, settings)
    engine.mixed_batches = False
    assert engine.reply_pair(moon, moon, settings) == batched  # one batch == two passes on the device too
