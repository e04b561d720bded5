"""The benchmark's data: synthetic chat rows with Phi-3's real tokenizer and a long-tailed length distribution, and
preference pairs made from them (for `trainer.tools.bench`)."""

from __future__ import annotations

import math
import random
from typing import Any

WORDS = (
    "the sea be wide and the wind be strong while the crew sails past old islands full of gold "
    "rain falls on the deck and the captain reads a map by lamp light before dawn"
).split()


def synthetic_rows(n: int, max_tokens: int, tokenizer, seed: int = 0) -> list[list[dict[str, str]]]:
    """n chat rows whose rendered lengths follow a long tail (median ~ max/4) capped at max_tokens."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        target = min(max_tokens, max(24, int(rng.lognormvariate(math.log(max_tokens / 4), 0.7))))
        words = [rng.choice(WORDS) for _ in range(target)]
        cut = max(3, len(words) // 4)
        messages = [
            {"role": "user", "content": " ".join(words[:cut])},
            {"role": "assistant", "content": " ".join(words[cut:])},
        ]
        while token_count(tokenizer, messages) > max_tokens:  # trim the reply until the row fits
            reply = messages[1]["content"].split()
            messages[1]["content"] = " ".join(reply[: int(len(reply) * 0.9) - 1])
        rows.append(messages)
    return rows


def token_count(tokenizer, messages) -> int:
    """Tokens of a conversation as the chat template renders it."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    return len(out["input_ids"])


def synthetic_pairs(rows: list[list[dict[str, str]]], seed: int = 0) -> list[dict[str, Any]]:
    """Preference pairs from chat rows: each row's prompt, its own reply as chosen, another row's reply as rejected."""
    rng = random.Random(seed)
    replies = [row[1] for row in rows]
    rng.shuffle(replies)
    return [
        {"prompt": row[:1], "chosen": row[1:], "rejected": [other]} for row, other in zip(rows, replies, strict=True)
    ]
