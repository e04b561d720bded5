"""Phi-3-mini at full size, with random weights, on the CPU: what breaks only at 3.8 B parameters.

The weights cannot be downloaded, but the architecture can be built from `PHI3_MINI_CONFIG` (hidden 3072, 32 layers,
32 heads, intermediate 8192, vocabulary 32064, 4k context) and fed the real tokenizer shipped in trainer/assets.

Opt-in (`-m fullsize`, deselected otherwise by tests/conftest.py): `python -m pytest -q -m fullsize tests/fullsize`.
Needs ~16 GB of free RAM and ~8 GB of free disk (a random bf16 checkpoint, deleted at the end).

Measured on 2 CPU cores, 24 GB, torch 2.13 CPU, transformers 5.24, peft 0.21, bitsandbytes 0.50.2, 2026-11-30
(the figures each test prints with `-s`; details in each test's docstring): the whole module ~2.8 min wall
(random bf16 model built in 42 s, saved in 24 s; bf16 step 5 s; 4-bit load + quantisation 74 s, 4-bit step 10 s),
peak RSS 11.5 GB. Everything runs at full size, all 32 layers, in bf16 and in 4-bit.

The memory of a step is measured as in tests/integration/test_estimate_memory.py: the model's parameter storages
held before the step, plus the highest running sum of torch's CPU allocations minus frees during forward, backward
and one AdamW step (torch.profiler, profile_memory=True).
"""

from __future__ import annotations

import gc
import time

import pytest

from tests.memory_probe import allocation_peak, held_bytes, storage_bytes
from trainer.config import preset_config
from trainer.estimate import ModelShape, estimate_memory, model_shape, with_changes
from trainer.phi3 import PHI3_MINI_CONFIG, PHI3_PROJECTIONS

pytestmark = pytest.mark.fullsize

PARAMS = 3_821_079_552
LORA_R16 = 25_165_824
LENGTH = 32
MODEL = "microsoft/Phi-3-mini-4k-instruct"


def quant_state_tensors(model) -> list:
    """The tensors bitsandbytes keeps beside each 4-bit weight (absmax, nested absmax, codebooks): not parameters."""
    found = []
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is None:
            continue
        found += [state.absmax, state.code]
        if state.nested:
            found += [state.state2.absmax, state.state2.code]
    return found


def run_config(preset: str):
    """The preset, at batch 1 and 32 tokens without checkpointing (the step run here); bf16 for the LoRA preset."""
    changes = {
        "training.per_device_train_batch_size": 1,
        "training.per_device_eval_batch_size": 1,
        "training.max_length": LENGTH,
        "training.gradient_checkpointing": False,
    }
    if preset == "lora":
        changes["model.dtype"] = "bfloat16"
    return with_changes(preset_config(preset), changes)


def token_ids():
    """32 real token ids: a chat rendered with the shipped tokenizer's own template."""
    import torch
    from transformers import AutoTokenizer

    from trainer.paths import TOKENIZER_DIR

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    messages = [
        {"role": "user", "content": "Explain in a few sentences why the sky is blue on a clear afternoon."},
        {"role": "assistant", "content": "Sunlight scatters off air molecules, and blue light scatters the most."},
    ]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert len(ids) >= LENGTH
    return torch.tensor([ids[:LENGTH]])


def lora_step(model, ids) -> tuple[float, dict[str, object]]:
    """One forward + backward + AdamW step of LoRA through TRL's fused LM head under bf16 autocast, as SFTTrainer."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    out: dict[str, object] = {}

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        loss.backward()
        out["loss"] = loss.item()
        optimizer.step()

    peak = allocation_peak(step)
    out["optimizer"] = optimizer  # the gradients stay on the parameters (no zero_grad)
    out["grads"] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return peak, out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random Phi-3-mini saved in bf16 (7.6 GB), built directly in bf16; deleted after the module."""
    import shutil

    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    folder = tmp_path_factory.mktemp("phi3-mini-random")
    start = time.time()
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = Phi3ForCausalLM(Phi3Config(**PHI3_MINI_CONFIG))
    finally:
        torch.set_default_dtype(default)
    built = time.time()
    model.save_pretrained(folder)
    print(f"\nbuilt in bf16 in {built - start:.0f} s, saved in {time.time() - built:.0f} s")
    del model
    gc.collect()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_parameter_counts_at_full_size():
    """On the meta device (no memory): 3,821,079,552 parameters; LoRA r 16 on the four fused projections 25,165,824
    trainable; the estimate package's ModelShape gives the same numbers (total, linears, LoRA)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM

    with torch.device("meta"):
        model = Phi3ForCausalLM(Phi3Config(**PHI3_MINI_CONFIG))
    total = sum(p.numel() for p in model.parameters())
    linears = sum(p.numel() for n, p in model.named_parameters() if any(f".{proj}." in n for proj in PHI3_PROJECTIONS))
    assert total == PARAMS
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=PHI3_PROJECTIONS))
    trainable, everything = model.get_nb_trainable_parameters()
    assert (trainable, everything) == (LORA_R16, PARAMS + LORA_R16)

    shape = model_shape(MODEL)
    assert shape == ModelShape.from_config(Phi3Config(**PHI3_MINI_CONFIG))
    assert (shape.n_params, shape.linear_params, shape.lora_params(16, PHI3_PROJECTIONS)) == (
        PARAMS,
        linears,
        LORA_R16,
    )
    assert shape.lora_params(16, ["all-linear"]) == LORA_R16


def test_bf16_lora_at_full_size_matches_the_estimate(checkpoint):
    """The `lora` preset in bf16 (batch 1, 32 tokens, no checkpointing), loaded as trainer.modeling loads it.

    - weights: parameter storages of the loaded base == the estimate's 2·P, within 2 % (measured: exact).
    - adapter: LoRA params + grads + AdamW's two states after one step == 16·P_lora (the estimate's 18·P_lora
      less the 2·P_lora of bf16 autocast copies, which live only during the step), exactly.
    - the step's peak (held + profiler peak) within 2 % of the estimate's total (weights dominate it), and the part
      above the weights (adapter + activations + head + gradients in flight) within 15 %.
    - finite loss, every lora_B gradient non-zero.

    Measured 2026-11-30: weights 7,642,159,488 B against the estimate's 7,642,159,104 (the 384 B are the rotary
    buffers); adapter 402,653,184 B = 16 × 25,165,824; peak 8,413,735,668 B against 8,348,450,944 (+0.8 %), above
    the weights 771,576,180 against 706,291,840 (+9.2 %); the step 5.2 s with the profiler, loss 11.061.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from trainer.modeling import lora_config

    cfg = run_config("lora")
    shape = model_shape(MODEL)
    estimate = estimate_memory(cfg, shape, "cpu", [LENGTH])

    start = time.time()
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    loaded = time.time() - start
    weights = held_bytes(model)
    assert abs(weights - estimate.weights) <= 0.02 * estimate.weights

    from peft import get_peft_model

    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    model = get_peft_model(model, lora_config(cfg.lora))
    model.train()
    lora = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in lora) == LORA_R16 and all(p.dtype == torch.float32 for p in lora)
    held = held_bytes(model)

    start = time.time()
    peak, out = lora_step(model, token_ids())
    stepped = time.time() - start
    state = out["optimizer"].state
    adapter = storage_bytes(lora) + storage_bytes(p.grad for p in lora)
    adapter += storage_bytes(t for p in lora for t in (state[p]["exp_avg"], state[p]["exp_avg_sq"]))
    real = held + peak
    print(
        f"\nbf16 LoRA: loaded {loaded:.0f} s, step {stepped:.1f} s, loss {out['loss']:.3f}; weights {weights:,} "
        f"(estimate {estimate.weights:,}); adapter {adapter:,} (estimate {estimate.adapter:,}); peak {real:,} "
        f"(estimate {estimate.total:,}; above weights {real - weights:,} vs {estimate.total - estimate.weights:,})"
    )
    assert adapter == 16 * LORA_R16 == estimate.adapter - 2 * LORA_R16
    assert abs(real - estimate.total) <= 0.02 * estimate.total
    assert abs((real - weights) - (estimate.total - estimate.weights)) <= 0.15 * (real - weights)
    assert torch.isfinite(torch.tensor(out["loss"]))
    grads = out["grads"]
    b_grads = [g for n, g in grads.items() if "lora_B" in n]
    assert len(b_grads) == 4 * 32 and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in b_grads)
    del model, out, lora, state, grads, b_grads
    gc.collect()


def test_4bit_qlora_at_full_size_matches_the_estimate(checkpoint):
    """The `qlora` preset (NF4, nested quantisation, bf16 compute), loaded with from_pretrained +
    BitsAndBytesConfig on bitsandbytes' CPU backend and k-bit prepared, as trainer.modeling does on a GPU
    (trainer.modeling refuses 4-bit without CUDA, so its config is built here with the same settings).

    - weights: 4-bit storages + quant states + the fp32 non-linear parameters == the estimate's
      P_lin·(0.5 + 1/64 + 4/16384) + 4·(P − P_lin), within 2 %.
    - one LoRA step at 32 tokens under bf16 autocast: finite loss, every lora_B gradient non-zero.
    - the step's peak (held + profiler peak) within 3 % of the estimate's total, the part above the weights within
      10 %. Measured 3,665,115,892 B against 3,599,489,152 (−1.8 %; above the weights 1,006,725,492 against
      941,238,400, −6.5 %). Before the estimate counted the bf16 copy of the fp32 lm_head that bf16 autocast makes
      once `prepare_model_for_kbit_training` has upcast it (2·V·h = 197.0 MB), it was 3,472,347,264 (−5.3 %).

    Measured 2026-11-30: load + NF4 quantisation of all 128 linears on bitsandbytes' CPU backend 74 s, the step
    9.6 s (with the profiler), loss 10.890; weights 2,658,390,400 B against the estimate's 2,658,250,752 (+0.005 %).
    """
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl.trainer.utils import add_fused_lm_head

    from trainer.modeling import lora_config

    cfg = run_config("qlora")
    shape = model_shape(MODEL)
    estimate = estimate_memory(cfg, shape, "cpu", [LENGTH])
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.model.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=cfg.model.use_bnb_nested_quant,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    start = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint, quantization_config=quant, device_map={"": "cpu"}, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    loaded = time.time() - start
    four_bit = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert len(four_bit) == 4 * 32
    weights = storage_bytes(list(model.parameters()) + list(model.buffers()) + quant_state_tensors(model))
    assert abs(weights - estimate.weights) <= 0.02 * estimate.weights

    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    model = get_peft_model(model, lora_config(cfg.lora))
    model.train()
    held = storage_bytes(list(model.parameters()) + list(model.buffers()) + quant_state_tensors(model))
    start = time.time()
    peak, out = lora_step(model, token_ids())
    stepped = time.time() - start
    real = held + peak
    print(
        f"\n4-bit QLoRA: loaded + quantised {loaded:.0f} s, step {stepped:.1f} s, loss {out['loss']:.3f}; "
        f"weights {weights:,} (estimate {estimate.weights:,}); peak {real:,} (estimate {estimate.total:,}; above "
        f"weights {real - weights:,} vs {estimate.total - estimate.weights:,})"
    )
    assert torch.isfinite(torch.tensor(out["loss"]))
    b_grads = [g for n, g in out["grads"].items() if "lora_B" in n]
    assert len(b_grads) == 4 * 32 and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in b_grads)
    assert abs(real - estimate.total) <= 0.03 * real
    assert abs((real - weights) - (estimate.total - estimate.weights)) <= 0.10 * (real - weights)
    del model, out, b_grads
    gc.collect()
