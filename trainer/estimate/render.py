"""Know before you start: one call that estimates a run (lengths, memory, time) and renders it for the Train tab.

`estimate_run` gathers what the pieces need (model shape, device, token lengths) and `render_markdown` writes a
short Markdown panel: a text histogram of row lengths with the max_length cut, the truncation shares, the memory
breakdown against the device with a verdict and a suggested change, and the time with its tokens/s source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer.config import RunConfig
from trainer.data import Message
from trainer.estimate.device import Device, detect_device
from trainer.estimate.memory import MemoryBreakdown, ModelShape, model_shape
from trainer.estimate.plan import Fit, TimeEstimate, busy_factor, check_fit, compute_factor, estimate_time
from trainer.estimate.tokens import LengthReport, RowTokens, length_report, lengths_of, row_tokens

BAR_WIDTH = 24
VERDICT_ICONS = {"fits": "✅", "tight": "⚠️", "will not fit": "❌"}


@dataclass(frozen=True)
class RunEstimate:
    """Everything the panel shows: lengths (None without data), memory fit, time (None without data), and for DPO,
    KTO or ORPO what a pair costs (`method_note`)."""

    lengths: LengthReport | None
    fit: Fit
    time: TimeEstimate | None
    method: str | None = None


def estimate_run(
    cfg: RunConfig,
    rows: Sequence[list[Message]] | None = None,
    tokenizer: Any = None,
    lengths: Sequence[int] | Sequence[RowTokens] | None = None,
    total_rows: int | None = None,
    shape: ModelShape | None = None,
    device: Device | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> RunEstimate:
    """Estimate a run before it starts.

    Args:
        cfg: the run config as the form holds it.
        rows: normalised chat rows of the train split (all, or the preview's sample); with `tokenizer`, they are
            tokenised once (`row_tokens`) for lengths and assistant tokens.
        tokenizer: the model's tokenizer (e.g. `trainer.data.preview_tokenizer(model name)`).
        lengths: instead of rows: token lengths or `row_tokens` results already computed (cheap to re-render when
            only max_length or batch settings change).
        total_rows: rows in the whole split when the rows are a sample (scales the time estimate).
        shape: the base model's sizes (default: `model_shape(cfg.model.model_name_or_path)`).
        device: the device to estimate for (default: `detect_device`: this GPU, the CPU for the tiny demo, else the
            Space's suggested GPU).
        pairs: for preference data, each pair's (prompt + chosen, prompt + rejected) tokens (the preview's
            `pair_lengths`): what DPO, KTO and ORPO train on, two sequences per pair.

    Returns:
        The RunEstimate; render it with `render_markdown`.

    Raises:
        ValueError: the base model's config cannot be read (pass `shape`).
    """
    if lengths is None and rows is not None and tokenizer is not None:
        lengths = row_tokens(tokenizer, rows)
    shape = shape or model_shape(cfg.model.model_name_or_path)
    device = device or detect_device(cfg.model.model_name_or_path, cfg.run.gpus)
    plain = lengths_of(lengths)
    if cfg.training.method == "grpo":  # the lengths are the prompts': each trains with a whole completion
        return grpo_estimate(cfg, plain, total_rows, shape, device)
    report = length_report(lengths, cfg.training.max_length) if lengths else None
    pairs = list(pairs or []) if cfg.training.method != "sft" else []
    sequences = [n for pair in pairs for n in pair] or plain  # what a preference method's batches hold
    fit = check_fit(cfg, shape, device, sequences or None)
    time = estimate_time(cfg, shape, device, plain, total_rows, pairs) if plain or pairs else None
    return RunEstimate(report, fit, time, method_note(cfg, pairs) if pairs else None)


def grpo_estimate(
    cfg: RunConfig, prompts: Sequence[int], total_rows: int | None, shape: ModelShape, device: Device
) -> RunEstimate:
    """A GRPO run's estimate from its prompts' lengths: every completion is counted at max_completion_length (an
    upper bound), generated in batches, then trained on with its prompt."""
    g, t = cfg.grpo, cfg.training
    sequences = [n + g.max_completion_length for n in prompts]
    fit = check_fit(cfg, shape, device, sequences or None)
    time = estimate_time(cfg, shape, device, sequences, total_rows) if sequences else None
    note = (
        f"**GRPO:** each prompt is answered **{g.num_generations}** times, up to {g.max_completion_length} tokens "
        f"each; a step trains {t.per_device_train_batch_size * t.gradient_accumulation_steps} completions "
        f"({t.per_device_train_batch_size * t.gradient_accumulation_steps // g.num_generations} prompts), each "
        "counted here at its full length."
    )
    if prompts:
        note += f" Prompts: {plural(len(prompts), 'row')}, {sum(prompts) / len(prompts):.0f} tokens on average."
    if fit.estimate.generation:
        note += f" Generating holds about {size(fit.estimate.generation)} (KV cache and logits) beside the weights."
    if (factor := compute_factor(cfg)) > 1:
        note += f" beta > 0 adds the reference's forward pass: each token costs about {factor:.2g}× SFT's."
    return RunEstimate(None, fit, time, note)


def method_note(cfg: RunConfig, pairs: Sequence[tuple[int, int]]) -> str:
    """What a preference run's examples cost: its pairs' lengths against max_length, the sequences in each batch and
    the extra forward passes (`trainer.estimate.plan` module docstring)."""
    t = cfg.training
    method, n = t.method.upper(), len(pairs)
    chosen, rejected = (sum(side) / n for side in zip(*pairs, strict=True))
    cut = sum(c > t.max_length or r > t.max_length for c, r in pairs)
    text = (
        f"**{method}:** {plural(n, 'pair')}, {chosen:.0f} tokens with the chosen reply and {rejected:.0f} with the "
        f"rejected one on average; **max_length {t.max_length}** cuts {plural(cut, 'pair')} ({cut / n:.1%}) at the "
        "end of a reply, where the two may differ."
    )
    if t.method in ("dpo", "orpo"):
        text += f" Each step's batch of {plural(t.per_device_train_batch_size, 'pair')} trains both replies together: "
        text += f"{2 * t.per_device_train_batch_size} sequences."
    else:
        text += " Each reply is an example of its own (desirable or undesirable)."
    if (factor := compute_factor(cfg)) > 1:
        passes = "the reference's" if t.method == "dpo" else "the reference's and those of the KL term"
        text += f" The forward passes without gradients ({passes}) make each token cost about {factor:.2g}× SFT's."
    return text


def size(n: float) -> str:
    """Bytes as a short human figure (GiB / MiB)."""
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def plural(n: int, word: str) -> str:
    """'1 row', '3 rows'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """Seconds as '45 s', '12 min', '3.4 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def render_lengths(report: LengthReport) -> list[str]:
    """The histogram (a text bar chart; bars past max_length are marked) and the truncation shares."""
    top = max((b.count for b in report.bins), default=0) or 1
    label = max(len(f"{b.start}-{b.end}") for b in report.bins)
    lines = ["```"]
    for b in report.bins:
        bar = "█" * max(round(BAR_WIDTH * b.count / top), 1 if b.count else 0)
        mark = "  ✂ cut" if b.start >= report.max_length else ("  ✂ max_length" if b.end > report.max_length else "")
        lines.append(f"{f'{b.start}-{b.end}':>{label}} {bar:<{BAR_WIDTH}} {b.count}{mark}")
    lines.append("```")
    stats = report.stats
    lines.append(
        f"**Rows:** {report.n_rows:,}, {stats['mean']:.0f} tokens on average (p95 {stats['p95']:.0f}, "
        f"max {stats['max']:.0f}). **max_length {report.max_length}** cuts {plural(report.rows_truncated, 'row')} "
        f"({report.share_rows_truncated:.1%})"
        + (
            f" and {report.assistant_tokens_cut:,} of {report.assistant_tokens:,} reply tokens "
            f"({report.share_assistant_cut:.1%}) that the model would learn from."
            if report.share_assistant_cut is not None
            else "."
        )
    )
    return lines


def render_memory(fit: Fit) -> list[str]:
    """Verdict, the breakdown and the suggestion."""
    e: MemoryBreakdown = fit.estimate
    device = fit.device
    lines = [
        f"**Memory:** {VERDICT_ICONS[fit.verdict]} {fit.verdict}: about **{size(e.total)}** of {size(device.memory)} "
        f"on {device.name}, {fit.share:.0%} ({device.source}).",
        "",
        "| part | memory |",  # one row per part: readable in a narrow column
        "| --- | ---: |",
        f"| weights | {size(e.weights)} |",
        f"| adapter + optimiser | {size(e.adapter)} |",
        f"| activations | {size(e.activations)} |",
        f"| loss head | {size(e.loss_head)} |",
        f"| layer backward | {size(e.backward)} |",
        f"| overhead | {size(e.overhead)} |",
        *([f"| generation (GRPO) | {size(e.generation)} |"] if e.generation else []),
        "",
        f"{e.precision} base, {e.tokens:,} tokens in the largest micro-batch; the peak comes in the {e.peak_phase} "
        "(the loss head and the layer backward never hold memory at the same time).",
    ]
    if fit.suggestion is not None:
        lines += [""]
        lines.append(
            f"**To fit:** {fit.suggestion.text} → about {size(fit.suggestion.estimate.total)} "
            f"({fit.suggestion.estimate.total / device.memory:.0%})."
        )
    elif fit.verdict == "will not fit":
        lines += [""]
        lines.append("**To fit:** no setting change is enough on this device; pick a GPU with more memory.")
    return lines


def render_time(time: TimeEstimate) -> list[str]:
    """Duration, the tokens behind it and where tokens/s comes from."""
    padding = (
        f", {time.padding - 1:.0%} more for padding" if time.padding > 1.005 and not time.throughput.measured else ""
    )
    device = time.device
    on = f"{device.count} × {device.name}" if device.count > 1 else device.name
    per_gpu = f" per GPU, {device.count} GPUs sharing the steps" if device.count > 1 else ""
    trained = (
        f"{plural(time.steps, 'step')}, {time.tokens:,} tokens at {time.throughput.tokens_per_s:,.0f} tokens/s"
        f"{per_gpu}{padding}"
    )
    if time.overhead_s:  # the demo, timed whole: the run as a person waits for it
        total = time.seconds + time.overhead_s + time.build_s
        build = f", and **{duration(time.build_s)}** first to build the demo model (once)" if time.build_s else ""
        head = (
            f"**Time:** about **{duration(total)}** in all on {on}: {duration(time.seconds)} of training ({trained}), "
            f"{duration(time.overhead_s)} to load, evaluate and save{build}."
        )
    else:
        head = f"**Time:** about **{duration(time.seconds)}** of training on {on} ({trained}; evaluation and loading "
        head += "not included)."
    if time.generation_s:
        head += f" Of it, about **{duration(time.generation_s)}** generating completions ({time.generation})."
    lines = [head, f"<sub>tokens/s: {time.throughput.source}.</sub>"]
    if time.load is not None:
        load, cores = time.load
        lines.insert(
            1,
            f"⚠️ This machine is busy (load average {load:.1f} on {plural(cores, 'core')}): expect it to take longer, "
            f"roughly ×{busy_factor(load, cores):.1f}.",
        )
    if device.usd_per_hour is not None:
        cost = device.usd_per_hour * time.seconds / 3600
        figure = f"about **${cost:,.2f}**" if cost >= 0.005 else "under **$0.01**"
        lines.insert(
            1,
            f"**Cost:** {figure} on {device.source} at ${device.usd_per_hour:.2f}/h, billed to your "
            "Hugging Face account (loading the model and evaluating are billed too).",
        )
    return lines


def render_markdown(estimate: RunEstimate) -> str:
    """The Train tab's "know before you start" panel as Markdown (a little HTML for the footnote)."""
    lines: list[str] = []
    if estimate.lengths is not None and estimate.lengths.n_rows:
        lines += render_lengths(estimate.lengths) + [""]
    if estimate.method is not None:
        lines += [estimate.method, ""]
    lines += render_memory(estimate.fit)
    if estimate.time is not None:
        lines += [""] + render_time(estimate.time)
    return "\n".join(lines)
