"""The benchmark harness on the tiny model (CPU): both variants run, figures and ratios are reported and saved."""

from __future__ import annotations

import json

import pytest

from trainer.__main__ import main
from trainer.phi3 import PHI3_MINI_CONFIG as PHI3_MINI
from trainer.tools.bench import flops_per_step, needs_checkpointing, peak_tflops
from trainer.tools.bench_data import synthetic_pairs, synthetic_rows

pytestmark = pytest.mark.slow


def test_tiny_bench_reports_both_variants_and_ratios(tiny_model_path, tmp_path, capsys):
    args = "bench --tiny --steps 3 --warmup-steps 1 --seq-lens 96 --batch-size 4 --liger --out"
    code = main([*args.split(), str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [
        (r["method"], r["variant"], r["padding_free"], r["gradient_checkpointing"]) for r in report["results"]
    ] == [
        ("lora", "baseline", False, True),
        ("lora", "optimised", True, False),
        ("qlora", "baseline", False, True),  # NF4 on bitsandbytes' CPU backend
        ("qlora", "optimised", True, False),
    ]
    for r in report["results"]:
        assert r["tokens_per_s"] > 0 and r["step_time_s"] > 0 and len(r["losses"]) == 3 and r["error"] is None
        assert r["peak_mem_gb"] is None and r["mfu"] is None  # CPU: no GPU memory, no bf16 peak
    assert [(q["method"], q["variant"]) for q in report["ratios"]] == [("lora", "optimised"), ("qlora", "optimised")]
    for ratio in report["ratios"]:
        assert ratio["speedup"] > 1.0  # padding-free, no recomputation: faster even on a CPU (1.3-2x measured)
        assert ratio["max_loss_rel_diff"] < 0.02  # same samples, same loss per step
    assert "no CUDA GPU" in report["liger"]  # asked for, not measurable here, and the report says why
    assert "Liger kernels not measured" in (tmp_path / "bench.md").read_text()
    assert {"device", "torch", "transformers", "trl", "peft"} <= report["environment"].keys()
    assert "4 * P_base" in report["flops_formula"]
    assert "| lora | 96 | optimised |" in (tmp_path / "bench.md").read_text()
    assert "speedup" in capsys.readouterr().out


def test_tiny_dpo_bench_compares_stock_dpo_with_the_studios_path(tiny_model_path, tmp_path):
    args = "bench --tiny --methods dpo --steps 3 --warmup-steps 1 --seq-lens 96 --batch-size 2 --out"
    assert main([*args.split(), str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    shown = [(r["method"], r["variant"], r["padding_free"], r["gradient_checkpointing"]) for r in report["results"]]
    assert shown == [
        ("dpo", "baseline", False, True),  # stock DPOTrainer defaults: checkpointing on
        ("dpo", "optimised", False, False),  # the studio: checkpointing only when needed; DPO pads either way
    ]
    assert all(r["tokens_per_s"] > 0 and len(r["losses"]) == 3 and r["error"] is None for r in report["results"])
    assert abs(report["results"][0]["losses"][0] - 0.6931) < 1e-3  # DPO's log 2: the reference is the policy
    (ratio,) = report["ratios"]
    assert ratio["method"] == "dpo" and ratio["max_loss_rel_diff"] < 0.02  # the same pairs, the same loss


def test_synthetic_pairs_prefer_each_rows_own_reply(phi3_tokenizer):
    rows = synthetic_rows(20, 96, phi3_tokenizer, seed=2)
    pairs = synthetic_pairs(rows)
    assert [p["prompt"] + p["chosen"] for p in pairs] == rows  # chosen: the row's own reply
    assert sum(p["rejected"] != p["chosen"] for p in pairs) >= 15  # rejected: another row's (shuffled)
    assert all(p["rejected"][0]["role"] == "assistant" for p in pairs)


def test_flops_formula():
    # 10 base params, 2 adapter params, 1 layer, hidden 3, two samples of 2 and 4 tokens
    assert flops_per_step(10, 2, 1, 3, [2, 4]) == 4 * 10 * 6 + 6 * 2 * 6 + 6 * 1 * 3 * (4 + 16)
    # DPO: the reference's forward adds 2 P_base and a third of the attention per token
    assert flops_per_step(10, 2, 1, 3, [2, 4], reference=True) == 6 * 10 * 6 + 6 * 2 * 6 + 8 * 1 * 3 * (4 + 16)


def test_checkpointing_estimate_for_phi3_mini():
    params, layers, hidden = 3_821_079_552, PHI3_MINI["num_hidden_layers"], PHI3_MINI["hidden_size"]
    assert not needs_checkpointing(params, layers, hidden, 4 * 2048, free_bytes=78 * 2**30)  # H100 80 GB
    assert needs_checkpointing(params, layers, hidden, 4 * 2048, free_bytes=22 * 2**30)  # a 24 GB card


def test_synthetic_rows_fit_and_have_a_long_tail(phi3_tokenizer):
    rows = synthetic_rows(200, 256, phi3_tokenizer, seed=1)
    lengths = sorted(
        len(phi3_tokenizer.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]) for m in rows
    )
    assert lengths[-1] <= 256 and lengths[0] >= 10
    assert lengths[-1] > 2.5 * lengths[len(lengths) // 2]  # long tail: the longest is far above the median
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and peak_tflops("cpu") is None


def test_a_failed_configuration_is_recorded_and_the_others_still_run(tiny_model_path, tmp_path, monkeypatch):
    import trainer.tools.bench as bench

    real = bench._run_one

    def flaky(model, method, seq_len, variant, *args):
        if variant == "baseline":
            raise RuntimeError("CUDA out of memory")
        return real(model, method, seq_len, variant, *args)

    monkeypatch.setattr(bench, "_run_one", flaky)
    report = bench.run_bench(True, ["lora"], [64], 3, 1, 2, tmp_path)
    assert [(r["variant"], r["error"]) for r in report["results"]] == [
        ("baseline", "RuntimeError: CUDA out of memory"),
        ("optimised", None),
    ]
    assert report["ratios"] == []  # no ratio against a failed baseline
    assert "failed: RuntimeError: CUDA out of memory" in (tmp_path / "bench.md").read_text()
    assert json.loads((tmp_path / "bench.json").read_text()) == report


def test_the_chat_bench_times_one_mixed_batch_against_two_generates(tiny_model_path, tmp_path, capsys):
    assert main(["bench-chat", "--tiny", "--max-new-tokens", "8", "--repeats", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "chat.json").read_text())
    for mode in ("batched", "sequential"):
        assert report[mode]["ttft_s"] > 0 and report[mode]["tokens_per_s"] > 0
    assert report["speedup"] == round(report["batched"]["tokens_per_s"] / report["sequential"]["tokens_per_s"], 3)
    assert "| one mixed batch |" in capsys.readouterr().out


def test_the_grpo_bench_times_generation_inside_each_step(tiny_model_path, tmp_path):
    from trainer.tools.bench_grpo import run_grpo_bench

    report = run_grpo_bench(True, 3, 1, tmp_path, completion_len=8, num_generations=4, batch_size=4, prompt_len=48)
    assert (report["completions_per_step"], report["num_generations"], report["completion_len"]) == (4, 4, 8)
    assert 0 < report["generation_share"] < 1 and report["generation_tokens_per_s"] > 0  # a part of each step
    assert report["step_time_s"] > 0 and report["training_tokens_per_s"] > 0 and len(report["losses"]) == 3
    assert json.loads((tmp_path / "grpo.json").read_text())["step_time_s"] == report["step_time_s"]
    assert "| step s | generating | generation tokens/s |" in (tmp_path / "grpo.md").read_text()
