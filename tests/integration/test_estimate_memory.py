"""The memory estimate (trainer.estimate.memory) against real peaks measured on this CPU.

How a real peak is measured without CUDA: `torch.profiler` with ``profile_memory=True`` records every allocation and
free of torch's CPU allocator while training runs; the peak is the highest running sum of them, plus the bytes
already held when profiling starts (the model's parameters and buffers, each storage once). That is the CPU
counterpart of `torch.cuda.max_memory_allocated`: tensors only, no Python objects, no allocator cache and no CUDA
context (which the estimate adds as a separate overhead on a GPU and leaves out on a CPU). tracemalloc would not
see torch's allocations at all, and RSS mixes in the interpreter, the tokenizer and freed-but-cached pages.
"""

from __future__ import annotations

import math

import pytest

from tests.memory_probe import allocation_peak, held_bytes
from trainer.config import load_config, preset_config
from trainer.estimate import ModelShape, estimate_memory, row_tokens, with_changes
from trainer.estimate.memory import layer_activation_bytes, precision
from trainer.phi3 import TINY_CONFIG


@pytest.mark.slow
def test_the_tiny_demo_estimate_is_within_25_percent_of_a_real_training_peak(tiny_model_path, tmp_path):
    """A full epoch of the tiny-demo preset through TRL's SFTTrainer, as `trainer.training.run` builds it."""
    from trainer import data as data_mod
    from trainer.modeling import load_base_model, load_tokenizer
    from trainer.training import fit_to_max_length, make_trainer

    cfg = preset_config("tiny-demo")
    t = cfg.training
    prepared = data_mod.prepare(cfg.data, seed=t.seed)
    tokenizer = load_tokenizer(cfg.model)
    rows = row_tokens(tokenizer, prepared.train["messages"])
    epoch = math.ceil(len(rows) / t.per_device_train_batch_size)  # every row once, so the longest batch is seen
    cfg = with_changes(cfg, {"training.max_steps": epoch, "training.save_steps": 10_000, "training.sample_prompts": 0})
    model = load_base_model(cfg.model, for_training=True)
    trainer = make_trainer(cfg, tmp_path, model, tokenizer, prepared.train, None, [], padding_free=True)
    fit_to_max_length(trainer, t.max_length)

    # what the assistant-only loss learns is what row_tokens counts: TRL's labels, position by position
    learned = [[p for p, label in enumerate(row["labels"]) if label != -100] for row in trainer.train_dataset]
    assert learned == [[p for start, end in r.spans for p in range(start, end)] for r in rows]

    real = held_bytes(trainer.model) + allocation_peak(trainer.train)
    estimate = estimate_memory(cfg, ModelShape.from_config(TINY_CONFIG), "cpu", [r.length for r in rows])
    print(f"tiny demo: estimate {estimate.total / 2**20:.1f} MiB, real peak {real / 2**20:.1f} MiB ({estimate})")
    assert abs(estimate.total - real) <= 0.25 * real


def saved_bytes(model, ids, autocast: bool) -> int:
    """Bytes of the tensors a PEFT model's decoder saves for backward (each storage once, parameters left out)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model.base_model.model.model(input_ids=ids)
    return sum(storages.values())


WIDE = {**TINY_CONFIG, "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 4}
WIDE |= {"num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 512, "pad_token_id": 0}
WIDE |= {"bos_token_id": 1, "eos_token_id": 2}
"""A Phi-3 whose activations outweigh its small vocabulary's loss head (the tiny model's head dominates)."""


def wide_config(checkpointing: bool, dropout: float, batch: int, length: int):
    return load_config(
        preset="lora",
        overrides=[
            "model.dtype=float32",
            f"lora.lora_dropout={dropout}",
            f"training.gradient_checkpointing={str(checkpointing).lower()}",
            f"training.per_device_train_batch_size={batch}",
            f"training.per_device_eval_batch_size={batch}",
            f"training.max_length={length}",
            "training.padding_free=false",
        ],
    )


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_real_step_of_a_wide_model_matches_the_estimate(checkpointing):
    """Forward, backward and AdamW step of PEFT LoRA on TRL's fused LM head (the pieces SFTTrainer uses), twice."""
    import torch
    from peft import get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from trainer.modeling import lora_config, set_checkpointing

    batch, length = 2, 512
    cfg = wide_config(checkpointing, 0.05, batch, length)

    def train_two_steps() -> None:
        torch.manual_seed(0)
        model = Phi3ForCausalLM(Phi3Config(**WIDE))
        model.config.use_cache = False
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        set_checkpointing(model, checkpointing)
        model = get_peft_model(model, lora_config(cfg.lora))
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(2):
            ids = torch.randint(0, WIDE["vocab_size"], (batch, length))
            model(input_ids=ids, labels=ids, fused_lm_head=True).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    real = allocation_peak(train_two_steps)  # the model is built inside: every byte is seen
    estimate = estimate_memory(cfg, ModelShape.from_config(WIDE), "cpu", [length] * batch)
    print(f"wide, checkpointing {checkpointing}: estimate {estimate.total / 2**20:.1f} MiB, real {real / 2**20:.1f}")
    assert abs(estimate.total - real) <= 0.10 * real


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("dropout", [0.0, 0.05])
@pytest.mark.parametrize("heads", [(8, 8), (8, 2)], ids=["mha", "gqa"])
def test_the_per_layer_activation_formula_is_what_autograd_saves(autocast, dropout, heads):
    """Tensors saved for backward (saved_tensors_hooks, parameters left out): layer 3 minus layer 2, per token."""
    import torch
    from peft import get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM

    from trainer.modeling import lora_config

    config = {**WIDE, "hidden_size": 256, "intermediate_size": 688}
    config |= {"num_attention_heads": heads[0], "num_key_value_heads": heads[1]}
    batch, length = 2, 128
    cfg = wide_config(False, dropout, batch, length)
    if autocast:
        cfg = with_changes(cfg, {"model.dtype": "bfloat16"})

    def saved(layers: int) -> int:
        torch.manual_seed(0)
        model = Phi3ForCausalLM(Phi3Config(**{**config, "num_hidden_layers": layers}))
        model.config.use_cache = False  # as in training (trainer.modeling.load_base_model, TRL's compute_loss)
        model = get_peft_model(model.to(torch.bfloat16 if autocast else torch.float32), lora_config(cfg.lora))
        model.train()
        return saved_bytes(model, torch.randint(0, config["vocab_size"], (batch, length)), autocast)

    shape = ModelShape.from_config(config)
    measured = saved(3) - saved(2)
    weight_copies = 2 * shape.lora_params(cfg.lora.r, cfg.lora.target_modules) // shape.layers if autocast else 0
    formula = layer_activation_bytes(shape, cfg.lora, precision(cfg, "cpu")) * batch * length + weight_copies
    assert formula == pytest.approx(measured, rel=0.001)


@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_the_4_bit_activation_formula_is_what_autograd_saves(dropout, tmp_path):
    """QLoRA as trainer.modeling loads it (bitsandbytes NF4 on its CPU backend, k-bit preparation, bf16 autocast)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Phi3Config, Phi3ForCausalLM

    from trainer.modeling import lora_config

    config = {**WIDE, "hidden_size": 256, "intermediate_size": 688, "num_key_value_heads": 2}
    batch, length = 2, 128
    cfg = with_changes(wide_config(False, dropout, batch, length), {"model.load_in_4bit": True})
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )

    def saved(layers: int) -> int:
        torch.manual_seed(0)
        folder = tmp_path / f"layers-{layers}"
        Phi3ForCausalLM(Phi3Config(**{**config, "num_hidden_layers": layers})).to(torch.bfloat16).save_pretrained(
            folder
        )
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": "cpu"})
        model.config.use_cache = False
        model = get_peft_model(prepare_model_for_kbit_training(model, False), lora_config(cfg.lora))
        model.train()
        return saved_bytes(model, torch.randint(0, config["vocab_size"], (batch, length)), autocast=True)

    shape = ModelShape.from_config(config)
    weight_copies = 2 * shape.lora_params(cfg.lora.r, cfg.lora.target_modules) // shape.layers
    formula = layer_activation_bytes(shape, cfg.lora, precision(cfg, "cpu")) * batch * length + weight_copies
    assert formula == pytest.approx(saved(3) - saved(2), rel=0.001)


def test_the_estimate_sees_assistant_cut_by_max_length(phi3_tokenizer):
    """row_tokens + the tiny demo's own data: a short max_length cuts replies, the default cuts nothing."""
    from trainer import data as data_mod
    from trainer.estimate import length_report

    cfg = preset_config("tiny-demo")
    rows = row_tokens(phi3_tokenizer, data_mod.prepare(cfg.data, seed=0).train["messages"])
    assert length_report(rows, 128).assistant_tokens_cut == 0
    short = length_report(rows, 16)
    assert short.rows_truncated == len(rows) and 0.3 < short.share_assistant_cut < 1.0
    assert short.assistant_tokens == sum(r.assistant for r in rows)
