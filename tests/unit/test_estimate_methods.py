"""The estimate of a preference run (DPO, KTO, ORPO): two sequences per pair, the reference's extra forward passes,
and the pairs' lengths against max_length."""

from __future__ import annotations

import pytest

from trainer.config import preset_config
from trainer.estimate import ModelShape, estimate_run, gpu_device, model_shape, render_markdown, with_changes
from trainer.estimate.memory import estimate_memory, micro_batch_tokens
from trainer.estimate.plan import compute_factor, estimate_time, example_tokens, throughput, training_tokens
from trainer.phi3 import PHI3_MINI_CONFIG

PAIRS = [(300, 200), (500, 1400), (100, 100)]  # (prompt + chosen, prompt + rejected) tokens
CHOSEN = [c for c, _ in PAIRS]


def dpo(method: str = "dpo", **training):
    """The `dpo` preset (Phi-3-mini, LoRA, 2 pairs per batch x 8; its test split held out) with the method and
    training settings changed (gradient checkpointing off unless asked)."""
    changes = {"training.method": method, "training.max_length": 1024, "training.gradient_checkpointing": False}
    changes.update({f"training.{k}": v for k, v in training.items()})
    return with_changes(preset_config("dpo"), changes)


@pytest.fixture(scope="module")
def phi3():
    return ModelShape.from_config(PHI3_MINI_CONFIG)


def test_a_dpo_or_orpo_example_is_a_pair_with_both_sequences_each_cut_to_max_length():
    assert example_tokens(dpo(), CHOSEN, PAIRS) == [500, 500 + 1024, 200]
    assert example_tokens(dpo("orpo"), CHOSEN, PAIRS) == [500, 1524, 200]
    assert example_tokens(dpo("kto"), CHOSEN, PAIRS) == [300, 200, 500, 1024, 100, 100]  # each side an example
    assert example_tokens(dpo("sft"), CHOSEN, PAIRS) == [300, 500, 100]  # SFT on pairs trains the chosen replies


def test_training_tokens_count_both_replies_of_each_pair():
    steps = dpo(max_steps=10)  # 10 steps x 2 pairs x 8 accumulation, each pair 2224 / 3 tokens on average
    assert training_tokens(steps, CHOSEN, pairs=PAIRS) == (int(10 * 2 * 8 * (500 + 1524 + 200) / 3), 10)
    epochs = dpo(num_train_epochs=1.0)  # 3000 pairs in the train split (the test split is held out)
    tokens, _ = training_tokens(epochs, CHOSEN, total_rows=3000, pairs=PAIRS)
    assert tokens == int((500 + 1524 + 200) / 3 * 3000)
    kto, _ = training_tokens(dpo("kto", num_train_epochs=1.0), CHOSEN, total_rows=3000, pairs=PAIRS)
    assert kto == int((300 + 200 + 500 + 1024 + 100 + 100) / 6 * 6000)  # two examples per pair


def test_a_dpo_batch_holds_both_replies_of_each_pair_padded_to_the_longest():
    lengths = [n for pair in PAIRS for n in pair]
    t = dpo(per_device_train_batch_size=2).training
    assert micro_batch_tokens(t, lengths) == 4 * 1024  # 2 pairs = 4 sequences, padded to the longest (cut)
    sft = dpo("sft", per_device_train_batch_size=2, padding_free=True).training
    assert micro_batch_tokens(sft, lengths) == 1024 + 500  # SFT: 2 rows, padding-free


def test_the_reference_passes_cost_compute_and_dpo_activations_are_twice_sfts(phi3):
    assert [compute_factor(dpo(m)) for m in ("sft", "dpo", "kto", "orpo")] == [1.0, 1.5, 2.5, 1.0]
    assert compute_factor(dpo(gradient_checkpointing=True)) == pytest.approx(1 + 2 / 6)
    a100 = gpu_device("A100 80GB", "test")
    sft, pref = dpo("sft", max_steps=10), dpo(max_steps=10)
    sft_rate = throughput(a100, sft, phi3, 700).tokens_per_s
    time = estimate_time(pref, phi3, a100, CHOSEN, pairs=PAIRS)
    assert time.throughput.tokens_per_s == pytest.approx(throughput(a100, pref, phi3, 2224 / 3).tokens_per_s / 1.5)
    assert "÷ 1.5 for its reference's forward passes" in time.throughput.source and sft_rate > 0
    lengths = [512] * 8
    one = estimate_memory(dpo("sft", per_device_train_batch_size=4, padding_free=False), phi3, "cuda", lengths)
    two = estimate_memory(dpo(per_device_train_batch_size=2), phi3, "cuda", lengths)
    assert two.activations == one.activations and two.tokens == 4 * 512  # 2 pairs weigh what 4 SFT rows do


def test_the_panel_says_what_a_pair_costs_and_how_many_pairs_max_length_cuts(phi3):
    cfg = dpo(max_length=1024)
    shown = render_markdown(estimate_run(cfg, lengths=CHOSEN, shape=phi3, device=gpu_device("A10G", "t"), pairs=PAIRS))
    assert "**DPO:** 3 pairs, 300 tokens with the chosen reply and 567 with the rejected one on average" in shown
    assert "**max_length 1024** cuts 1 pair (33.3%)" in shown and "trains both replies together: 4 sequences" in shown
    assert "about 1.5× SFT's" in shown
    sft = render_markdown(estimate_run(dpo("sft"), lengths=CHOSEN, shape=phi3, device=gpu_device("A10G", "t")))
    assert "**DPO:**" not in sft and "pairs" not in sft


def test_the_tiny_dpo_demo_is_timed_by_its_own_measured_rate(monkeypatch):
    import trainer.estimate.plan as plan
    from trainer.estimate import Device

    monkeypatch.setattr(plan.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    cpu = Device("CPU (2 cores)", "cpu", 8 * 1024**3, None, "this machine")
    cfg = preset_config("tiny-demo-dpo")
    time = estimate_time(cfg, model_shape("tiny-phi3"), cpu, [27] * 240, pairs=[(27, 20)] * 240)
    timing = plan.demo_timing("dpo")  # benchmarks/demo-cpu: the DPO demo timed by scripts/calibrate_demo.py
    assert timing is not None and time.throughput.tokens_per_s == timing.tokens_per_s  # not SFT's ÷ 1.5
    assert "DPO" in time.throughput.source and "÷" not in time.throughput.source
    assert time.tokens == 40 * 8 * 47


def grpo(**changes):
    """Phi-3-mini GRPO: 8 completions per prompt of up to 256 tokens, 8 x 4 completions a step (4 prompts)."""
    base = {"training.method": "grpo", "training.per_device_train_batch_size": 8,
            "training.gradient_accumulation_steps": 4, "training.gradient_checkpointing": False,
            "grpo.max_completion_length": 256, "data.eval_fraction": 0.1}  # fmt: skip
    return with_changes(preset_config("lora"), {**base, **changes})


def test_a_grpo_epoch_answers_every_training_prompt_num_generations_times():
    sequences = [100 + 256, 300 + 256]  # each prompt with a whole completion
    tokens, steps = training_tokens(grpo(), sequences, total_rows=1000)
    assert steps == 225  # 900 training prompts x 8 completions / 32 completions a step
    assert tokens == int(225 * 32 * (356 + 556) / 2)
    assert training_tokens(grpo(**{"training.max_steps": 10}), sequences) == (int(10 * 32 * 456), 10)


def test_grpo_memory_holds_the_generation_batch_s_kv_cache_and_its_training_batch_of_completions(phi3):
    cfg = grpo()
    e = estimate_memory(cfg, phi3, "cuda", [120 + 256, 200 + 256])
    rows, tokens = 32, 456  # the generation batch (batch x accumulation) at the longest prompt + completion
    kv = rows * tokens * 2 * phi3.layers * phi3.kv_heads * phi3.head_dim * 2  # bf16
    assert e.generation == kv + rows * phi3.vocab * 4  # + a decode step's fp32 logits
    assert e.tokens == 8 * 456  # the training micro-batch: 8 completions, padded to the longest
    big = estimate_memory(with_changes(cfg, {"grpo.generation_batch_size": 512}), phi3, "cuda", [456])
    assert big.generation == 16 * e.generation and big.peak_phase == "generation"
    assert big.total == big.overhead + big.weights + big.adapter + big.generation
    assert estimate_memory(with_changes(cfg, {"training.method": "sft"}), phi3, "cuda", [456]).generation == 0


def test_grpo_time_adds_generation_at_the_gpu_s_memory_bandwidth(phi3):
    from trainer.estimate.plan import ASSUMED_MFU, GPU_EFFICIENCY

    cfg = grpo(**{"training.max_steps": 100})
    device = gpu_device("A10G", "test")
    time = estimate_time(cfg, phi3, device, [100 + 256])
    per_step = max(2 * phi3.n_params / (600e9 * GPU_EFFICIENCY), 2 * phi3.n_params * 32 / (125e12 * ASSUMED_MFU))
    assert time.generation_s == pytest.approx(100 * 256 * per_step)  # one batch of 32 a step, 256 decode steps
    assert "100 batches of 32 completions" in time.generation
    trained = estimate_time(with_changes(cfg, {"training.method": "sft"}), phi3, device, [100 + 256])
    assert time.seconds == pytest.approx(trained.seconds + time.generation_s, rel=0.02)
    assert compute_factor(cfg) == 1 and compute_factor(with_changes(cfg, {"grpo.beta": 0.01})) == 1.5  # reference


def test_the_grpo_panel_names_the_completions_and_the_generation():
    cfg, shape = grpo(**{"training.max_steps": 50}), ModelShape.from_config(PHI3_MINI_CONFIG)
    estimate = estimate_run(cfg, lengths=[120] * 100, total_rows=1000, device=gpu_device("A10G", "test"), shape=shape)
    text = render_markdown(estimate)
    assert (
        "**GRPO:** each prompt is answered **8** times, up to 256 tokens each; a step trains 32 completions (4 "
        in text
    )
    assert "| generation (GRPO) |" in text and "generating completions (50 batches of 32 completions" in text
