"""GRPO benchmark: how long a step takes, how much of it is generating, and the memory it peaks at.

    python -m trainer bench-grpo --tiny --steps 4 --warmup-steps 1 --completion-len 16   # CPU, tiny Phi-3 (tests)
    python -m trainer bench-grpo --steps 12 --warmup-steps 2                              # GPU, Phi-3-mini shape

TRL's GRPOTrainer with the studio's LoRA (r 16 on the four fused projections, gradient checkpointing on, as the
studio's defaults) on synthetic chat prompts (the real Phi-3 tokenizer and template), `num_generations` completions
per prompt and a length reward. The model is the tiny Phi-3 on a CPU, or Phi-3-mini's architecture randomly
initialised on a GPU (nothing can be downloaded there): a random model never stops, so every completion runs to
`completion_len` tokens, the worst case the estimate counts.

Reported (steady state, warm-up steps left out): the step time; generation's share of it and its new tokens per
second (each `generate` call timed, GPU-synchronised); the tokens trained on per second of the rest of the step;
the peak GPU memory. Written to grpo.json and grpo.md in the output folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from trainer.phi3 import PHI3_PROJECTIONS
from trainer.tools.bench import _model, _StepTimer, _sync, common_args, environment
from trainer.tools.bench_data import synthetic_rows
from trainer.versions import versions_line


def run_grpo_bench(
    tiny: bool,
    steps: int,
    warmup_steps: int,
    out_dir: Path,
    completion_len: int = 256,
    num_generations: int = 8,
    batch_size: int = 8,
    prompt_len: int = 256,
) -> dict[str, Any]:
    """Run the GRPO benchmark, write grpo.json and grpo.md to `out_dir`, return the report."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from trainer.config import LoraSettings, ModelConfig
    from trainer.methods import checkpointing_settings
    from trainer.modeling import load_tokenizer, lora_config
    from trainer.phi3 import TINY_MODEL_NAME
    from trainer.rewards import reward_function
    from trainer.samples import prompt_messages

    on_gpu = torch.cuda.is_available()
    set_seed(0)
    model = _model(tiny, "lora", on_gpu)
    tokenizer = load_tokenizer(ModelConfig(model_name_or_path=TINY_MODEL_NAME))  # the real Phi-3 tokenizer
    prompts = [prompt_messages(row) for row in synthetic_rows(steps * batch_size, prompt_len, tokenizer)]
    config = GRPOConfig(
        output_dir="/tmp/bench-grpo",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        num_generations=num_generations,
        max_completion_length=completion_len,
        max_steps=steps,
        learning_rate=1e-5,
        **common_args(on_gpu),
        **checkpointing_settings(True),
    )
    peft = lora_config(LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(PHI3_PROJECTIONS)))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_function("length_target", target=completion_len)],
        args=config,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tokenizer,
        peft_config=peft,
    )
    timer = _StepTimer(TrainerCallback)
    trainer.add_callback(timer.callback)
    trainer.remove_callback(PrinterCallback)
    generations = _time_generate(trainer.model)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steady = slice(warmup_steps, steps)
    step_times, gen = timer.step_times[steady], generations[steady]
    seconds, gen_seconds = sum(step_times), sum(s for s, _ in gen)
    new_tokens = sum(n for _, n in gen)
    seen = [0.0] + [float(e["num_tokens"]) for e in trainer.state.log_history if "num_tokens" in e]
    trained = [b - a for a, b in zip(seen, seen[1:], strict=False)][steady]  # each step's prompt + completion tokens
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "environment": environment(),
        "tiny": tiny,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "completions_per_step": batch_size,
        "num_generations": num_generations,
        "completion_len": completion_len,
        "step_time_s": round(seconds / len(step_times), 3),
        "generation_share": round(gen_seconds / seconds, 3),
        "generation_tokens_per_s": round(new_tokens / gen_seconds, 1),
        "training_tokens_per_s": round(sum(trained) / (seconds - gen_seconds), 1) if trained else None,
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        "losses": [round(x, 5) for x in timer.losses],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grpo.json").write_text(json.dumps(report, indent=2))
    (out_dir / "grpo.md").write_text(markdown(report))
    return report


def _time_generate(model) -> list[tuple[float, int]]:
    """Time every `generate` call of the trainer's model (GPU-synchronised) and count its new tokens (all rows, to
    the longest: a batch runs until its last completion stops); returns the list it fills, one entry per call."""
    calls: list[tuple[float, int]] = []
    original = model.generate

    def generate(*args, **kwargs):
        _sync()
        started = time.perf_counter()
        out = original(*args, **kwargs)
        _sync()
        given = kwargs.get("input_ids", args[0] if args else None)
        sequences = out.sequences if hasattr(out, "sequences") else out
        new = (sequences.shape[1] - given.shape[1]) * sequences.shape[0] if given is not None else 0
        calls.append((time.perf_counter() - started, int(new)))
        return out

    model.generate = generate
    return calls


def markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown table."""
    env = report["environment"]
    mem = f"{report['peak_mem_gb']:.1f}" if report["peak_mem_gb"] is not None else "n/a"
    train = report["training_tokens_per_s"]
    return (
        "\n".join(
            [
                f"Device: {env['device']} · {versions_line(env)} · {report['date']}",
                "",
                f"GRPO, LoRA r 16, {report['completions_per_step']} completions per step ({report['num_generations']} "
                f"per prompt) of {report['completion_len']} tokens at most, steps {report['warmup_steps'] + 1}-"
                f"{report['steps']} measured.",
                "",
                "| step s | generating | generation tokens/s | training tokens/s (rest of the step) | peak GB |",
                "| ---: | ---: | ---: | ---: | ---: |",
                f"| {report['step_time_s']:.3f} | {100 * report['generation_share']:.0f} % | "
                f"{report['generation_tokens_per_s']:.0f} | {train if train is not None else 'n/a'} | {mem} |",
            ]
        )
        + "\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench-grpo` command's arguments."""
    parser.add_argument("--tiny", action="store_true", help="the tiny Phi-3 on the CPU (for tests)")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps (default: 12)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps excluded from the figures")
    parser.add_argument("--completion-len", type=int, default=256, help="max_completion_length (default: 256)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for grpo.json and grpo.md")


def cmd_bench_grpo(args: argparse.Namespace) -> int:
    """`bench-grpo`: GRPO's step time, generation and memory, written to --out."""
    from trainer.config import ConfigError

    if args.warmup_steps >= args.steps:
        raise ConfigError(["--warmup-steps: must be smaller than --steps so some steps are measured."])
    run_grpo_bench(args.tiny, args.steps, args.warmup_steps, args.out, completion_len=args.completion_len)
    print((args.out / "grpo.md").read_text(), end="")
    return 0
