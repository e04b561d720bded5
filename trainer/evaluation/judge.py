"""A judge model compares the base's and the tuned model's answers of a batch evaluation, pair by pair.

The judge is a chat model the user picks, reached through Hugging Face Inference Providers
(`huggingface_hub.InferenceClient.chat_completion`) with the user's own token, never the Space's. Each pair is
judged twice, the tuned answer first and then second, so a judge that favours a position favours each side once: the
tuned model's win rate is its share of the decisive judgments (a tie is none), with its 95 % Wilson interval. The
rubric is the user's to edit; the judge's reasons are kept beside each verdict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

DEFAULT_JUDGE = "Qwen/Qwen2.5-72B-Instruct"
DEFAULT_RUBRIC = (
    "You compare two answers to the same user message. Decide which answer better does what the user asked, in the "
    "style and with the content of the reference answer where one is given. Prefer answers that are correct, "
    "complete, on topic and well formed; length alone is no merit. If neither is better, it is a tie."
)
ANSWER_FORMAT = (
    'Reply with one JSON object and nothing else: {"winner": "1", "2" or "tie", "reason": "<one short sentence>"}.'
)
"""Added after the user's rubric (not editable): how the judge must answer so that its verdict can be read."""
MAX_JUDGE_TOKENS = 200
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text: the estimate before Start is "about"


@dataclass
class JudgeSettings:
    """What the judge does: which model, with what rubric, on how many of the evaluation's pairs.

    Attributes:
        model: the judge, a chat model on Hugging Face Inference Providers (e.g. Qwen/Qwen2.5-72B-Instruct).
        rubric: what makes an answer better (the answer format is added after it).
        rows: at most this many of the evaluation's pairs (the first ones).
        provider: the Inference Provider ("auto": the first one available for the model).
        usd_per_million_tokens: your provider's price for the model, to estimate the cost (unknown: None).
    """

    model: str = DEFAULT_JUDGE
    rubric: str = DEFAULT_RUBRIC
    rows: int = 100
    provider: str = "auto"
    usd_per_million_tokens: float | None = None

    def problems(self) -> list[str]:
        """What is wrong with these settings, each with its fix."""
        from trainer.config import repo_id_problem

        found = []
        if problem := repo_id_problem((self.model or "").strip()):
            found.append(problem.replace("hub.repo_id", "judge model"))
        if not (self.rubric or "").strip() or len(self.rubric) > 4000:
            found.append("rubric: say in up to 4,000 characters what makes an answer better.")
        if isinstance(self.rows, bool) or not isinstance(self.rows, int) or not 1 <= self.rows <= 1000:
            found.append(f"rows {self.rows!r}: a whole number from 1 to 1000.")
        price = self.usd_per_million_tokens
        if price is not None and (not isinstance(price, (int, float)) or not 0 <= price < 1000 or price != price):
            found.append("usd_per_million_tokens: a price from 0 to 1000 dollars, or empty when unknown.")
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeSettings:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown judge settings: {', '.join(unknown)}")
        return cls(**data)


def judge_messages(rubric: str, row: dict[str, Any], first: str, second: str) -> list[dict[str, str]]:
    """The judge's chat: the rubric and the answer format, then the user message, the reference and two answers."""
    parts = [f"User message:\n{row['prompt']}"]
    if row.get("reference"):
        parts.append(f"Reference answer:\n{row['reference']}")
    parts += [f"Answer 1:\n{first}", f"Answer 2:\n{second}"]
    return [
        {"role": "system", "content": f"{rubric.strip()}\n\n{ANSWER_FORMAT}"},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def parse_verdict(text: str) -> tuple[str, str]:
    """("1", "2" or "tie", the reason) from the judge's reply; a reply that names no winner is a tie, said so."""
    found = re.search(r"\{.*\}", text or "", re.S)
    if found:
        try:
            data = json.loads(found.group(0))
            winner = str(data.get("winner", "")).strip().lower()
            if winner in ("1", "2", "tie"):
                return winner, str(data.get("reason", "")).strip()
        except (ValueError, AttributeError):
            pass
    loose = re.search(r"winner\W{0,4}(1|2|tie)\b", text or "", re.I)
    if loose:
        return loose.group(1).lower(), (text or "").strip()[:300]
    return "tie", f"(no verdict could be read; counted as a tie) {(text or '').strip()[:200]}"


def side_of(winner: str, tuned_first: bool) -> str:
    """Which model a verdict favours: "tuned", "base" or "tie"."""
    if winner == "tie":
        return "tie"
    return "tuned" if (winner == "1") == tuned_first else "base"


def judge_pair(ask: Callable[[list[dict[str, str]]], tuple[str, int]], rubric: str, row: dict[str, Any]) -> dict:
    """Judge one pair in both orders. `ask(messages)` returns the judge's reply and the tokens it took."""
    tuned, base = row["tuned"]["text"], row["base"]["text"]
    judgments, tokens = [], 0
    for tuned_first in (True, False):
        first, second = (tuned, base) if tuned_first else (base, tuned)
        reply, used = ask(judge_messages(rubric, row, first, second))
        winner, reason = parse_verdict(reply)
        judgments.append({"tuned_first": tuned_first, "verdict": side_of(winner, tuned_first), "reason": reason})
        tokens += used
    return {"prompt": row["prompt"], "judgments": judgments, "tokens": tokens}


@dataclass(frozen=True)
class JudgeEstimate:
    pairs: int
    calls: int
    tokens: int
    usd: float | None

    def markdown(self, model: str) -> str:
        cost = f"about ${self.usd:,.2f}" if self.usd is not None else "cost: tokens × your provider's price"
        return (
            f"**Judge estimate:** {self.pairs} pairs × 2 orders = {self.calls} calls to {model}, about "
            f"{self.tokens:,} tokens; {cost} (billed to your Hugging Face account)."
        )


def estimate_judge(rows: Sequence[dict[str, Any]], settings: JudgeSettings) -> JudgeEstimate:
    """Calls and tokens before Start: each pair's chat in both orders, at ~4 characters a token, plus the answer."""
    rows = list(rows)[: settings.rows]
    chars = sum(
        len(settings.rubric)
        + len(ANSWER_FORMAT)
        + len(r["prompt"])
        + len(r.get("reference") or "")
        + len(r["base"]["text"])
        + len(r["tuned"]["text"])
        + 80
        for r in rows
    )
    tokens = 2 * (math.ceil(chars / CHARS_PER_TOKEN) + len(rows) * MAX_JUDGE_TOKENS // 2)
    price = settings.usd_per_million_tokens
    return JudgeEstimate(len(rows), 2 * len(rows), tokens, None if price is None else tokens * price / 1e6)


JUDGE_URL_ENV = "PHI3_STUDIO_JUDGE_URL"
"""An OpenAI-compatible chat-completion endpoint to judge with instead of Inference Providers (a self-hosted TGI or
vLLM server, or the tests' local one): its base URL, e.g. http://127.0.0.1:8080/v1."""


def inference_ask(
    settings: JudgeSettings, token: str | bool | None
) -> Callable[[list[dict[str, str]]], tuple[str, int]]:
    """`ask(messages) -> (reply, tokens)`: the judge model through Inference Providers with this token (greedy, at
    most MAX_JUDGE_TOKENS), transient failures retried; other failures raised as a HubError that says what to do."""
    import os

    from huggingface_hub import InferenceClient

    from trainer.hub.retry import hub_error, with_retries

    token = token if isinstance(token, str) else None
    url = os.environ.get(JUDGE_URL_ENV)
    client = (
        InferenceClient(base_url=url, token=token) if url else InferenceClient(provider=settings.provider, token=token)
    )

    def ask(messages: list[dict[str, str]]) -> tuple[str, int]:
        def call():
            return client.chat_completion(
                messages, model=settings.model, max_tokens=MAX_JUDGE_TOKENS, temperature=0.0, seed=0
            )

        try:
            out = with_retries(f"judging with {settings.model}", call, retries=3, backoff_s=2.0)
        except Exception as exc:  # noqa: BLE001 - worded for the user, token redacted
            raise hub_error(exc, token, f"asking the judge {settings.model}") from None
        usage = getattr(out, "usage", None)
        return out.choices[0].message.content or "", int(getattr(usage, "total_tokens", 0) or 0)

    return ask
