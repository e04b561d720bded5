"""What training would see of a dataset: format, row counts, problems, token lengths and rendered rows.

`preview` reads the train split as training would (streaming the first rows of a Hub dataset, reading a local file
whole), normalises it and renders the first rows with the tokenizer's chat template; `format_preview` writes it as
text for `python -m trainer data inspect`.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import DataConfig, hint
from trainer.config.hints import render_hints
from trainer.data.formats import Message, RowStyle, choose_format, normalise
from trainer.data.load import hub_row_count, read_split, resolve_local_path
from trainer.data.pairs import pairs_note, pairs_table, preference_shape, read_pairs
from trainer.data.quality import QualityReport, format_quality, malformed_problem, quality_report
from trainer.paths import TOKENIZER_DIR
from trainer.phi3 import BUNDLED_TOKENIZER_MODELS

logger = logging.getLogger(__name__)

_STATS_BATCH = 512
PREVIEW_ROWS = 1000
"""Rows a preview reads, streamed, from a Hub dataset or a local file."""


@dataclass
class Preview:
    """What training would see of a dataset (for ``python -m trainer data inspect`` and the UI).

    Attributes:
        format: the row format used.
        n_rows: rows that normalised cleanly.
        n_input: rows read.
        problems: one line per malformed row.
        rendered: the first rows rendered with the tokenizer's chat template (text, not tokenised).
        token_lengths: ``min``, ``mean``, ``p50``, ``p95``, ``max`` tokens per row over all good rows.
        max_length: the token budget per row that training keeps.
        n_over_max_length: rows longer than `max_length` (training truncates them).
        sampled: only the first rows were read (streamed); the figures are of those rows.
        n_total: rows in the split, when known (a local file's count, or the Hub's metadata).
        rows: the rows read, normalised to chat messages (what the estimate of the run measures).
        measured: the rows as `preview(measure=...)` tokenised them (lengths, or `row_tokens` results), once.
        notes: what is done to the data as a whole (KTO rows left out, SFT on preference pairs' chosen replies).
        left_out: rows set aside on purpose (KTO rows labelled undesirable), not malformed.
        quality: the data-quality report of the rows read.
        blocked: why Start would stop (more than 5 % malformed without data.allow_malformed), or "".
        pair_lengths: preference pairs: the tokens of (prompt + chosen, prompt + rejected) per pair (what DPO, KTO
            and ORPO train on; the estimate of such a run measures them); empty for other data.
        pairs: the first pairs side by side (prompt, chosen, rejected).
    """

    format: str
    n_rows: int
    n_input: int
    problems: list[str]
    rendered: list[str]
    token_lengths: dict[str, float]
    max_length: int
    n_over_max_length: int
    sampled: bool = False
    n_total: int | None = None
    local: bool = False  # a local file, not a Hub dataset
    rows: list[list[Message]] = field(default_factory=list, repr=False)
    measured: list[Any] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    left_out: int = 0
    quality: QualityReport | None = None
    blocked: str = ""
    pair_lengths: list[tuple[int, int]] = field(default_factory=list, repr=False)
    pairs: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def extent(self) -> str:
        """Which rows the figures describe ("" when the whole split was read)."""
        if not self.sampled:
            return ""
        if self.local:
            total = f"it has {self.n_total:,} rows" if self.n_total else "its row count is known once it is read"
            return f"the first {self.n_input:,} rows of the file; {total}"
        total = f"the split has {self.n_total:,} rows" if self.n_total else "the Hub does not say how many rows it has"
        return f"the first {self.n_input:,} rows, streamed from the Hub; {total}"


def token_lengths(tokenizer: Any, rows: Sequence[list[Message]]) -> list[int]:
    """Tokens per row, as the chat template renders it (`apply_chat_template(..., tokenize=True)`).

    Args:
        tokenizer: a tokenizer with a chat template (the Phi-3 one).
        rows: normalised rows.

    Returns:
        One length per row, in order.
    """
    lengths: list[int] = []
    for start in range(0, len(rows), _STATS_BATCH):
        out = tokenizer.apply_chat_template(list(rows[start : start + _STATS_BATCH]), tokenize=True)
        ids = out["input_ids"] if isinstance(out, Mapping) else out  # transformers 5 returns a BatchEncoding
        lengths.extend(len(row_ids) for row_ids in ids)
    return lengths


def _percentile(ordered: Sequence[int], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """Summary of token lengths.

    Args:
        lengths: tokens per row (at least one).

    Returns:
        ``min``, ``mean``, ``p50``, ``p95``, ``max`` (tokens).
    """
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
        "p50": _percentile(ordered, 50),
        "p95": _percentile(ordered, 95),
        "max": ordered[-1],
    }


def preview(
    cfg: DataConfig,
    tokenizer: Any,
    max_length: int,
    n: int = 3,
    token: str | bool | None = None,
    rows: int = PREVIEW_ROWS,
    measure: Callable[[Any, Sequence[list[Message]]], Sequence[Any]] | None = None,
) -> Preview:
    """What training would see of the train split: format, counts, problems, rendered rows, token lengths.

    Only the first `rows` rows are read, streamed, of a Hub dataset (nothing else is downloaded) as of a local file
    (within a byte budget: `load.PREVIEW_BYTES`); the size of the whole comes from the Hub's metadata, or from the
    file's (`local_row_count`), where they have it.

    Args:
        cfg: the data settings.
        tokenizer: the model's tokenizer (its chat template renders the rows).
        max_length: tokens per row that training keeps.
        n: rows to render.
        token: Hugging Face token for private or gated datasets (never logged).
        rows: rows to read from a Hub dataset.
        measure: how the rows are tokenised, once (default `token_lengths`); the UI passes the estimate's
            `row_tokens`, whose results (each with a `length`) the preview keeps in `measured` for the estimate.

    Returns:
        The preview; format it with `format_preview`.

    Raises:
        DataError: the data cannot be loaded or no row can be used.
    """
    path = resolve_local_path(cfg.dataset_name)
    table, lines = read_split(cfg, cfg.dataset_train_split, token, limit=rows)
    fmt = choose_format(cfg, table.column_names, table[0] if len(table) else None)
    mapping, style = cfg.column_mapping or None, RowStyle.of(cfg)
    data = normalise(table, fmt, mapping, cfg.system_prompt, cfg.placeholders, lines, style)
    notes, pairs, pair_lengths = list(data.notes), [], []
    if (shape := preference_shape(table.column_names, table[0] if len(table) else None)) not in (None, "kto"):
        pairs = read_pairs(table, shape, style)  # what a preference method would train on
        notes.append(pairs_note(pairs, shape))
        sides = token_lengths(tokenizer, [p.prompt + reply for p in pairs for reply in (p.chosen, p.rejected)])
        pair_lengths = list(zip(sides[::2], sides[1::2], strict=True))
    measured = (measure or token_lengths)(tokenizer, data.rows)
    lengths = [m if isinstance(m, int) else m.length for m in measured]
    sampled = len(table) >= rows
    return Preview(
        format=data.format,
        n_rows=len(data.rows),
        n_input=data.n_input,
        problems=data.problems,
        rendered=[tokenizer.apply_chat_template(m, tokenize=False) for m in data.rows[: max(n, 0)]],
        token_lengths=length_stats(lengths),
        max_length=max_length,
        n_over_max_length=sum(1 for length in lengths if length > max_length),
        sampled=sampled,
        n_total=_row_count(cfg, path, token) if sampled else len(table),
        local=path is not None,
        rows=data.rows,
        measured=list(measured),
        notes=notes,
        left_out=data.left_out,
        quality=quality_report(data.rows, data.numbers, data.kinds),
        blocked=malformed_problem(data, cfg.allow_malformed) or "",
        pair_lengths=pair_lengths,
        pairs=pairs_table(pairs, n),
    )


def _row_count(cfg: DataConfig, path: Path | None, token: str | bool | None) -> int | None:
    """Rows of the whole train split, when known without reading it: a local file's count, or the Hub's metadata
    (a sliced split's: None, the slice's size is not the split's)."""
    if "[" in cfg.dataset_train_split:
        return None
    return local_row_count(path) if path is not None else hub_row_count(cfg, cfg.dataset_train_split, token)


def preview_tokenizer(model_name: str, token: str | bool | None = None) -> Any:
    """The tokenizer to preview with: the bundled Phi-3 one for Phi-3-mini, else the model's when it is at hand.

    token: for the Hub (False: none at all, not even the machine's own; see `trainer.runs.access.hub_token`).
    """
    from transformers import AutoTokenizer

    if model_name not in BUNDLED_TOKENIZER_MODELS:
        try:
            return AutoTokenizer.from_pretrained(model_name, token=token)
        except Exception:  # noqa: BLE001 - offline or private: the bundled tokenizer is the real Phi-3 one
            logger.info("preview: using the bundled Phi-3 tokenizer instead of %s's", model_name)
    if (bundled := getattr(_THREAD, "tokenizer", None)) is None:
        bundled = _THREAD.tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    return bundled


_THREAD = threading.local()
"""Each thread's copy of the bundled tokenizer, loaded once (0.1 s a load, on every Start and Preview before): a
public asset whatever the caller, and never shared between threads (a fast tokenizer is not safe to share)."""


def format_preview(p: Preview, max_problems: int = 10) -> str:
    """A preview as readable text for the command line.

    Args:
        p: the preview.
        max_problems: problem lines to show before "... and N more".

    Returns:
        Multi-line text: format, rows, problems, token lengths, rows over max_length, then the rendered rows.
    """
    stats = p.token_lengths
    left_out = f", {p.left_out} undesirable (KTO)" if p.left_out else ""
    lines = [
        f"format: {p.format}",
        f"rows:   {p.n_rows} usable of {p.n_input} ({len(p.problems)} malformed{left_out}; left out)",
    ]
    if p.extent:
        lines.append(f"        ({p.extent})")
    lines += [f"note:   {note}" for note in p.notes]
    if p.blocked:
        lines.append(f"blocked: {render_hints(p.blocked, 'cli')}")
    if p.problems:
        lines.append("problems:")
        lines += [f"  {problem}" for problem in p.problems[:max_problems]]
        if len(p.problems) > max_problems:
            lines.append(f"  ... and {len(p.problems) - max_problems} more")
    lines.append(
        f"length: min {stats['min']:.0f}, mean {stats['mean']:.1f}, p50 {stats['p50']:.0f}, "
        f"p95 {stats['p95']:.0f}, max {stats['max']:.0f} tokens per row (chat template applied)"
    )
    if p.n_over_max_length:
        lines.append(
            f"over max_length {p.max_length} tokens: {p.n_over_max_length} rows "
            f"({100 * p.n_over_max_length / max(p.n_rows, 1):.1f}%); training truncates them to {p.max_length} tokens"
        )
    else:
        lines.append(f"over max_length {p.max_length} tokens: 0 rows (nothing is truncated)")
    if p.quality is not None:
        lines += ["data checks:", render_hints(format_quality(p.quality, markdown=False), "cli")]
    for index, (prompt, chosen, rejected) in enumerate(p.pairs, start=1):
        lines += ["", f"--- pair {index} ---", f"prompt:   {prompt}", f"chosen:   {chosen}", f"rejected: {rejected}"]
    for index, text in enumerate(p.rendered, start=1):
        lines += ["", f"--- row {index} (rendered with the chat template) ---", text]
    return "\n".join(lines)


def reply_room_problem(
    tokenizer: Any, rows: Sequence[list[Message]], max_length: int, sample: int = 1000
) -> str | None:
    """The problem when no row leaves room for a reply: every prompt (up to its first reply) fills max_length.

    Training cuts rows to max_length from the start, so such a row has nothing left to learn. Checked on the first
    `sample` rows, with the tokenizer only (before any model loads).
    """
    prompts = []
    for messages in itertools.islice(rows, sample):  # a Dataset's column decodes only the rows taken
        first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
        prompts.append(messages[:first])
    if not prompts:
        return None
    lengths = []
    for start in range(0, len(prompts), _STATS_BATCH):
        out = tokenizer.apply_chat_template(prompts[start : start + _STATS_BATCH], add_generation_prompt=True)
        ids = out["input_ids"] if isinstance(out, Mapping) else out
        lengths.extend(len(row_ids) for row_ids in ids)
    if min(lengths) < max_length:
        return None
    return (
        f"training.max_length: every row's prompt is {min(lengths)} tokens or more, so no reply fits in "
        f"{max_length} tokens and nothing would be learned. "
        f"Raise it ({hint('training.max_length', 2 * min(lengths))})."
    )


def local_row_count(path: Path) -> int | None:
    """Rows in a local file, counted without loading it (Parquet: its metadata; JSON Lines: its non-blank lines;
    CSV: its records), or None where that takes reading it whole (a JSON array) or it cannot be read."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if suffix == ".jsonl":
            with path.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
                return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
    except Exception as exc:  # noqa: BLE001 - a count for a preview's note only; the reader reports the real problem
        logger.debug("could not count the rows of %s: %s", path, exc)
    return None
