"""What only a CUDA GPU can show: bf16 LoRA and 4-bit QLoRA training, and the side-by-side chat on the device.

Run on a GPU machine with `python -m pytest -m gpu tests/gpu`; the default run deselects them (pyproject addopts),
so a machine without a GPU neither runs nor counts them. Each fails, never skips, when no GPU is there.
"""

from __future__ import annotations

import pytest

from trainer.config import load_config
from trainer.runs import folder as rf

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


def test_flash_attention_asked_for_without_flash_attn_trains_on_sdpa(cuda, tiny_model_path, tmp_path):
    """The GPU machine has no flash-attn: asking for it must fall back to SDPA and still train (never crash)."""
    from transformers.utils import is_flash_attn_2_available

    from trainer.modeling import load_base_model
    from trainer.training import run

    cfg = load_config(preset="tiny-demo", overrides=[*STEPS, "dtype=auto", "attn_implementation=flash_attention_2"])
    model = load_base_model(cfg.model, for_training=True)
    expected = "flash_attention_2" if is_flash_attn_2_available() else "sdpa"
    assert model.config._attn_implementation == expected
    assert next(model.parameters()).device.type == "cuda" and next(model.parameters()).dtype == cuda.bfloat16
    del model
    result = run(cfg, run_dir=tmp_path)
    assert result.eval_loss_after < result.eval_loss_before


MID_SIZE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16)
"""A Phi-3 shape big enough that activations, not fixed costs, decide the peak (about 0.3 B parameters)."""


@pytest.mark.parametrize("length", [1024])
def test_the_gradient_checkpointing_estimate_matches_cuda_peaks(cuda, length):
    """bf16 LoRA on a mid-size random Phi-3 on CUDA, with and without gradient checkpointing: the estimate's
    training peak (trainer.estimate, CUDA overhead left out) is within 20 % of torch.cuda.max_memory_allocated for
    each, and the memory checkpointing saves is within 25 % of the estimate's saving."""
    from peft import get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from trainer.config import preset_config
    from trainer.estimate import ModelShape, estimate_memory, with_changes
    from trainer.modeling import lora_config
    from trainer.phi3 import PHI3_MINI_CONFIG

    config = Phi3Config(**{**PHI3_MINI_CONFIG, **MID_SIZE})
    shape = ModelShape.from_config(config)
    measured, estimated = {}, {}
    for checkpointing in (False, True):
        cfg = with_changes(
            preset_config("lora"),
            {
                "training.per_device_train_batch_size": 2,
                "training.max_length": length,
                "training.gradient_checkpointing": checkpointing,
                "training.padding_free": False,
                "training.packing": False,
            },
        )
        cuda.manual_seed(0)
        with cuda.device("cuda"):
            model = Phi3ForCausalLM(config).to(cuda.bfloat16)
        model.config.use_cache = False
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        model = get_peft_model(model, lora_config(cfg.lora))
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model.train()
        optimizer = cuda.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ids = cuda.randint(100, 30000, (2, length), device="cuda")
        cuda.cuda.synchronize()
        cuda.cuda.reset_peak_memory_stats()
        with cuda.autocast("cuda", dtype=cuda.bfloat16):
            loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        loss.backward()
        optimizer.step()
        cuda.cuda.synchronize()
        measured[checkpointing] = cuda.cuda.max_memory_allocated()
        estimated[checkpointing] = estimate_memory(cfg, shape, "cuda", [length, length]).training
        print(
            f"checkpointing {checkpointing}: measured {measured[checkpointing] / 2**30:.2f} GiB, "
            f"estimated {estimated[checkpointing] / 2**30:.2f} GiB"
        )
        assert cuda.isfinite(loss)
        del model, optimizer, loss
        cuda.cuda.empty_cache()
    for checkpointing in (False, True):
        assert abs(estimated[checkpointing] - measured[checkpointing]) <= 0.20 * measured[checkpointing]
    saved, predicted = measured[False] - measured[True], estimated[False] - estimated[True]
    assert saved > 0 and abs(predicted - saved) <= 0.25 * saved


def test_the_fsdp_config_trains_and_saves_a_whole_adapter(cuda, tiny_model_path, tmp_path):
    """`accelerate launch` with examples/accelerate/fsdp.yaml on one GPU: the model is FSDP-wrapped (on a CPU
    accelerate runs DDP instead), the held-out prompts are left to Compare, the adapter is gathered whole."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from trainer.paths import PROJECT_ROOT

    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    argv += ["--num_processes", "1", "-m", "trainer", "train", "--preset", "tiny-demo", "--run-dir", str(run_dir)]
    argv += ["--set", "max_steps=4", "--set", "sample_prompts=1", "--set", "dtype=auto"]
    env = {**os.environ, "PHI3_STUDIO_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "FSDP: the adapter is gathered whole" in (run_dir / rf.LOG_FILE).read_text()
    assert rf.read_json(run_dir / rf.SAMPLES_FILE) == []  # a sharded model would answer only in step with all
    assert any("FSDP: the held-out prompts" in e.get("message", "") for e in rf.read_events(run_dir))
    weights = load_file(run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors")
    lora_a = next(w for name, w in weights.items() if "qkv_proj.lora_A" in name)
    assert lora_a.shape[0] == 16 and lora_a.numel() > 0  # whole (r x hidden), not one process's shard
