"""Will it fit, what to change if not, and how long it will take.

Fit: the estimated peak against the device's memory: fits (at most 85 %), tight (85-100 %), will not fit. When it
will not fit, these changes are taken in order, gentlest first, each step re-estimated: gradient checkpointing on;
the batch halved, again and again (accumulation doubled, so the effective batch stays); the 4-bit base (QLoRA, on a
GPU); max_length halved, again and again. The first point where the run fits is suggested, without the earlier
changes it does not need (so a change that fits on its own is suggested alone).

Time: training tokens / tokens per second, where

    tokens = epochs × sum over train rows of min(length, max_length)              (max_steps = -1)
           = max_steps × batch × accumulation × mean(min(length, max_length))     (max_steps > 0; packing: max_length)

padded batches (neither padding-free nor packing) also spend compute on padding, counted by batching the rows as
training does. Tokens per second come from, in order: the project's own benchmark results for this device
(`benchmarks/*/bench.json`, written by `python -m trainer bench`); figures measured for this project on a CPU; or
a rough figure from the GPU's peak: TFLOPS × MFU / FLOPs per token, with an assumed MFU of 35 % and

    FLOPs per token = 4·P_base + 6·P_lora + 6·L·h·s  (+ 2·P_base recomputed with gradient checkpointing)

(a frozen base needs its forward 2P and the gradient through it 2P, but no weight gradients; s = mean row length),
and QLoRA ~1.39x slower than LoRA (Raschka, "Practical Tips for Finetuning LLMs Using LoRA", Ahead of AI, 2023:
QLoRA saved 33 % memory for 39 % more training time).

DPO, KTO and ORPO (`memory.METHOD_COSTS`): an example of DPO or ORPO is a pair, both of whose sequences are trained
(tokens = min(chosen, max_length) + min(rejected, max_length)); KTO on pairs trains each side as an example of its
own. Each forward-only pass (DPO's reference; KTO's reference and KL passes) costs 2P per token more than SFT's 4P
(6P with checkpointing), so such a run's tokens per second are SFT's / (1 + 2·passes / 4).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trainer.config import RunConfig
from trainer.estimate.device import Device
from trainer.estimate.memory import (
    METHOD_COSTS,
    MemoryBreakdown,
    ModelShape,
    estimate_memory,
    generation_rows,
    with_changes,
)
from trainer.paths import PROJECT_ROOT
from trainer.phi3 import PHI3_MINI_CONFIG, TINY_MODEL_NAME

FITS, TIGHT = 0.85, 1.0
Verdict = Literal["fits", "tight", "will not fit"]
ASSUMED_MFU = 0.35
QLORA_SLOWDOWN = 1.39
BENCHMARKS_DIR = PROJECT_ROOT / "benchmarks"

DEMO_METHODS = ("lora", "qlora", "dpo", "grpo")
"""The methods the offline demo runs, each timed on a CPU by scripts/calibrate_demo.py (a method added: one more):
the tiny-demo preset with LoRA and with QLoRA, and tiny-demo-dpo."""
DEMO_TIMINGS_DIR = BENCHMARKS_DIR / "demo-cpu"
BUSY_SHARE = 0.5
"""A machine is busy when its load average is over this share of its cores (the app itself idles near 0)."""

TINY_CPU_TOKENS_PER_S = 330.0  # when no timing of the demo was saved (benchmarks/demo-cpu/)
TINY_CPU_SOURCE = (
    "measured for this project: the tiny-demo preset (TRL SFTTrainer, padding-free batches of ~220 tokens, "
    "fp32) trained at 331 non-padding tokens/s on 2 CPU cores (torch 2.13.0+cpu, transformers 5.24, trl 1.16), "
    "steps 6-80, 2026-11-30"
)
PHI3_CPU_TOKENS_PER_S = 32 / 3.8
PHI3_CPU_SOURCE = (
    "measured for this project (ARCHITECTURE.md): Phi-3-mini with LoRA in bf16, one forward + backward of 32 tokens "
    "in 3.8 s on 2 CPU cores; scaled by parameter count for other models"
)


@dataclass(frozen=True)
class Suggestion:
    """A change that makes the run fit: what to tell the user, the settings to change, and the new estimate."""

    text: str
    changes: dict[str, Any]
    estimate: MemoryBreakdown


@dataclass(frozen=True)
class Fit:
    """The estimate against the device's memory, with a suggestion when it will not fit."""

    estimate: MemoryBreakdown
    device: Device
    verdict: Verdict
    suggestion: Suggestion | None = None

    @property
    def share(self) -> float:
        """Estimated peak / available memory."""
        return self.estimate.total / self.device.memory if self.device.memory else math.inf


def verdict(total: int, memory: int) -> Verdict:
    """fits (<= 85 % of memory), tight (<= 100 %) or will not fit."""
    if total <= FITS * memory:
        return "fits"
    return "tight" if total <= TIGHT * memory else "will not fit"


def _candidates(cfg: RunConfig, device: Device, lengths: Sequence[int] | None) -> list[tuple[str, dict[str, Any]]]:
    """Single changes that save memory, gentlest first (batch and max_length: each halving in turn)."""
    t = cfg.training
    found = []
    if not t.gradient_checkpointing:
        found.append(("turn on gradient checkpointing (slower steps)", {"training.gradient_checkpointing": True}))
    batch = t.per_device_train_batch_size
    effective = batch * t.gradient_accumulation_steps
    while batch > 1:
        batch //= 2
        accumulation = math.ceil(effective / batch)
        found.append(
            (
                f"batch size {batch} with gradient accumulation {accumulation} (the same effective batch)",
                {"training.per_device_train_batch_size": batch, "training.gradient_accumulation_steps": accumulation},
            )
        )
    if not cfg.model.load_in_4bit and device.kind == "cuda":
        found.append(("load the base in 4-bit (QLoRA)", {"model.load_in_4bit": True}))
    length = t.max_length
    while length // 2 >= 64:
        length //= 2
        cut = (
            f"cuts {sum(n > length for n in lengths) / len(lengths):.0%} of the rows"
            if lengths
            else "cuts longer rows"
        )
        found.append((f"max_length {length} ({cut})", {"training.max_length": length}))
    return found


def check_fit(cfg: RunConfig, shape: ModelShape, device: Device, lengths: Sequence[int] | None = None) -> Fit:
    """Estimate the peak for `device`, give a verdict and, when it will not fit, a change that fits.

    The changes (`_candidates`) are accumulated in order, each step re-estimated (a later halving replaces an
    earlier one), until the run fits (at most 85 % of memory; failing that, at most 100 %); then each earlier change
    the fit does not need is dropped. None when even all of them together do not fit.
    """
    estimate = estimate_memory(cfg, shape, device.kind, lengths)
    found = verdict(estimate.total, device.memory)
    if found != "will not fit":
        return Fit(estimate, device, found)

    def fits(steps: list[tuple[str, dict[str, Any]]], goal: float) -> bool:
        return (
            estimate_memory(with_changes(cfg, _merge(steps)), shape, device.kind, lengths).total
            <= goal * device.memory
        )

    for goal in (FITS, TIGHT):
        steps: list[tuple[str, dict[str, Any]]] = []
        for step in _candidates(cfg, device, lengths):
            steps = [s for s in steps if not s[1].keys() <= step[1].keys()] + [step]
            if fits(steps, goal):
                for earlier in steps[:-1]:
                    if fits([s for s in steps if s is not earlier], goal):
                        steps = [s for s in steps if s is not earlier]
                changes = _merge(steps)
                after = estimate_memory(with_changes(cfg, changes), shape, device.kind, lengths)
                return Fit(estimate, device, found, Suggestion("; ".join(t for t, _ in steps), changes, after))
    return Fit(estimate, device, found)


def _merge(steps: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The settings of several changes, later ones winning."""
    return {key: value for _, changes in steps for key, value in changes.items()}


# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Throughput:
    """Training tokens per second on a device and where the figure comes from."""

    tokens_per_s: float
    source: str
    measured: bool
    method: str = "sft"  # the training method it was measured or derived for (else ÷ `compute_factor`)


def flops_per_token(shape: ModelShape, cfg: RunConfig, mean_length: float) -> float:
    """Training FLOPs per token of a LoRA run (module docstring), recomputation included."""
    base = shape.n_params
    lora = shape.lora_params(cfg.lora.r, cfg.lora.target_modules)
    attention = 6 * shape.layers * shape.hidden * mean_length
    return (6 if cfg.training.gradient_checkpointing else 4) * base + 6 * lora + attention


def measured_throughput(device: Device, cfg: RunConfig, folder: Path = BENCHMARKS_DIR) -> Throughput | None:
    """The project's own benchmark figure for this device, method and model size, if one was saved.

    Reads every `bench.json` under `folder` (see trainer.tools.bench); takes the variant that matches the config (the
    optimised path is padding-free without forced checkpointing) at the sequence length nearest max_length.
    """
    tiny = cfg.model.model_name_or_path == TINY_MODEL_NAME
    method = "qlora" if cfg.model.load_in_4bit else "lora"
    variant = "optimised" if cfg.training.padding_free and not cfg.training.gradient_checkpointing else "baseline"
    best = None
    for path in sorted(folder.glob("*/bench.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        where = str(report.get("environment", {}).get("device", ""))
        same_device = where.startswith("cpu") if device.kind == "cpu" else device.name.lower() in where.lower()
        if not same_device or bool(report.get("tiny")) != tiny:
            continue
        for row in report.get("results", []):
            if row.get("method") == method and row.get("variant") == variant and row.get("tokens_per_s"):
                gap = abs(int(row["seq_len"]) - cfg.training.max_length)
                if best is None or gap < best[0]:
                    source = f"measured by `python -m trainer bench` ({path.parent.name}/bench.json, {report['date']})"
                    best = (gap, Throughput(float(row["tokens_per_s"]), source, True))
    return best[1] if best else None


def throughput(
    device: Device, cfg: RunConfig, shape: ModelShape, mean_length: float, benchmarks: Path = BENCHMARKS_DIR
) -> Throughput:
    """Tokens per second for this run on this device: measured where the project has a figure, else derived.

    On a GPU the project's benchmark for it wins (`measured_throughput`); on a CPU the figures measured for this
    project at the demo's own batch shape (the CPU benchmark's 588 tokens/s are for 683-token micro-batches, four
    times the demo's); else the rough figure from the GPU's peak TFLOPS.
    """
    if device.kind == "cuda" and (found := measured_throughput(device, cfg, benchmarks)) is not None:
        return found
    if device.kind == "cpu":
        if cfg.model.model_name_or_path == TINY_MODEL_NAME:
            timed = method_of(cfg)
            if (timing := demo_timing(timed)) is not None:
                method = timed if timed in ("dpo", "grpo") else "sft"
                return Throughput(timing.tokens_per_s, timing.source, True, method)
            return Throughput(TINY_CPU_TOKENS_PER_S, TINY_CPU_SOURCE, True)
        phi3 = ModelShape.from_config(PHI3_MINI_CONFIG).n_params
        return Throughput(PHI3_CPU_TOKENS_PER_S * phi3 / shape.n_params, PHI3_CPU_SOURCE, True)
    if device.gpu is None:
        raise ValueError(f"no throughput figure for {device.name}")
    rate = device.gpu.tflops * 1e12 * ASSUMED_MFU / flops_per_token(shape, cfg, mean_length)
    source = (
        f"rough: {device.gpu.tflops:g} TFLOPS ({device.gpu.source}) × {ASSUMED_MFU:.0%} assumed MFU / FLOPs per token"
    )
    if cfg.model.load_in_4bit:
        rate /= QLORA_SLOWDOWN
        source += f", ÷ {QLORA_SLOWDOWN} for QLoRA"
    return Throughput(rate, source, False)


@dataclass(frozen=True)
class DemoTiming:
    """The offline demo timed on a CPU for one method (benchmarks/demo-cpu/<date>.json, by calibrate_demo.py).

    Attributes:
        tokens_per_s: the estimator's tokens for the demo / its training phase's seconds (in-loop evaluations in).
        overhead_s: the rest of a run: start, data, loading, evaluating before and after, sample replies, saving.
        build_s: building the demo model, the first time on a machine.
        source: where the figures come from, for the panel's footnote.
    """

    tokens_per_s: float
    overhead_s: float
    build_s: float
    source: str


def method_of(cfg: RunConfig) -> str:
    """Which of the demo's timings (`DEMO_METHODS`) a config's run is timed by: DPO's for DPO, else LoRA's or
    QLoRA's (KTO and ORPO: SFT's rate ÷ their `compute_factor`)."""
    if cfg.training.method in ("dpo", "grpo"):
        return cfg.training.method
    return "qlora" if cfg.model.load_in_4bit else "lora"


def demo_timing(method: str, folder: Path | None = None) -> DemoTiming | None:
    """The newest saved timing of the demo with this method (in `folder`, default `DEMO_TIMINGS_DIR`), or None."""
    for path in sorted((folder or DEMO_TIMINGS_DIR).glob("*.json"), reverse=True):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            found = report["methods"][method]
            source = (
                f"the offline demo with {method.upper()} timed by scripts/calibrate_demo.py on {report['machine']} "
                f"({report['versions']}), {report['date']}"
            )
            rate, overhead = float(found["tokens_per_s"]), float(found["overhead_s"])
            return DemoTiming(rate, overhead, float(report["build_s"]), source)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def busy_factor(load: float, cores: int) -> float | None:
    """How much longer a CPU run takes on a machine this loaded, roughly (a run keeps ~1.5 cores busy alone); None
    when the machine is not busy (load average at most `BUSY_SHARE` of its cores)."""
    if load <= BUSY_SHARE * cores:
        return None
    return max(1.0, (load + 1.5) / cores)


@dataclass(frozen=True)
class TimeEstimate:
    """How long the training loop takes, and for the offline demo the whole run.

    Attributes:
        tokens: non-padding tokens the loop trains on.
        padding: compute spent per token, padding included (1.0 for padding-free or packed batches).
        steps: optimiser steps.
        seconds: tokens / tokens per second (× padding for a derived figure, which counts all positions; measured
            figures are non-padding tokens per second already).
        overhead_s: the rest of the run (loading, evaluating, saving) where it was measured (the demo), else 0.
        build_s: building the demo model first, when this machine has not yet (else 0).
        load: (load average, cores) of this machine when it is busy (a CPU run then takes longer), else None.
        generation_s: of `seconds`, GRPO's generating of completions (0 when a measured rate includes it).
        generation: how `generation_s` was found.
    """

    tokens: int
    padding: float
    steps: int
    seconds: float
    throughput: Throughput
    device: Device
    overhead_s: float = 0.0
    build_s: float = 0.0
    load: tuple[float, int] | None = None
    generation_s: float = 0.0
    generation: str = ""


def padded_tokens(kept: Sequence[int], batch: int, seed: int = 0) -> int:
    """Tokens of padded batches: rows shuffled (seeded) into batches, each padded to its longest row."""
    order = list(kept)
    random.Random(seed).shuffle(order)
    return sum(len(chunk) * max(chunk) for chunk in (order[i : i + batch] for i in range(0, len(order), batch)))


def example_tokens(
    cfg: RunConfig, lengths: Sequence[int], pairs: Sequence[tuple[int, int]] | None = None
) -> list[int]:
    """Tokens each training example keeps: a row cut to max_length; for DPO and ORPO, a pair: both its sequences,
    each cut to max_length; for KTO on pairs, each side an example of its own."""
    t = cfg.training
    if pairs and t.method in ("dpo", "orpo"):
        return [min(int(c), t.max_length) + min(int(r), t.max_length) for c, r in pairs]
    if pairs and t.method == "kto":
        return [min(int(n), t.max_length) for pair in pairs for n in pair]
    return [min(int(n), t.max_length) for n in lengths]


def compute_factor(cfg: RunConfig) -> float:
    """Compute per trained token against SFT's (module docstring): 1 for SFT and ORPO, 1.5 for DPO, 2.5 for KTO
    (1.33 and 2.0 with gradient checkpointing)."""
    trained = 6 if cfg.training.gradient_checkpointing else 4
    t = cfg.training
    forward_only = int(cfg.grpo.beta > 0) if t.method == "grpo" else METHOD_COSTS[t.method].forward_only
    return 1 + 2 * forward_only / trained


def training_tokens(
    cfg: RunConfig,
    lengths: Sequence[int],
    total_rows: int | None = None,
    processes: int = 1,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> tuple[int, int]:
    """(non-padding tokens trained on, optimiser steps) of the run (module docstring).

    Args:
        cfg: the run config.
        lengths: token lengths of the dataset's rows (all rows, or a sample of them).
        total_rows: rows in the whole split when `lengths` is a sample (figures are scaled up). Without an eval
            split, `data.eval_fraction` of the rows are held out.
        processes: training processes (GPUs); each step takes a batch in each of them.
        pairs: preference pairs' (prompt + chosen, prompt + rejected) lengths: DPO's, KTO's, ORPO's examples.
    """
    t = cfg.training
    if t.method == "grpo":
        return grpo_tokens(cfg, lengths, total_rows, processes)
    kept = example_tokens(cfg, lengths, pairs) or [t.max_length * METHOD_COSTS[t.method].sequences]
    per_row = len(kept) / max(len(pairs or lengths), 1)  # KTO on pairs: two examples per pair
    mean = t.max_length if t.packing and t.method == "sft" else sum(kept) / len(kept)
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * processes
    if t.max_steps > 0:
        return int(t.max_steps * per_step * mean), t.max_steps
    held_out = cfg.data.eval_fraction if cfg.data.dataset_test_split is None else 0.0
    rows = max(int((total_rows or len(pairs or lengths)) * per_row * (1 - held_out)), 1)
    epoch_tokens = sum(kept) / len(kept) * rows
    sequences = math.ceil(epoch_tokens / t.max_length) if t.packing and t.method == "sft" else rows
    steps = math.ceil(
        t.num_train_epochs
        * math.ceil(sequences / (t.per_device_train_batch_size * processes))
        / t.gradient_accumulation_steps
    )
    return int(t.num_train_epochs * epoch_tokens), steps


def grpo_tokens(cfg: RunConfig, sequences: Sequence[int], total_rows: int | None, processes: int) -> tuple[int, int]:
    """(tokens trained on, optimiser steps) of a GRPO run: each step trains batch × accumulation (× processes)
    completions, `sequences` long (each prompt with a whole completion: an upper bound); an epoch answers every
    training prompt `num_generations` times."""
    t, g = cfg.training, cfg.grpo
    completions = t.per_device_train_batch_size * t.gradient_accumulation_steps * processes  # a step's
    mean = sum(sequences) / len(sequences) if sequences else t.max_length + g.max_completion_length
    steps = t.max_steps
    if steps <= 0:
        held_out = cfg.data.eval_fraction if cfg.data.dataset_test_split is None else 0.0
        prompts = max(int((total_rows or len(sequences)) * (1 - held_out)), 1)
        steps = math.ceil(t.num_train_epochs * prompts * g.num_generations / completions)
    return int(steps * completions * mean), steps


GPU_EFFICIENCY = 0.5
"""The share of the GPU's memory bandwidth a decode step reaches (each step reads every weight once)."""
TINY_CPU_DECODE_STEP_S = 0.05
"""Seconds per batched decode step of the tiny demo model on a CPU (16 rows): measured on 2 cores, 2026-12-07
(`python -m trainer eval` on the demo run: 24 prompts, 3 batches, 14 s with loading), rounded up."""


def decode_step_s(device: Device, shape: ModelShape, four_bit: bool, rows: int = 1) -> tuple[float | None, str]:
    """Seconds per decode step of a batch of `rows` on a GPU, and how the figure was found: every weight read once
    at half the memory bandwidth, or the batch's FLOPs at the assumed MFU, whichever is longer (None off a GPU)."""
    if device.gpu is None or not device.gpu.bandwidth_gbs:
        return None, f"no figure for {device.name}"
    read = shape.n_params * (0.5 if four_bit else 2) / (device.gpu.bandwidth_gbs * 1e9 * GPU_EFFICIENCY)
    compute = 2 * shape.n_params * rows / (device.gpu.tflops * 1e12 * ASSUMED_MFU)
    return max(read, compute), f"{device.name}: every weight read once per step at half its memory bandwidth"


def generation_time(cfg: RunConfig, shape: ModelShape, device: Device, steps: int) -> tuple[float, str]:
    """Seconds a GRPO run spends generating (each process, its share of the steps): every generation batch takes
    max_completion_length decode steps (an upper bound: a batch ends when all its completions stop); and how."""
    t, g = cfg.training, cfg.grpo
    rows = generation_rows(cfg)
    batches = math.ceil(steps * t.per_device_train_batch_size * t.gradient_accumulation_steps / rows)
    if device.kind == "cpu" and cfg.model.model_name_or_path == TINY_MODEL_NAME:
        step, how = TINY_CPU_DECODE_STEP_S, "the tiny model's measured decode step on 2 CPU cores"
    else:
        step, how = decode_step_s(device, shape, cfg.model.load_in_4bit, rows)
    if step is None:
        return 0.0, how
    return batches * g.max_completion_length * step, f"{batches} batches of {rows} completions × up to " + (
        f"{g.max_completion_length} decode steps; {how}"
    )


def estimate_time(
    cfg: RunConfig,
    shape: ModelShape,
    device: Device,
    lengths: Sequence[int],
    total_rows: int | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> TimeEstimate:
    """Training time: `training_tokens` / `throughput` (÷ `compute_factor` for DPO's and KTO's extra passes)."""
    t = cfg.training
    tokens, steps = training_tokens(cfg, lengths, total_rows, device.count, pairs)
    kept = example_tokens(cfg, lengths, pairs) or [t.max_length]
    padding = 1.0
    if not ((t.padding_free or t.packing) and t.method == "sft"):
        padding = padded_tokens(kept, t.per_device_train_batch_size, t.seed) / sum(kept)
    rate = throughput(device, cfg, shape, sum(kept) / len(kept))
    if (factor := compute_factor(cfg)) > 1 and rate.method != t.method:
        passes = "its reference's forward passes" if t.method == "dpo" else "its reference's and KL forward passes"
        rate = Throughput(rate.tokens_per_s / factor, f"{rate.source}; ÷ {factor:.2g} for {passes}", rate.measured)
    seconds = tokens * (1.0 if rate.measured else padding) / rate.tokens_per_s / device.count  # DDP: shared steps
    generating, how = 0.0, ""
    if t.method == "grpo" and rate.method != "grpo":  # the demo's GRPO timing has its generation in it already
        generating, how = generation_time(cfg, shape, device, steps)
        seconds += generating
    if device.kind != "cpu":
        return TimeEstimate(tokens, padding, steps, seconds, rate, device, generation_s=generating, generation=how)
    overhead = build = 0.0
    if cfg.model.model_name_or_path == TINY_MODEL_NAME and (timing := demo_timing(method_of(cfg))) is not None:
        from trainer.tools.tiny import tiny_model_built

        overhead, build = timing.overhead_s, 0.0 if tiny_model_built() else timing.build_s
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = (load, cores) if busy_factor(load, cores) is not None else None
    return TimeEstimate(tokens, padding, steps, seconds, rate, device, overhead, build, busy, generating, how)
