"""A 4-bit base (bitsandbytes' CPU backend here): its parameters are counted at their real size, and QLoRA loading
respects `training.gradient_checkpointing` instead of forcing it on."""

from __future__ import annotations

import dataclasses

import pytest

from trainer.config import preset_config

pytestmark = pytest.mark.slow


@pytest.fixture
def cpu_4bit(monkeypatch, tiny_model_path):
    """Let the QLoRA loader run on this CPU: bitsandbytes loads NF4 here; only the GPU placement is redirected."""
    from transformers import AutoModelForCausalLM

    import trainer.modeling as modeling

    real = AutoModelForCausalLM.from_pretrained

    def on_cpu(path, **kwargs):
        kwargs["device_map"] = {"": "cpu"}
        return real(path, **kwargs)

    monkeypatch.setattr(modeling, "environment_problems", lambda cfg: [])
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", on_cpu)
    return dataclasses.replace(preset_config("tiny-demo").model, load_in_4bit=True)


def test_a_4bit_model_counts_as_many_parameters_as_its_full_precision_twin(cpu_4bit):
    from peft import get_peft_model

    from trainer.modeling import load_base_model, lora_config
    from trainer.training import count_parameters

    lora = lora_config(preset_config("tiny-demo").lora)
    quantised = get_peft_model(load_base_model(cpu_4bit, for_training=False), lora)
    assert any(p.__class__.__name__ == "Params4bit" for p in quantised.parameters())  # really 4-bit
    full = get_peft_model(load_base_model(preset_config("tiny-demo").model, for_training=False), lora)
    naive_total = sum(p.numel() for p in quantised.parameters())
    assert count_parameters(quantised) == count_parameters(full)
    assert count_parameters(quantised)[1] > naive_total  # numel() alone counts packed 4-bit weights at half


@pytest.mark.parametrize("checkpointing", [False, True])
def test_qlora_loading_respects_gradient_checkpointing(cpu_4bit, checkpointing):
    from trainer.modeling import checkpointing_on, load_base_model

    model = load_base_model(cpu_4bit, for_training=True, gradient_checkpointing=checkpointing)
    assert getattr(model, "is_loaded_in_4bit", False)
    assert checkpointing_on(model) is checkpointing
