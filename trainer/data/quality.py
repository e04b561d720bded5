"""The data-quality report of a preview: what in the rows deserves a look before training, in one pass (pure).

Computed over the normalised rows and the reasons rows were left out: exact duplicates, empty replies and rows
without an assistant turn (both left out), very short and very long replies, unfilled template slots and the mix of
writing systems. Shown as a compact table in the Train tab's preview and by ``python -m trainer data inspect``.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trainer.config import hint
from trainer.data.formats import Normalised
from trainer.data.shapes import Message, placeholder_slots

MAX_MALFORMED_SHARE = 0.05
"""Above this share of unreadable rows, training needs `data.allow_malformed` (the rest are trained on)."""

SHORT_REPLY_WORDS = 2
"""A reply of fewer words than this (one word, or none) is flagged as very short."""
LONG_REPLY_WORDS = 2000
"""A reply of more words than this is flagged as very long (it likely runs past max_length)."""
SCRIPT_SAMPLE_CHARS = 200
"""Letters read per row to tell its writing system (cheap enough for a 1,000-row preview)."""
EXAMPLES = 3


@dataclass
class QualityReport:
    """What a preview found in the rows (counts, with a few example row numbers where they help).

    Attributes:
        rows: usable rows checked.
        duplicates: rows that repeat an earlier row exactly; `duplicate_examples` as (row, the row it repeats).
        empty_replies: rows left out for an empty or whitespace-only assistant reply.
        no_assistant: rows left out because they have no assistant turn.
        short_replies / long_replies: rows with a very short (< 2 words) / very long (> 2,000 words) reply.
        slots: template slot -> rows whose replies hold it unfilled ({{name}}, {name}); `slot_rows`: rows with any.
        scripts: writing system -> share of rows (by the letters of each row).
    """

    rows: int
    duplicates: int = 0
    duplicate_examples: list[tuple[int, int]] = field(default_factory=list)
    empty_replies: int = 0
    no_assistant: int = 0
    short_replies: int = 0
    short_examples: list[int] = field(default_factory=list)
    long_replies: int = 0
    long_examples: list[int] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)
    slot_rows: int = 0
    scripts: dict[str, float] = field(default_factory=dict)


def _script(text: str) -> str | None:
    """The writing system most of the letters of `text` are in (LATIN, CYRILLIC, CJK, ...), or None."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            word = name.split(" ", 1)[0]
            counts["JAPANESE" if word in ("HIRAGANA", "KATAKANA") else word] += 1
            if sum(counts.values()) >= SCRIPT_SAMPLE_CHARS:
                break
    return counts.most_common(1)[0][0].title() if counts else None


def quality_report(
    rows: Sequence[list[Message]], numbers: Sequence[int] | None = None, kinds: Mapping[str, int] | None = None
) -> QualityReport:
    """The report over normalised rows, in one pass.

    Args:
        rows: the usable rows.
        numbers: each row's number in the input (from 1); defaults to 1, 2, ...
        kinds: how many rows were left out for each kind of problem (`Normalised.kinds`).
    """
    numbers = list(numbers) if numbers is not None else list(range(1, len(rows) + 1))
    kinds = kinds or {}
    report = QualityReport(rows=len(rows), empty_replies=kinds.get("empty reply", 0))
    report.no_assistant = kinds.get("no assistant turn", 0)
    seen: dict[str, int] = {}
    slots: Counter[str] = Counter()
    scripts: Counter[str] = Counter()
    for number, messages in zip(numbers, rows, strict=True):
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if key in seen:
            report.duplicates += 1
            if len(report.duplicate_examples) < EXAMPLES:
                report.duplicate_examples.append((number, seen[key]))
        else:
            seen[key] = number
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        words = [len(reply.split()) for reply in replies]
        if min(words) < SHORT_REPLY_WORDS:
            report.short_replies += 1
            report.short_examples += [number] if len(report.short_examples) < EXAMPLES else []
        if max(words) > LONG_REPLY_WORDS:
            report.long_replies += 1
            report.long_examples += [number] if len(report.long_examples) < EXAMPLES else []
        found = {slot for reply in replies for slot in placeholder_slots(reply)}
        slots.update(found)
        report.slot_rows += bool(found)
        if script := _script(" ".join(m["content"] for m in messages if m["role"] != "system")):
            scripts[script] += 1
    report.slots = dict(slots.most_common())
    total = sum(scripts.values())
    report.scripts = {name: round(n / total, 3) for name, n in scripts.most_common()} if total else {}
    return report


def _rows(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def quality_lines(report: QualityReport) -> list[tuple[str, str, str]]:
    """The report as (check, count, detail) lines, worst first; a check with nothing found says so."""
    pct = (lambda n: f"{n} ({100 * n / report.rows:.1f} %)") if report.rows else str
    dup = "; ".join(f"row {a} = row {b}" for a, b in report.duplicate_examples)
    slot_text = ", ".join(f"{{{{{name}}}}} in {n} rows" for name, n in report.slots.items())
    scripts = ", ".join(f"{name} {100 * share:.0f} %" for name, share in report.scripts.items())
    return [
        ("exact duplicate rows", pct(report.duplicates), dup and f"e.g. {dup}; each is trained on again"),
        ("empty replies", str(report.empty_replies), "left out" if report.empty_replies else ""),
        ("rows without an assistant turn", str(report.no_assistant), "left out" if report.no_assistant else ""),
        (
            f"very short replies (< {SHORT_REPLY_WORDS} words)",
            pct(report.short_replies),
            report.short_examples and f"e.g. rows {_rows(report.short_examples)}",
        ),
        (
            f"very long replies (> {LONG_REPLY_WORDS:,} words)",
            pct(report.long_replies),
            report.long_examples and f"e.g. rows {_rows(report.long_examples)}",
        ),
        (
            "unfilled template slots",
            pct(report.slot_rows),
            slot_text and f"{slot_text}: fill them in ({hint('data.placeholders', _slot_example(report))})",
        ),
        ("writing systems", "", scripts),
    ]


def _slot_example(report: QualityReport) -> str:
    return ",".join(f"{name}=..." for name in report.slots)


def format_quality(report: QualityReport, markdown: bool) -> str:
    """The report as a compact table: Markdown for the web preview, aligned text for the command line."""
    lines = quality_lines(report)
    if markdown:  # no text of the rows is shown: counts, row numbers, script names and slot names ([\w.-] only)
        body = [f"| {check} | {count} | {detail or ''} |" for check, count, detail in lines]
        return "\n".join(["| data check | rows | details |", "| --- | ---: | --- |", *body])
    width = max(len(check) for check, _, _ in lines)
    return "\n".join(f"  {check:<{width}}  {count:>12}  {detail or ''}".rstrip() for check, count, detail in lines)


def malformed_problem(data: Normalised, allow: bool) -> str | None:
    """The problem when more than `MAX_MALFORMED_SHARE` of the rows cannot be read and that was not accepted.

    Args:
        data: the normalised rows.
        allow: `data.allow_malformed` (train on the usable rows anyway).

    Returns:
        ``"data.allow_malformed: ..."`` with the share and the first reasons, or None.
    """
    bad = len(data.problems)
    if allow or bad <= MAX_MALFORMED_SHARE * data.n_input:
        return None
    reasons = "; ".join(data.problems[:3]) + ("; ..." if bad > 3 else "")
    return (
        f"data.allow_malformed: {bad} of {data.n_input} rows ({100 * bad / data.n_input:.1f} %) cannot be read "
        f"({reasons}). Fix them, or train on the {len(data.rows)} usable rows ({hint('data.allow_malformed')})."
    )
