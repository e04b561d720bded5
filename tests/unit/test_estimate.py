"""Know before you start (trainer.estimate): parameter counts, memory, fit and suggestions, lengths, time, the panel.

Fast and offline: model sizes come from configs (a meta-device model at most), nothing is downloaded or trained.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from trainer.config import preset_config
from trainer.estimate import (
    Device,
    RowTokens,
    check_fit,
    estimate_memory,
    estimate_run,
    estimate_time,
    gpu_device,
    length_report,
    model_shape,
    render_markdown,
    row_tokens,
    space_hardware,
    with_changes,
)
from trainer.estimate.device import assumed_space_device, find_gpu
from trainer.estimate.memory import GIB, ModelShape, layer_activation_bytes, micro_batch_tokens, precision
from trainer.estimate.plan import (
    ASSUMED_MFU,
    QLORA_SLOWDOWN,
    TINY_CPU_TOKENS_PER_S,
    busy_factor,
    flops_per_token,
    measured_throughput,
    throughput,
    training_tokens,
    verdict,
)
from trainer.estimate.render import render_time
from trainer.estimate.tokens import histogram, nice_step
from trainer.paths import PROJECT_ROOT
from trainer.phi3 import PHI3_PROJECTIONS

PHI3_SIZES = {
    "vocab_size": 32064,
    "hidden_size": 3072,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "intermediate_size": 8192,
    "max_position_embeddings": 4096,
}
H, INTER, L, V, R = 3072, 8192, 32, 32064, 16


@pytest.fixture(scope="module")
def phi3_config():
    from transformers import Phi3Config

    return Phi3Config(**PHI3_SIZES, pad_token_id=32000)


@pytest.fixture(scope="module")
def phi3(phi3_config):
    return ModelShape.from_config(phi3_config)


def lora(**training):
    """The `lora` preset (bf16 LoRA, r 16 on the four projections) with training settings changed."""
    return with_changes(preset_config("lora"), {f"training.{k}": v for k, v in training.items()})


# --------------------------------------------------------------------------- parameters


def test_phi3_mini_has_3_82_billion_parameters(phi3):
    by_hand = 2 * V * H + L * (H * 3 * H + H * H + H * 2 * INTER + INTER * H + 2 * H) + H
    assert phi3.n_params == by_hand == 3_821_079_552
    assert round(phi3.n_params / 1e9, 2) == 3.82


def test_lora_r16_on_the_four_fused_projections_is_25_165_824_parameters(phi3):
    per_layer = R * ((H + 3 * H) + (H + H) + (H + 2 * INTER) + (INTER + H))  # r·(in + out) for qkv, o, gate_up, down
    assert phi3.lora_params(R, PHI3_PROJECTIONS) == L * per_layer == 25_165_824
    assert phi3.lora_params(R, ["all-linear"]) == 25_165_824  # PEFT's all-linear leaves lm_head out
    assert phi3.lora_params(R, ["qkv_proj", "o_proj"]) == L * R * (4 * H + 2 * H)
    with pytest.raises(ValueError, match="q_proj"):
        phi3.lora_params(R, ["q_proj"])


def test_the_counts_agree_with_peft_on_a_meta_device_model(phi3_config, phi3):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Phi3ForCausalLM

    with torch.device("meta"):
        model = Phi3ForCausalLM(phi3_config)
    assert sum(p.numel() for p in model.parameters()) == phi3.n_params
    peft_model = get_peft_model(model, LoraConfig(r=R, target_modules=list(PHI3_PROJECTIONS), task_type="CAUSAL_LM"))
    assert peft_model.get_nb_trainable_parameters()[0] == phi3.lora_params(R, PHI3_PROJECTIONS)


def test_known_models_need_no_download():
    assert model_shape("microsoft/Phi-3-mini-4k-instruct").n_params == 3_821_079_552
    tiny = model_shape("tiny-phi3")
    assert (tiny.hidden, tiny.layers, tiny.vocab) == (128, 2, 32064)


# --------------------------------------------------------------------------- memory


def test_precision_follows_the_device_and_the_config():
    assert precision(preset_config("lora"), "cuda").name == "16-bit"  # dtype auto: bf16 on a GPU
    assert precision(preset_config("lora"), "cpu").name == "fp32"
    assert precision(preset_config("qlora"), "cuda").name == "4-bit"
    assert precision(preset_config("tiny-demo"), "cuda").name == "fp32"  # dtype float32 is kept


def test_weights_are_2_bytes_per_parameter_in_bf16_and_about_half_a_byte_in_4_bit(phi3):
    bf16 = estimate_memory(lora(), phi3, "cuda")
    assert bf16.weights == 2 * phi3.n_params
    qlora = estimate_memory(preset_config("qlora"), phi3, "cuda")
    unquantised = phi3.n_params - phi3.linear_params  # embeddings, lm_head, norms: fp32 after kbit preparation
    assert qlora.weights == int(phi3.linear_params * (0.5 + 1 / 64 + 4 / (64 * 256))) + 4 * unquantised
    plain_absmax = with_changes(preset_config("qlora"), {"model.use_bnb_nested_quant": False})
    assert estimate_memory(plain_absmax, phi3, "cuda").weights - qlora.weights == pytest.approx(
        phi3.linear_params * (4 / 64 - 1 / 64 - 4 / (64 * 256)), abs=2
    )


def test_bf16_lora_needs_more_memory_than_4_bit_qlora(phi3):
    qlora = with_changes(lora(), {"model.load_in_4bit": True})
    assert estimate_memory(lora(), phi3, "cuda").total > estimate_memory(qlora, phi3, "cuda").total + 3 * GIB


def test_the_adapter_costs_16_bytes_per_trainable_parameter_plus_its_autocast_copy(phi3):
    assert estimate_memory(lora(), phi3, "cpu").adapter == 16 * 25_165_824  # fp32 weight, grad, AdamW m and v
    assert estimate_memory(lora(), phi3, "cuda").adapter == 18 * 25_165_824  # + the bf16 copy autocast keeps


def test_gradient_checkpointing_keeps_only_each_layers_input(phi3):
    off = estimate_memory(lora(gradient_checkpointing=False), phi3, "cuda")
    on = estimate_memory(lora(gradient_checkpointing=True), phi3, "cuda")
    n = 4 * 1024  # batch 4 × max_length 1024
    head_input = 4 * H + 4 + 2 * 2 * H
    assert on.activations == n * (L * 2 * H + head_input)  # bf16 layer inputs
    assert off.activations == n * (
        L * layer_activation_bytes(phi3, lora().lora, precision(lora(), "cuda")) + head_input
    )
    assert on.activations < off.activations / 10
    assert on.total < off.total


def test_with_checkpointing_the_recomputed_layer_can_be_the_peak(phi3):
    cfg = lora(gradient_checkpointing=True, per_device_train_batch_size=8)
    e = estimate_memory(cfg, phi3, "cuda")
    n = 8 * 1024
    layer = layer_activation_bytes(phi3, cfg.lora, precision(cfg, "cuda"))
    assert e.backward == n * layer + n * (H + INTER) * 2  # one recomputed layer + the gradients in flight
    assert e.peak_phase == "layer backward"
    assert e.total == e.overhead + e.weights + e.adapter + e.activations + e.backward
    qlora = estimate_memory(with_changes(cfg, {"model.load_in_4bit": True}), phi3, "cuda")
    assert (
        qlora.backward
        - n * (H + INTER) * 4
        - n
        * layer_activation_bytes(phi3, cfg.lora, precision(with_changes(cfg, {"model.load_in_4bit": True}), "cuda"))
        == 2 * H * 2 * INTER
    )  # one dequantised gate_up_proj weight in bf16


def test_a_large_eval_batch_can_be_the_peak():
    cfg = with_changes(
        preset_config("tiny-demo"),
        {"training.per_device_train_batch_size": 1, "training.per_device_eval_batch_size": 64},
    )
    e = estimate_memory(cfg, model_shape("tiny-phi3"), "cpu", [30] * 100)
    assert e.peak_phase == "evaluation"
    assert e.total == e.weights + e.adapter + e.eval_head
    assert e.eval_head == 64 * 30 * 32768 * 4 + int(3.25 * 64 * 30 * 32064 * 4)  # tile + the CPU temporaries


def test_activations_grow_with_dropout_masks_and_targets(phi3):
    p = precision(lora(), "cuda")
    settings = lora().lora
    no_dropout = with_changes(lora(), {"lora.lora_dropout": 0.0}).lora
    fewer = with_changes(lora(), {"lora.target_modules": ["qkv_proj"]}).lora
    full = layer_activation_bytes(phi3, settings, p)
    assert full - layer_activation_bytes(phi3, no_dropout, p) == (H + H + H + INTER) * 1  # one bool per adapter input
    assert layer_activation_bytes(phi3, fewer, p) < full


def test_the_micro_batch_is_the_longest_rows_padding_free_or_padded_or_packed():
    t = lora(per_device_train_batch_size=3, max_length=100).training
    lengths = [10, 50, 500, 20, 70]
    assert micro_batch_tokens(t, lengths) == 100 + 70 + 50  # padding-free: the 3 longest, cut to max_length
    padded = with_changes(lora(per_device_train_batch_size=3, max_length=100), {"training.padding_free": False})
    assert micro_batch_tokens(padded.training, lengths) == 3 * 100
    packed = with_changes(lora(per_device_train_batch_size=3, max_length=100), {"training.packing": True})
    assert micro_batch_tokens(packed.training, lengths) == 300
    assert micro_batch_tokens(t, None) == 300


def test_the_fused_loss_head_is_far_smaller_than_full_logits(phi3):
    fused = estimate_memory(lora(gradient_checkpointing=True), phi3, "cuda")
    full = estimate_memory(lora(gradient_checkpointing=True), phi3, "cuda", fused_loss=False)
    n = 4 * 1024
    assert full.loss_head == n * V * (2 + 8)  # bf16 logits, fp32 upcast, fp32 log-softmax / gradient
    assert fused.loss_head == 4096 * 32768 * 2 + n * H * 4  # one bf16 tile and the fp32 input gradient
    assert full.total > fused.total


def test_qlora_on_a_cpu_adds_nothing_for_cuda():
    cpu = estimate_memory(preset_config("tiny-demo"), model_shape("tiny-phi3"), "cpu")
    assert cpu.overhead == 0 and cpu.precision == "fp32"


# --------------------------------------------------------------------------- fit and suggestions


def test_verdict_bands():
    assert verdict(85, 100) == "fits"
    assert verdict(86, 100) == "tight"
    assert verdict(100, 100) == "tight"
    assert verdict(101, 100) == "will not fit"


def test_a_run_that_cannot_fit_a_t4_gets_a_suggestion_that_fits(phi3):
    t4 = gpu_device("T4", "test")
    cfg = lora(per_device_train_batch_size=16, max_length=4096, gradient_checkpointing=False)
    fit = check_fit(cfg, phi3, t4)
    assert fit.verdict == "will not fit" and fit.estimate.total > 2 * t4.memory
    assert fit.suggestion is not None and fit.suggestion.changes
    applied = check_fit(with_changes(cfg, fit.suggestion.changes), phi3, t4)
    assert applied.verdict == "fits"
    assert applied.estimate.total == fit.suggestion.estimate.total
    effective = {k: v for k, v in fit.suggestion.changes.items() if "batch" in k or "accumulation" in k}
    if effective:  # a smaller batch keeps the effective batch
        batch = effective["training.per_device_train_batch_size"]
        assert batch * effective["training.gradient_accumulation_steps"] == 16 * 4


def test_the_gentlest_change_that_fits_is_suggested_alone(phi3):
    cfg = lora(per_device_train_batch_size=8, max_length=1024, gradient_checkpointing=False)
    fit = check_fit(cfg, phi3, gpu_device("A10G", "test"))
    assert fit.verdict == "will not fit"
    assert fit.suggestion.changes == {"training.gradient_checkpointing": True}


def test_changes_the_fit_does_not_need_are_dropped(phi3):
    small_gpu = Device("9 GiB", "cuda", 9 * GIB, None, "test")  # bf16 weights alone nearly fill it
    fit = check_fit(lora(gradient_checkpointing=False), phi3, small_gpu)
    # the walk passes checkpointing and every batch halving before 4-bit fits; the halvings are not needed
    assert fit.suggestion.changes == {"training.gradient_checkpointing": True, "model.load_in_4bit": True}


def test_a_run_that_fits_gets_no_suggestion(phi3):
    fit = check_fit(lora(), phi3, gpu_device("A10G", "test"))
    assert fit.verdict == "fits" and fit.suggestion is None


def test_nothing_is_suggested_when_no_change_can_fit(phi3):
    tiny_gpu = Device("toy", "cuda", 2 * GIB, None, "test")  # less than the 4-bit weights plus the overhead
    fit = check_fit(lora(), phi3, tiny_gpu)
    assert fit.verdict == "will not fit" and fit.suggestion is None
    assert "pick a GPU with more memory" in render_markdown(estimate_run(lora(), shape=phi3, device=tiny_gpu))


def test_the_space_config_names_the_assumed_gpu(tmp_path):
    assert space_hardware() == "a10g-large"  # this project's README front matter
    assert assumed_space_device().name == "A10G"
    bare = tmp_path / "README.md"
    bare.write_text("---\ntitle: x\n---\n# no hardware\n", encoding="utf-8")
    default = assumed_space_device(bare)
    assert default.name == "A10G" and "assumed a10g-small" in default.source
    other = tmp_path / "OTHER.md"
    other.write_text("---\nsuggested_hardware: t4-small\n---\n", encoding="utf-8")
    assert assumed_space_device(other).name == "T4"


# --------------------------------------------------------------------------- lengths


def test_truncation_shares_of_hand_made_rows():
    rows = [
        RowTokens(25, ((5, 25),)),  # exactly max_length: kept whole
        RowTokens(10, ((5, 10),)),
        RowTokens(20, ((8, 20),)),
        RowTokens(40, ((5, 15), (20, 40))),  # 15 reply tokens past position 25
        RowTokens(30, ((26, 30),)),  # the whole reply past 25
    ]
    report = length_report(rows, max_length=25)
    assert report.rows_truncated == 2 and report.share_rows_truncated == 2 / 5
    assert report.tokens_kept == 25 + 10 + 20 + 25 + 25
    assert report.assistant_tokens == 20 + 5 + 12 + 30 + 4
    assert report.assistant_tokens_cut == 15 + 4
    assert report.share_assistant_cut == pytest.approx(19 / 71)
    plain = length_report([25, 10, 20, 40, 30], max_length=25)
    assert plain.rows_truncated == 2 and plain.assistant_tokens is None and plain.share_assistant_cut is None


def test_the_histogram_covers_every_row_in_round_bins():
    lengths = [3, 17, 17, 250, 999, 1000]
    bins = histogram(lengths, n_bins=10)
    assert sum(b.count for b in bins) == len(lengths)
    assert {b.end - b.start for b in bins} == {100}
    assert bins[0].start == 0 and bins[-1].end > 1000
    assert [nice_step(x) for x in (0.5, 3, 7, 11, 40, 120)] == [1, 5, 10, 20, 50, 200]


def test_row_tokens_mark_what_the_assistant_only_loss_learns(phi3_tokenizer):
    from trainer.data import token_lengths

    rows = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"},
            {"role": "assistant", "content": "Hi again."},
        ],
    ]
    found = row_tokens(phi3_tokenizer, rows)
    assert [r.length for r in found] == token_lengths(phi3_tokenizer, rows)
    ids = phi3_tokenizer.apply_chat_template(rows[1], tokenize=True, return_dict=True)["input_ids"]
    learned = [phi3_tokenizer.convert_ids_to_tokens(ids[p]) for s, e in found[1].spans for p in range(s, e)]
    assert learned == ["▁Hello", ".", "<|end|>", "▁Hi", "▁again", ".", "<|end|>", "<|endoftext|>"]
    assert len(found[1].spans) == 2


# --------------------------------------------------------------------------- time


def test_training_tokens_for_epochs_and_for_max_steps():
    cfg = lora(per_device_train_batch_size=4, gradient_accumulation_steps=2, max_length=64, num_train_epochs=2.0)
    lengths = [100] * 50 + [32] * 50  # eval_fraction 0.1 holds out 10 %
    tokens, steps = training_tokens(cfg, lengths)
    assert tokens == int(2 * (64 + 32) / 2 * 90)
    assert steps == math.ceil(2 * math.ceil(90 / 4) / 2)
    stepped = with_changes(cfg, {"training.max_steps": 10})
    assert training_tokens(stepped, lengths) == (10 * 4 * 2 * 48, 10)
    sampled, _ = training_tokens(cfg, lengths, total_rows=1000)  # a preview of 100 of 1000 rows
    assert sampled == int(2 * 48 * 900)


def test_time_on_a_gpu_is_derived_from_peak_tflops(phi3):
    a100 = gpu_device("A100 80GB", "test")
    cfg = lora(max_length=1024)
    lengths = [512] * 1000
    rate = 312e12 * ASSUMED_MFU / flops_per_token(phi3, cfg, 512)
    assert flops_per_token(phi3, cfg, 512) == 6 * phi3.n_params + 6 * 25_165_824 + 6 * L * H * 512  # + recompute
    time = estimate_time(cfg, phi3, a100, lengths)
    assert time.throughput.tokens_per_s == pytest.approx(rate)
    assert time.seconds == pytest.approx(512 * 900 / rate)
    assert "35%" in time.throughput.source and not time.throughput.measured
    qlora = with_changes(cfg, {"model.load_in_4bit": True})
    assert throughput(a100, qlora, phi3, 512).tokens_per_s == pytest.approx(rate / QLORA_SLOWDOWN)


def test_several_gpus_share_the_steps_and_a_jobs_flavour_shows_its_cost(phi3):
    from trainer.runs.remote import Flavor
    from trainer.ui.train_tab import estimate_device

    cfg = lora(max_length=1024, per_device_train_batch_size=4)
    lengths = [512] * 1000  # 900 train rows
    one = estimate_time(cfg, phi3, gpu_device("A10G", "test"), lengths)
    flavor = Flavor("a10g-largex4", "4x Nvidia A10G - large", "4x A10G", 20.0)
    four = estimate_device(flavor, cfg)
    assert (four.name, four.count, four.usd_per_hour) == ("A10G", 4, 20.0)
    time = estimate_time(cfg, phi3, four, lengths)
    t = cfg.training  # each optimiser step: 4 rows x 4 GPUs x the accumulation steps
    assert time.steps == math.ceil(t.num_train_epochs * math.ceil(900 / 16) / t.gradient_accumulation_steps) == 15
    assert time.seconds == pytest.approx(one.seconds / 4) and time.tokens == one.tokens  # DDP: linear, same data
    text = "\n".join(render_time(time))
    assert (
        f"**Cost:** about **${20.0 * time.seconds / 3600:,.2f}** on Hugging Face Jobs a10g-largex4 at $20.00/h" in text
    )
    assert "on 4 × A10G" in text and "per GPU, 4 GPUs sharing the steps" in text
    assert estimate_device(flavor, with_changes(cfg, {"run.gpus": "one"})).count == 1  # the run asks for one GPU
    assert estimate_device(None, cfg) is None  # this machine
    assert "**Cost:**" not in "\n".join(render_time(one))  # this machine's GPU costs the user nothing extra
    stepped = with_changes(cfg, {"training.max_steps": 10})  # a fixed step count: each step reads 4x the rows
    assert training_tokens(stepped, lengths, processes=4) == (10 * 16 * t.gradient_accumulation_steps * 512, 10)


def test_padded_batches_cost_their_padding(phi3):
    padded = with_changes(lora(), {"training.padding_free": False})
    lengths = [100, 1000] * 50
    slow = estimate_time(padded, phi3, gpu_device("L4", "test"), lengths)
    fast = estimate_time(lora(), phi3, gpu_device("L4", "test"), lengths)
    assert slow.padding > 1.5 and slow.seconds > 1.5 * fast.seconds


def _timings(folder, lora_rate: float, qlora_rate: float):
    """A saved timing of the demo (as scripts/calibrate_demo.py writes it) with these rates."""
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "date": "2026-12-07",
        "machine": "x86_64, 2 CPU cores",
        "versions": "torch 2.13.0+cpu",
        "build_s": 51.0,
        "methods": {
            "lora": {"tokens_per_s": lora_rate, "overhead_s": 8.0},
            "qlora": {"tokens_per_s": qlora_rate, "overhead_s": 9.0},
        },
    }
    (folder / "2026-12-07.json").write_text(json.dumps(report))


def test_the_demo_s_time_is_per_method_from_its_saved_timing_and_counts_the_whole_run(tmp_path, monkeypatch):
    import trainer.estimate.plan as plan
    import trainer.tools.tiny

    _timings(tmp_path / "demo-cpu", 1000.0, 500.0)
    monkeypatch.setattr(plan, "DEMO_TIMINGS_DIR", tmp_path / "demo-cpu")
    monkeypatch.setattr(trainer.tools.tiny, "tiny_model_built", lambda: True)
    monkeypatch.setattr(plan.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    cpu = Device("CPU (2 cores)", "cpu", 8 * GIB, None, "this machine")
    cfg = preset_config("tiny-demo")
    lora_time = estimate_time(cfg, model_shape("tiny-phi3"), cpu, [27] * 240)
    cfg.model.load_in_4bit = True
    qlora_time = estimate_time(cfg, model_shape("tiny-phi3"), cpu, [27] * 240)
    assert lora_time.seconds == pytest.approx(80 * 8 * 27 / 1000.0) and lora_time.overhead_s == 8.0
    assert qlora_time.seconds == pytest.approx(2 * lora_time.seconds) and qlora_time.overhead_s == 9.0  # its own
    assert "QLORA" in qlora_time.throughput.source and "2026-12-07" in qlora_time.throughput.source
    text = render_time(lora_time)[0]
    assert text.startswith("**Time:** about **25 s** in all on CPU (2 cores): 17 s of training (80 steps") and (
        "8 s to load, evaluate and save." in text
    )
    assert lora_time.build_s == 0 and lora_time.load is None and not render_time(lora_time)[1].startswith("⚠️")

    monkeypatch.setattr(trainer.tools.tiny, "tiny_model_built", lambda: False)  # a machine that never built it
    first = estimate_time(preset_config("tiny-demo"), model_shape("tiny-phi3"), cpu, [27] * 240)
    assert first.build_s == 51.0 and "about **76 s** in all" in render_time(first)[0]
    assert "**51 s** first to build the demo model (once)" in render_time(first)[0]


def test_without_a_saved_timing_the_demo_uses_the_older_figure(tmp_path, monkeypatch):
    import trainer.estimate.plan as plan

    monkeypatch.setattr(plan, "DEMO_TIMINGS_DIR", tmp_path / "none")
    cpu = Device("CPU (2 cores)", "cpu", 8 * GIB, None, "this machine")
    time = estimate_time(preset_config("tiny-demo"), model_shape("tiny-phi3"), cpu, [27] * 240)
    assert time.throughput.tokens_per_s == TINY_CPU_TOKENS_PER_S and time.overhead_s == 0
    assert "evaluation and loading not included" in render_time(time)[0]


def test_a_busy_machine_is_said_to_make_the_run_take_longer(tmp_path, monkeypatch):
    import trainer.estimate.plan as plan

    assert busy_factor(0.9, 2) is None and busy_factor(1.1, 2) == 1.3 and busy_factor(4.5, 2) == 3.0
    monkeypatch.setattr(plan.os, "getloadavg", lambda: (4.5, 4.0, 3.0))
    monkeypatch.setattr(plan.os, "cpu_count", lambda: 2)
    cpu = Device("CPU (2 cores)", "cpu", 8 * GIB, None, "this machine")
    time = estimate_time(preset_config("tiny-demo"), model_shape("tiny-phi3"), cpu, [27] * 240)
    assert render_time(time)[1] == (
        "⚠️ This machine is busy (load average 4.5 on 2 cores): expect it to take longer, roughly ×3.0."
    )
    gpu = Device("NVIDIA H100 80GB HBM3", "cuda", 80 * GIB, find_gpu("NVIDIA H100 80GB HBM3"), "test")
    assert estimate_time(preset_config("lora"), model_shape("tiny-phi3"), gpu, [27] * 240).load is None  # CPU only


def test_the_projects_own_benchmark_is_preferred_for_its_device(tmp_path, phi3):
    result = {"method": "lora", "variant": "optimised", "tokens_per_s": 12345.0, "seq_len": 1024}
    report = {
        "date": "2026-12-01",
        "tiny": False,
        "environment": {"device": "NVIDIA H100 80GB HBM3"},
        "results": [result, {**result, "seq_len": 2048, "tokens_per_s": 999.0}],
    }
    (tmp_path / "h100").mkdir()
    (tmp_path / "h100" / "bench.json").write_text(json.dumps(report), encoding="utf-8")
    cfg = lora(gradient_checkpointing=False, max_length=1024)
    h100 = Device("NVIDIA H100 80GB HBM3", "cuda", 80 * GIB, find_gpu("NVIDIA H100 80GB HBM3"), "test")
    found = measured_throughput(h100, cfg, tmp_path)
    assert found.tokens_per_s == 12345.0 and found.measured and "h100/bench.json" in found.source
    assert throughput(h100, cfg, phi3, 1024, benchmarks=tmp_path) == found  # preferred to the derived figure
    assert not throughput(h100, cfg, phi3, 1024, benchmarks=tmp_path / "none").measured
    assert measured_throughput(gpu_device("A100 80GB", "test"), cfg, tmp_path) is None
    assert measured_throughput(h100, with_changes(cfg, {"model.load_in_4bit": True}), tmp_path) is None


# --------------------------------------------------------------------------- the panel


def test_the_panel_shows_lengths_memory_suggestion_and_time(phi3):
    rows = [RowTokens(n, ((n // 2, n),)) for n in (100, 200, 300, 2000)]
    cfg = lora(per_device_train_batch_size=16, max_length=1024, gradient_checkpointing=False)
    text = render_markdown(estimate_run(cfg, lengths=rows, shape=phi3, device=gpu_device("T4", "test")))
    assert "cuts 1 row (25.0%)" in text and "976 of 1,300 reply tokens (75.1%)" in text
    bars = {line.split()[0]: line for line in text.split("```")[1].strip().splitlines()}
    assert bars["1000-1200"].endswith("✂ max_length") and bars["2000-2200"].endswith("1  ✂ cut")
    assert not bars["800-1000"].endswith("cut")
    assert "❌ will not fit" in text and "**To fit:** turn on gradient checkpointing" in text
    assert "**Time:**" in text and "tokens/s" in text and "T4" in text


def test_one_call_estimates_the_tiny_demo_from_its_rows(phi3_tokenizer):
    from trainer.data import prepare

    cfg = preset_config("tiny-demo")
    rows = prepare(cfg.data, seed=0).train["messages"]
    cpu = Device("CPU (2 cores)", "cpu", 8 * GIB, None, "this machine")
    estimate = estimate_run(cfg, rows=rows, tokenizer=phi3_tokenizer, device=cpu)
    assert estimate.lengths.n_rows == len(rows) and estimate.lengths.assistant_tokens > 0
    assert estimate.fit.verdict == "fits" and estimate.fit.estimate.precision == "fp32"
    assert estimate.time.steps == 80 and estimate.time.throughput.measured
    assert "**Memory:** ✅ fits" in render_markdown(estimate)


def test_without_a_gpu_the_device_is_this_cpu_for_the_tiny_demo_and_the_spaces_gpu_otherwise(monkeypatch):
    import torch

    from trainer.estimate import detect_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detect_device("tiny-phi3").kind == "cpu"
    space = detect_device("microsoft/Phi-3-mini-4k-instruct")
    assert (space.name, space.kind) == ("A10G", "cuda") and "a10g-large" in space.source


def test_an_unreadable_model_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the config"):
        model_shape(str(tmp_path / "no-such-model"))


def test_importing_the_package_imports_no_torch():
    heavy = "('torch', 'transformers', 'trl', 'peft')"
    code = f"import sys, trainer.estimate; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
