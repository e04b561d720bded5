"""Preference rows: every shape people bring, as TRL's conversational pairs or KTO's labelled completions (pure).

A preference method (DPO, ORPO) trains on pairs: one prompt, a chosen reply and a rejected one; KTO trains on single
completions labelled desirable or not (a pair gives one of each). People bring them in many shapes (`SHAPES`); each
becomes a `Pair` of chat messages (``prompt`` ends before the replies, ``chosen`` and ``rejected`` are the assistant
turns after it), or an `Unpaired` completion with its label, which is what TRL's ``DPOTrainer``, ``KTOTrainer`` and
ORPO take as conversational data. `method_problem` says, before anything is queued, whether a method can train on a
shape. Supervised fine-tuning on pairs keeps today's path (`trainer.data.formats`: SFT on the chosen replies).

Example:
    >>> from trainer.data.pairs import to_pair
    >>> to_pair({"prompt": "Hi", "chosen": "Ahoy!", "rejected": "Hello."}, "prompt_pairs").chosen
    [{'role': 'assistant', 'content': 'Ahoy!'}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainer.config.methods import METHODS, PAIRED_METHODS
from trainer.data.formats import (
    RowStyle,
    _alpaca,
    _json_list,
    _preference,
    _prompt_completion,
    _role_content_list,
    _sharegpt,
)
from trainer.data.shapes import Message, RowError, sharegpt_message, type_name

SHAPES: dict[str, str] = {
    "sharegpt_pairs": "LLaMA-Factory ShareGPT pairs ('conversations', 'chosen'/'rejected' as {from, value})",
    "alpaca_pairs": "LLaMA-Factory Alpaca pairs ('instruction', 'input', 'chosen', 'rejected')",
    "prompt_pairs": "prompt/chosen/rejected (TRL's explicit prompt; UltraFeedback's whole conversations too)",
    "implicit_pairs": "chosen/rejected conversations without a prompt column (TRL's implicit prompt)",
    "hh_pairs": "Anthropic HH text (chosen/rejected as '\\n\\nHuman: ... \\n\\nAssistant: ...')",
    "kto": "labelled completions ('prompt'/'completion' or 'messages', and a true/false 'label')",
}
"""The preference shapes `preference_shape` recognises, with what each looks like (for messages)."""


@dataclass(frozen=True)
class Pair:
    """One preference pair as chat messages: the prompt, and the chosen and rejected replies that follow it."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]

    def trl_row(self) -> dict[str, list[Message]]:
        """The pair as TRL's conversational preference row."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


@dataclass(frozen=True)
class Unpaired:
    """One KTO example: a prompt, a completion, and whether the completion is desirable."""

    prompt: list[Message]
    completion: list[Message]
    label: bool

    def trl_row(self) -> dict[str, Any]:
        """The example as TRL's conversational unpaired preference row."""
        return {"prompt": self.prompt, "completion": self.completion, "label": self.label}


def preference_shape(columns: Sequence[str], sample: Mapping[str, Any] | None = None) -> str | None:
    """The preference shape of a dataset from its columns (and a first row), or None when it holds no preferences.

    A boolean ``label`` column makes labelled completions (KTO); ``chosen`` and ``rejected`` make pairs, told apart
    by the columns beside them and, without a prompt column, by whether ``chosen`` is text (HH) or a conversation.
    """
    names = set(columns)
    if {"chosen", "rejected"} <= names:
        if "conversations" in names:
            return "sharegpt_pairs"
        if "instruction" in names:
            return "alpaca_pairs"
        if "prompt" in names:
            return "prompt_pairs"
        chosen = (sample or {}).get("chosen")
        return "hh_pairs" if isinstance(chosen, str) and "Human:" in chosen else "implicit_pairs"
    if "label" in names and isinstance((sample or {}).get("label"), bool):
        if "messages" in names or {"prompt", "completion"} <= names:
            return "kto"
    return None


def method_problem(method: str, shape: str | None, data_format: str) -> str | None:
    """Why `method` cannot train on data of this preference shape (None when it can), with the fix.

    DPO and ORPO need pairs; KTO takes labelled completions or pairs (a pair gives one of each); SFT takes anything
    (pairs train their chosen replies). `data_format` names what the data is when it holds no preferences.
    """
    if method == "sft" or method not in METHODS:
        return None
    name = method.upper()
    if shape is None:
        return (
            f"training.method: {name} trains on preferences, but this data is {data_format} rows with no "
            "'chosen'/'rejected' pair and no true/false 'label'. Use method sft for it, or bring preference data "
            f"(for example prompt/chosen/rejected columns)."
        )
    if method in PAIRED_METHODS and shape == "kto":
        return (
            f"training.method: {name} needs a chosen and a rejected reply for each prompt, but this data is "
            f"{SHAPES['kto']}, one reply per row. Use method kto for labelled replies, or bring pairs."
        )
    return None


def to_pair(row: Mapping[str, Any], shape: str, style: RowStyle = RowStyle()) -> Pair:
    """One row of a paired shape as a `Pair` (see `SHAPES`).

    Each side is read as a whole conversation (the prompt turns, then that side's reply); the prompt is what the two
    conversations share, up to the first assistant turn where they part.

    Raises:
        RowError: a side is missing or malformed, or the two sides share no prompt.
    """
    chosen, rejected = (_conversation(row, side, shape, style) for side in ("chosen", "rejected"))
    return split_pair(chosen, rejected)


def split_pair(chosen: list[Message], rejected: list[Message]) -> Pair:
    """Split two whole conversations into the prompt they share and the replies where they part.

    Raises:
        RowError: they share no prompt, or a side has no assistant reply after it.
    """
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    # the replies start at an assistant turn, and each side keeps at least one (identical sides share everything)
    while shared and (shared >= min(len(chosen), len(rejected)) or chosen[shared]["role"] != "assistant"):
        shared -= 1
    if not shared:
        raise RowError("chosen and rejected share no prompt before their replies")
    for what, side in (("chosen", chosen), ("rejected", rejected)):
        if side[shared]["role"] != "assistant":
            raise RowError(f"{what} has no assistant reply after the prompt")
    return Pair(chosen[:shared], chosen[shared:], rejected[shared:])


def to_unpaired(row: Mapping[str, Any]) -> Unpaired:
    """One labelled row (KTO) as an `Unpaired` example: ``prompt``/``completion``, or ``messages`` whose last
    assistant turn is the completion.

    Raises:
        RowError: the label is not true/false, or the row has no prompt or completion.
    """
    label = row.get("label")
    if not isinstance(label, bool):
        raise RowError(f"label is {type_name(label)}, expected true or false")
    if "messages" in row:
        messages = _role_content_list(_json_list(row["messages"], "messages"), "messages")
        last = max((i for i, m in enumerate(messages) if m["role"] != "assistant"), default=-1) + 1
        if not 0 < last < len(messages):
            raise RowError("messages has no prompt before its last assistant reply")
        return Unpaired(messages[:last], messages[last:], label)
    messages = _prompt_completion(row.get("prompt"), row.get("completion"))
    prompt_turns = 1 if isinstance(row.get("prompt"), str) else len(row["prompt"])
    return Unpaired(messages[:prompt_turns], messages[prompt_turns:], label)


def unpaired_from_pairs(pairs: Sequence[Pair]) -> list[Unpaired]:
    """KTO examples from pairs: each chosen reply desirable, each rejected one not."""
    return [ex for p in pairs for ex in (Unpaired(p.prompt, p.chosen, True), Unpaired(p.prompt, p.rejected, False))]


def pair_counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs that teach nothing, counted for the preview: the same reply on both sides, or an empty reply."""

    def text(turns: list[Message]) -> str:
        return "".join(str(m.get("content") or "") for m in turns).strip()

    return {
        "pairs": len(pairs),
        "identical": sum(text(p.chosen) == text(p.rejected) for p in pairs),
        "empty": sum(not text(p.chosen) or not text(p.rejected) for p in pairs),
    }


def _conversation(row: Mapping[str, Any], side: str, shape: str, style: RowStyle) -> list[Message]:
    """One side of a pair as a whole conversation: the prompt turns, then that side's reply."""
    if side not in row:
        raise RowError(f"no {side!r} column")
    reply = row[side]
    if shape == "sharegpt_pairs":  # LLaMA-Factory: the prompt turns in conversations, each side one {from, value}
        turns = _sharegpt(_json_list(row.get("conversations"), "conversations"))
        if not isinstance(reply, Mapping):
            raise RowError(f"{side} is {type_name(reply)}, expected one {{from, value}} message")
        return [*turns, sharegpt_message(reply, len(turns) + 1)]
    if shape == "alpaca_pairs":  # LLaMA-Factory: instruction (+ input), each side the reply text
        return _alpaca({**row, "output": reply}, style.alpaca_template)
    prompt = row.get("prompt") if shape == "prompt_pairs" else None
    reply = _json_list(reply, side)
    if not isinstance(reply, (str, list, tuple)):
        raise RowError(f"{side} is {type_name(reply)}, expected text or a list of {{role, content}} messages")
    if prompt is not None and isinstance(reply, list) and reply and _role(reply[0]) != "assistant":
        prompt = None  # UltraFeedback: each side is the whole conversation, the prompt column repeats its start
    return _preference(prompt, reply)


def _role(item: Any) -> str | None:
    return item.get("role") if isinstance(item, Mapping) else None


def read_pairs(rows: Sequence[Mapping[str, Any]], shape: str, style: RowStyle = RowStyle()) -> list[Pair]:
    """The rows that read as pairs of the shape (malformed ones are left out: the method's own reading counts them)."""
    pairs = []
    for row in rows:
        try:
            pairs.append(to_pair(row, shape, style))
        except RowError:
            continue
    return pairs


def pairs_note(pairs: Sequence[Pair], shape: str) -> str:
    """The preview's sentence about preference pairs: how many, and how many teach nothing (the same reply on both
    sides, or an empty one)."""
    counts = pair_counts(pairs)
    return (
        f"Preference pairs ({SHAPES[shape]}): {counts['pairs']}; {counts['identical']} with the same reply on both "
        f"sides and {counts['empty']} with an empty reply (they teach DPO, KTO and ORPO nothing)."
    )


def pairs_table(pairs: Sequence[Pair], n: int = 3, width: int = 200) -> list[tuple[str, str, str]]:
    """The first `n` pairs side by side: (prompt, chosen, rejected), each turn's text joined by " / " and cut to
    `width` characters."""

    def said(turns: list[Message]) -> str:
        return " / ".join(str(m.get("content") or "") for m in turns)[:width]

    return [(said(p.prompt), said(p.chosen), said(p.rejected)) for p in pairs[:n]]
