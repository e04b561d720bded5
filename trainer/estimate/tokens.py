"""Token lengths against max_length: a histogram, the rows max_length cuts and the assistant tokens it cuts.

Lengths are tokens per row as the Phi-3 chat template renders it (the count `trainer.data.token_lengths` gives).
Assistant tokens are the ones the assistant-only loss learns: TRL swaps in its training copy of the chat template,
whose ``{% generation %}`` markers wrap each reply, its ``<|end|>`` and the final ``<|endoftext|>``, and masks the
rest (`return_assistant_tokens_mask`). Training cuts a row to its first max_length tokens, so

    rows truncated           = #{rows : length > max_length}
    assistant tokens cut     = sum over rows of #{assistant positions p : p >= max_length}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer.data import Message, length_stats, token_lengths

logger = logging.getLogger(__name__)

_BATCH = 512


@dataclass(frozen=True)
class RowTokens:
    """One rendered row: its length and where its assistant tokens are.

    Attributes:
        length: tokens in the row (chat template applied).
        spans: ``[start, end)`` token positions inside assistant turns (the assistant-only loss mask), or None when
            the tokenizer's template cannot mark them.
    """

    length: int
    spans: tuple[tuple[int, int], ...] | None = None

    @property
    def assistant(self) -> int | None:
        """Assistant tokens in the row (None when unknown)."""
        return None if self.spans is None else sum(end - start for start, end in self.spans)

    def assistant_cut(self, max_length: int) -> int | None:
        """Assistant tokens at positions >= max_length (lost when the row is cut to max_length)."""
        if self.spans is None:
            return None
        return sum(max(0, end - max(start, max_length)) for start, end in self.spans)


def _spans(mask: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Runs of 1 in a 0/1 mask as ``[start, end)`` pairs."""
    runs, start = [], None
    for position, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = position
        elif not bit and start is not None:
            runs.append((start, position))
            start = None
    return tuple(runs)


def row_tokens(tokenizer: Any, rows: Sequence[list[Message]]) -> list[RowTokens]:
    """Length and assistant spans of every row, in one tokenizer pass, as TRL's assistant-only loss sees them.

    Uses TRL's training chat template (`trl.chat_template_utils.get_training_chat_template`, the one `SFTTrainer`
    swaps in for `assistant_only_loss`). When TRL has no marked copy of the tokenizer's template, only the lengths
    are returned (`trainer.data.token_lengths`) and `RowTokens.spans` is None.

    Args:
        tokenizer: the model's tokenizer (the Phi-3 one).
        rows: normalised chat rows (lists of ``{role, content}``).

    Returns:
        One RowTokens per row, in order.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    try:
        marked = has_generation_markers(tokenizer.chat_template)
        template = None if marked else get_training_chat_template(tokenizer)
    except ValueError:  # TRL knows no training copy of this template: lengths only
        logger.info("no assistant-marked chat template for this tokenizer; assistant tokens are not counted")
        return [RowTokens(n) for n in token_lengths(tokenizer, rows)]
    found: list[RowTokens] = []
    for start in range(0, len(rows), _BATCH):
        out = tokenizer.apply_chat_template(
            list(rows[start : start + _BATCH]),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            chat_template=template,
        )
        found += [
            RowTokens(len(ids), _spans(mask))
            for ids, mask in zip(out["input_ids"], out["assistant_masks"], strict=True)
        ]
    return found


@dataclass(frozen=True)
class Bin:
    """One histogram bar: rows with ``start <= length < end``."""

    start: int
    end: int
    count: int


@dataclass(frozen=True)
class LengthReport:
    """Token lengths against max_length.

    Attributes:
        max_length: tokens per row that training keeps.
        n_rows: rows counted.
        stats: ``min``, ``mean``, ``p50``, ``p95``, ``max`` tokens per row (`trainer.data.length_stats`).
        bins: the length histogram.
        rows_truncated: rows longer than max_length.
        tokens_kept: sum over rows of min(length, max_length).
        assistant_tokens: assistant tokens in all rows (None when unknown).
        assistant_tokens_cut: of those, the ones at positions >= max_length.
    """

    max_length: int
    n_rows: int
    stats: dict[str, float]
    bins: list[Bin]
    rows_truncated: int
    tokens_kept: int
    assistant_tokens: int | None = None
    assistant_tokens_cut: int | None = None

    @property
    def share_rows_truncated(self) -> float:
        """Share of rows max_length cuts (0..1)."""
        return self.rows_truncated / self.n_rows if self.n_rows else 0.0

    @property
    def share_assistant_cut(self) -> float | None:
        """Share of assistant tokens max_length cuts (0..1; None when unknown)."""
        if self.assistant_tokens_cut is None or not self.assistant_tokens:
            return None if self.assistant_tokens is None else 0.0
        return self.assistant_tokens_cut / self.assistant_tokens


def nice_step(x: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is >= x."""
    if x <= 1:
        return 1
    power = 10 ** math.floor(math.log10(x))
    return next(int(m * power) for m in (1, 2, 5, 10) if m * power >= x)


def histogram(lengths: Sequence[int], n_bins: int = 10) -> list[Bin]:
    """About `n_bins` equal bins of a round width covering the lengths from the shortest row to the longest."""
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = nice_step((high - low + 1) / n_bins)
    counts: dict[int, int] = {}
    for n in lengths:
        counts[n // width] = counts.get(n // width, 0) + 1
    return [Bin(i * width, (i + 1) * width, counts.get(i, 0)) for i in range(low // width, high // width + 1)]


def length_report(rows: Sequence[int] | Sequence[RowTokens], max_length: int, n_bins: int = 10) -> LengthReport:
    """Histogram, truncation shares and kept tokens of rows at a max_length (pure; cheap to redo per max_length).

    Args:
        rows: token lengths, or `row_tokens` results (which also give the assistant tokens cut).
        max_length: `training.max_length`.
        n_bins: about how many histogram bars.

    Returns:
        The LengthReport (`n_rows` 0 and empty figures when there are no rows).
    """
    items = [r if isinstance(r, RowTokens) else RowTokens(int(r)) for r in rows]
    lengths = [r.length for r in items]
    known = all(r.spans is not None for r in items) and bool(items)
    return LengthReport(
        max_length=max_length,
        n_rows=len(items),
        stats=length_stats(lengths) if lengths else {},
        bins=histogram(lengths, n_bins),
        rows_truncated=sum(n > max_length for n in lengths),
        tokens_kept=sum(min(n, max_length) for n in lengths),
        assistant_tokens=sum(r.assistant or 0 for r in items) if known else None,
        assistant_tokens_cut=sum(r.assistant_cut(max_length) or 0 for r in items) if known else None,
    )


def lengths_of(rows: Sequence[int] | Sequence[RowTokens] | None) -> list[int]:
    """Plain token lengths from lengths or RowTokens (empty for None)."""
    return [r.length if isinstance(r, RowTokens) else int(r) for r in rows or []]
