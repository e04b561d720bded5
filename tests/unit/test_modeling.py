"""Phi-3 specifics: the real chat template and special ids, stop tokens, padding, QLoRA config, attention fallback."""

from __future__ import annotations

import pytest
import torch

from trainer.config import ConfigError, ModelConfig, preset_config
from trainer.modeling import bnb_config, environment_problems, lora_config, pick_attention
from trainer.phi3 import ASSISTANT_ID, END_ID, ENDOFTEXT_ID, SYSTEM_ID, USER_ID, stop_token_ids

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello."},
]


def _ids(tokenizer, messages, **kwargs):
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_rendering_uses_the_real_phi3_template(phi3_tokenizer):
    text = phi3_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert (
        text
        == "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\nHello.<|end|>\n<|endoftext|>"
    )
    ids = _ids(phi3_tokenizer, CHAT)
    assert ids[0] == SYSTEM_ID and ids.count(USER_ID) == 1 and ids.count(ASSISTANT_ID) == 1
    assert ids.count(END_ID) == 3 and ids[-1] == ENDOFTEXT_ID
    assert (SYSTEM_ID, USER_ID, ASSISTANT_ID, END_ID, ENDOFTEXT_ID) == (32006, 32010, 32001, 32007, 32000)
    prompt = _ids(phi3_tokenizer, CHAT[:2], add_generation_prompt=True)
    assert prompt[-1] == ASSISTANT_ID or phi3_tokenizer.decode(prompt[-2:]).startswith("<|assistant|>")


def test_stop_ids_and_pad_token(phi3_tokenizer):
    assert stop_token_ids(phi3_tokenizer) == [END_ID, ENDOFTEXT_ID]
    assert phi3_tokenizer.pad_token == "<|endoftext|>"  # the official tokenizer pads with a stop token ...


def test_load_tokenizer_pads_with_unk_not_a_stop_token(tiny_model_path):
    from trainer.modeling import load_tokenizer

    tokenizer = load_tokenizer(preset_config("tiny-demo").model)  # ... so training pads with <unk>
    assert tokenizer.pad_token == "<unk>" and tokenizer.pad_token_id == 0
    assert tokenizer.pad_token_id not in stop_token_ids(tokenizer)
    with pytest.raises(ConfigError, match="not in the tokenizer's vocabulary"):
        load_tokenizer(ModelConfig(model_name_or_path="tiny-phi3", pad_token="<pad>"))


def test_tiny_model_keeps_the_phi3_embedding_rows(tiny_model_path, phi3_tokenizer):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_path)
    assert config.model_type == "phi3" and config.vocab_size == 32064 and len(phi3_tokenizer) == 32011
    assert (tiny_model_path / "model.safetensors").exists() and (tiny_model_path / "tokenizer.json").exists()


def test_qlora_config_builds_nf4_double_quant_bf16_compute():
    quant = bnb_config(preset_config("cookbook-qlora-notebook").model)
    assert quant.load_in_4bit and not quant.load_in_8bit
    assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16
    assert bnb_config(preset_config("lora").model) is None


def test_qlora_runs_without_a_gpu_and_is_refused_only_without_bitsandbytes(monkeypatch):
    import importlib.util

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert environment_problems(preset_config("qlora").model) == []  # bitsandbytes' CPU backend
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bitsandbytes" else real(name))
    problems = environment_problems(preset_config("qlora").model)
    assert problems == ["model.load_in_4bit: QLoRA needs bitsandbytes. Run `pip install bitsandbytes`."]
    assert environment_problems(preset_config("lora").model) == []


@pytest.mark.parametrize(
    ("cuda", "rank", "expected"), [(False, "1", "cpu"), (True, None, "cuda:0"), (True, "3", "cuda:3")]
)
def test_the_model_goes_to_the_process_own_device(monkeypatch, cuda, rank, expected):
    from trainer.modeling import own_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", rank)
    assert own_device() == expected


def test_lora_config_targets_phi3_fused_projections():
    cfg = lora_config(preset_config("lora").lora)
    assert cfg.task_type == "CAUSAL_LM" and cfg.r == 16 and cfg.lora_dropout == 0.05
    assert set(cfg.target_modules) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    notebook = lora_config(preset_config("cookbook-lora-notebook").lora)
    assert set(notebook.target_modules) == {"o_proj", "down_proj"} and notebook.lora_alpha == 16
    assert lora_config(preset_config("cookbook-sample-finetune").lora).target_modules == "all-linear"


@pytest.mark.parametrize(
    ("requested", "dtype", "gpu", "flash_installed", "expected"),
    [
        ("auto", torch.float32, False, False, None),  # None: transformers' default, sdpa else eager
        ("auto", torch.bfloat16, True, True, "flash_attention_2"),
        ("auto", torch.float32, True, True, None),  # flash-attn needs bf16/fp16
        ("auto", torch.bfloat16, True, False, None),  # not installed
        ("flash_attention_2", torch.bfloat16, False, True, None),  # no GPU
        ("sdpa", torch.bfloat16, True, True, None),  # transformers' sdpa, with its eager fallback
        ("eager", torch.float32, False, False, "eager"),
    ],
)
def test_pick_attention(requested, dtype, gpu, flash_installed, expected, monkeypatch):
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: flash_installed)
    assert pick_attention(requested, dtype, gpu) == expected


def test_sdpa_falls_back_to_eager_in_transformers(tiny_model_path, monkeypatch):
    """transformers itself falls back from sdpa to eager where sdpa cannot run; the loader relies on it."""
    from transformers import Phi3ForCausalLM

    from trainer.modeling import load_base_model

    def cannot_dispatch(self, is_init_check=False):
        raise ValueError("sdpa is not supported here")

    monkeypatch.setattr(Phi3ForCausalLM, "_sdpa_can_dispatch", cannot_dispatch)
    model = load_base_model(preset_config("tiny-demo").model)
    assert model.config._attn_implementation == "eager"
    assert model.config.use_cache is False  # training loads turn the KV cache off
