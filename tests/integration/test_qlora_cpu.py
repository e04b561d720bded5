"""QLoRA on the CPU (bitsandbytes' CPU backend): it trains with correct gradients, resumes, and chats side by side.

The merged export of a QLoRA run is in tests/hub/test_merged.py (it needs the local Hub).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from trainer.config import load_config, preset_config
from trainer.runs import folder as rf

pytestmark = pytest.mark.slow
QLORA = dataclasses.replace(preset_config("tiny-demo").model, load_in_4bit=True)
MOON = [{"role": "user", "content": "Tell me about the moon."}]


def _peft(base):
    """The demo's LoRA on `base`, initialised from seed 0, without dropout (so two models get equal gradients)."""
    from peft import get_peft_model

    from trainer.modeling import lora_config

    torch.manual_seed(0)
    return get_peft_model(base, lora_config(dataclasses.replace(preset_config("tiny-demo").lora, lora_dropout=0.0)))


def _lora_grads(model) -> dict[str, torch.Tensor]:
    """The LoRA gradients of one training step on a fixed batch."""
    ids = torch.randint(100, 30000, (2, 24), generator=torch.Generator().manual_seed(1))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _after_an_eval_pass(model):
    """What training does first: an evaluation in eval mode without gradients."""
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 450, 18786, 338]]))
    return model


def _relative_gap(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    return max(float((got[n] - want[n]).norm() / want[n].norm()) for n in want if want[n].norm() > 0)


def test_an_evaluation_before_training_leaves_the_qlora_gradients_unchanged(tiny_model_path):
    from bitsandbytes.functional import has_avx512bf16
    from transformers import AutoModelForCausalLM

    from trainer.modeling import bnb_config, load_base_model, resolve_model_path

    guarded = _peft(load_base_model(QLORA, for_training=True))
    flags = [m.support_avx512bf16_for_cpu for m in guarded.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    assert len(flags) == 2 * 4 and not any(flags)  # every 4-bit layer of the 2-layer tiny model is guarded
    fresh = _lora_grads(guarded)  # before any evaluation
    guarded.zero_grad(set_to_none=True)
    assert _relative_gap(_lora_grads(_after_an_eval_pass(guarded)), fresh) < 1e-5

    # without the guard, the same steps on this CPU: wrong gradients exactly where the CPU has AVX512-BF16
    from peft import prepare_model_for_kbit_training

    raw = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(QLORA.model_name_or_path), quantization_config=bnb_config(QLORA), device_map={"": "cpu"}
    )
    unguarded = _peft(prepare_model_for_kbit_training(raw, use_gradient_checkpointing=False))
    gap = _relative_gap(_lora_grads(_after_an_eval_pass(unguarded)), fresh)
    assert (gap > 0.05) == has_avx512bf16(), gap


def test_qlora_trains_on_the_cpu_and_saves_a_4bit_adapter(qlora_run_template):
    run_dir, result = qlora_run_template
    assert result.eval_loss_after < result.eval_loss_before
    adapter = json.loads((run_dir / rf.ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and (run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors").exists()
    assert load_config(run_dir / "config.yaml").model.load_in_4bit
    assert rf.read_json(run_dir / rf.STATUS_FILE)["state"] == "succeeded"


def test_the_side_by_side_chat_runs_a_qlora_adapter_on_its_4bit_base(qlora_run_template):
    from trainer.chat import ChatEngine, GenerationSettings

    engine = ChatEngine.from_run(qlora_run_template[0])
    assert any(p.__class__.__name__ == "Params4bit" for p in engine.base.parameters())
    greedy = GenerationSettings(max_new_tokens=24, greedy=True)
    batched = engine.reply_pair(MOON, MOON, greedy)
    engine.mixed_batches = False
    assert engine.reply_pair(MOON, MOON, greedy) == batched  # one mixed batch == a pass for each side
    assert all(batched)


def test_a_qlora_run_resumes_from_its_checkpoint(tiny_model_path, tmp_path):
    from trainer.training import run

    overrides = ["max_steps=4", "save_steps=2", "logging_steps=1", "eval_steps=100", "sample_prompts=0"]
    cfg = load_config(preset="tiny-demo", overrides=[*overrides, "load_in_4bit=true"])

    def crash_at_step_3(event):
        if event.get("step") == 3 and "loss" in event:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, on_event=crash_at_step_3, run_dir=tmp_path)
    result = run(cfg, run_dir=tmp_path, resume=True)
    assert result.global_step == 4
    events = rf.read_events(tmp_path)
    assert [e["step"] for e in events if "loss" in e] == [1, 2, 3, 4]
    assert any(e.get("message") == "resumed from checkpoint at step 2" for e in events)
    assert (tmp_path / rf.ADAPTER_DIR / "adapter_model.safetensors").exists()
