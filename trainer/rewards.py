"""Built-in reward functions for GRPO: pure Python, no user code, each scoring completions in [-1, 1] (most in [0, 1]).

Each function takes the completions (text, or TRL's conversational form: a list with one assistant message) and,
where it needs them, the dataset's reference column for the same rows, and returns one score per completion. Only the
completion is scored, never the prompt. `reward_function` wraps one for TRL's `GRPOTrainer` (called as
``fn(prompts=..., completions=..., **columns)``; TRL weighs them with `GRPOConfig.reward_weights` and logs each one's
mean as ``rewards/<name>/mean``); `total_reward` is the same weighted sum, for the held-out evaluation.

| name | scores | needs |
| --- | --- | --- |
| answer_match | 1 when the final answer equals the reference's (numbers by value), else 0 | a column |
| format_regex | 1 when the whole completion matches the pattern, else 0 | a pattern |
| think_format | 1 for ``<think>`` reasoning ``</think>`` then a non-empty answer, else 0 | |
| valid_json | 1 when the completion (or its fenced ``json`` block) parses as JSON, else 0 | |
| tool_call | 1 for a JSON call of a listed tool with its required arguments, 0.5 with some missing | a column |
| length_target | 1 at the target word count, falling linearly to 0 at 0 or twice the target | a target |
| words | the share of required words present, minus 1 if a forbidden word is present | word lists |

The final answer of a completion (and of a reference such as GSM8K's solution) is, in order: the last ``\\boxed{...}``,
the text after GSM8K's ``####``, the text after the last "answer is" / "Answer:", else the last line. Where the
reference's answer is a number, the completion's is the last number in its final answer ("72 clips" gives 72).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

REWARDS = ("answer_match", "format_regex", "think_format", "valid_json", "tool_call", "length_target", "words")
"""The built-in reward functions, by name."""

NEEDS_COLUMN = {"answer_match": "the reference answer (e.g. answer, solution)", "tool_call": "the tools (e.g. tools)"}
"""The rewards that read a dataset column, and what it must hold."""

ZERO_SPREAD_STEPS = 5
"""Logged steps in a row with (nearly) every group's rewards equal before the run warns: nothing to learn from."""

NUMBER = re.compile(r"^[-+]?[$€£]?\d[\d,]*(\.\d+)?%?$|^[-+]?[$€£]?\.\d+%?$")
THINK = re.compile(r"^\s*<think>(?!.*<think>)(.+?)</think>\s*(\S.*)$", re.DOTALL)
FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
ANSWER_IS = re.compile(r"(?:answer is|answer:)\s*(.+)", re.IGNORECASE)


def text_of(completion: Any) -> str:
    """The completion's text: a string as it is, TRL's conversational completion as its messages' contents."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion)


def _last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, nested braces included."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def final_answer(text: str) -> str:
    """The final answer a text gives (module docstring): boxed, GSM8K's ``####``, "the answer is", the last line."""
    if (boxed := _last_boxed(text)) is not None:
        return boxed
    if "####" in text:
        return text.rsplit("####", 1)[1]
    if found := ANSWER_IS.findall(text):
        return found[-1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def normalise(answer: str) -> str:
    """An answer in a canonical form: a number as its value (``$1,000.50`` -> ``1000.5``), else lower-case words."""
    text = answer.strip().strip(".").strip()
    if NUMBER.match(text):
        digits = text.replace(",", "").strip("$€£%").replace("$", "")
        try:
            value = Decimal(digits.lstrip("+"))
        except InvalidOperation:
            return text.lower()
        return format(value.normalize(), "f") if value != 0 else "0"
    return " ".join(text.lower().split())


NUMBER_IN_TEXT = re.compile(r"[-+]?[$€£]?\d[\d,]*(?:\.\d+)?%?")


def _answer(text: str, numeric: bool) -> str:
    """A completion's final answer, normalised; for a numeric reference, the last number in it."""
    answer = final_answer(text)
    if numeric and (numbers := NUMBER_IN_TEXT.findall(answer)):
        answer = numbers[-1]
    return normalise(answer)


def answer_match(completions: Sequence[Any], reference: Sequence[str]) -> list[float]:
    """1.0 when a completion's final answer equals its own row's reference answer, else 0.0."""
    scores = []
    for c, ref in zip(completions, reference, strict=True):
        wanted = final_answer(str(ref)).strip().strip(".")
        scores.append(float(_answer(text_of(c), NUMBER.match(wanted) is not None) == normalise(wanted)))
    return scores


def format_regex(completions: Sequence[Any], pattern: str) -> list[float]:
    """1.0 when the whole completion matches `pattern` (dot matches newlines), else 0.0."""
    compiled = re.compile(pattern, re.DOTALL)
    return [float(compiled.fullmatch(text_of(c).strip()) is not None) for c in completions]


def think_format(completions: Sequence[Any]) -> list[float]:
    """1.0 for one ``<think>`` ... ``</think>`` block of reasoning followed by a non-empty answer, else 0.0."""
    return [float(THINK.match(text_of(c)) is not None) for c in completions]


def _json(text: str) -> Any:
    """The JSON value a completion holds (whole, or in a fenced block); raises ValueError when it holds none."""
    fenced = FENCED_JSON.search(text)
    return json.loads(fenced.group(1) if fenced else text.strip())


def valid_json(completions: Sequence[Any]) -> list[float]:
    """1.0 when the completion parses as JSON, else 0.0."""
    scores = []
    for c in completions:
        try:
            _json(text_of(c))
            scores.append(1.0)
        except ValueError:
            scores.append(0.0)
    return scores


def _tool_call_score(text: str, tools: Any) -> float:
    listed = json.loads(tools) if isinstance(tools, str) else (tools or [])
    schemas = {}
    for tool in listed:
        spec = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        if spec.get("name"):
            schemas[spec["name"]] = spec.get("parameters") or {}
    try:
        call = _json(text)
    except ValueError:
        return 0.0
    if not isinstance(call, Mapping) or call.get("name") not in schemas:
        return 0.0
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return 0.0
    if not isinstance(arguments, Mapping):
        return 0.0
    required = schemas[call["name"]].get("required") or []
    return 1.0 if all(name in arguments for name in required) else 0.5


def tool_call(completions: Sequence[Any], tools: Sequence[Any]) -> list[float]:
    """1.0 for a JSON tool call of a tool listed in its row's `tools` with every required argument; 0.5 when a
    required argument is missing; 0.0 for anything else (not JSON, another tool, no arguments object)."""
    return [_tool_call_score(text_of(c), t) for c, t in zip(completions, tools, strict=True)]


def length_target(completions: Sequence[Any], target: int) -> list[float]:
    """1.0 at `target` words, falling linearly to 0.0 at no words or twice the target (partial credit near it)."""
    return [max(0.0, 1.0 - abs(len(text_of(c).split()) - target) / target) for c in completions]


def words(completions: Sequence[Any], required: Sequence[str] = (), forbidden: Sequence[str] = ()) -> list[float]:
    """The share of `required` words present (1.0 when none are asked for), minus 1.0 when a `forbidden` one is
    present (case-insensitive, whole words)."""

    def has(text: str, word: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text) is not None

    scores = []
    for c in completions:
        text = text_of(c).lower()
        share = sum(has(text, w) for w in required) / len(required) if required else 1.0
        scores.append(share - (1.0 if any(has(text, w) for w in forbidden) else 0.0))
    return scores


SCORERS: dict[str, Callable[..., list[float]]] = {
    "answer_match": answer_match,
    "format_regex": format_regex,
    "think_format": think_format,
    "valid_json": valid_json,
    "tool_call": tool_call,
    "length_target": length_target,
    "words": words,
}
"""Each built-in reward's scoring function, by its name in `REWARDS`."""


def reward_function(name: str, column: str | None = None, **settings: Any) -> Callable[..., list[float]]:
    """The built-in reward `name` as TRL's GRPOTrainer calls it: ``fn(prompts=..., completions=..., **columns)``,
    scoring the completions only; `column` names the dataset column it reads (answer_match: the reference, tool_call:
    the tools). Its ``__name__`` is `name` (TRL logs ``rewards/<name>/mean``).

    Raises:
        ValueError: an unknown reward, or one that needs a column and has none.
    """
    if name not in REWARDS:
        raise ValueError(f"reward {name!r}: use one of {', '.join(REWARDS)}.")
    score = SCORERS[name]
    if name in ("answer_match", "tool_call") and not column:
        raise ValueError(f"reward {name}: name the dataset column it compares with (e.g. answer, tools).")

    def reward(prompts: Sequence[Any] = (), completions: Sequence[Any] = (), **columns: Any) -> list[float]:
        if column:
            return score(completions, columns[column], **settings)
        return score(completions, **settings)

    reward.__name__ = name
    return reward


def total_reward(scores: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> list[float]:
    """Each completion's weighted sum of its rewards, as GRPO trains on (``reward_weights``)."""
    names = list(scores)
    return [sum(weights[n] * scores[n][i] for n in names) for i in range(len(scores[names[0]]))] if names else []


def parse_rewards(text: str) -> list[tuple[str, float]]:
    """The reward menu as written in a setting, ``answer_match:1.0, think_format:0.5`` (a weight defaults to 1.0).

    Raises:
        ValueError: an unknown reward, a weight that is not a number, a reward named twice, or no reward at all;
            every problem at once.
    """
    found: list[tuple[str, float]] = []
    problems = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = (piece.strip() for piece in item.partition(":"))
        if name not in REWARDS:
            problems.append(f"{name!r} is not a reward (use {', '.join(REWARDS)})")
            continue
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            problems.append(f"{name}: weight {weight!r} is not a number")
            continue
        if name in (n for n, _ in found):
            problems.append(f"{name} is named twice")
        found.append((name, value))
    if not found and not problems:
        problems.append("name at least one reward, e.g. answer_match:1.0")
    if problems:
        raise ValueError("; ".join(problems) + ".")
    return found


COLUMN_SETTINGS = {"answer_match": "answer_column", "tool_call": "tools_column"}
"""The grpo setting that names each column-reading reward's column."""


def reward_columns(settings: Any) -> dict[str, str]:
    """The column each column-reading reward reads, from the grpo settings (`GRPOSettings`)."""
    return {name: getattr(settings, key) for name, key in COLUMN_SETTINGS.items()}


def reward_settings(name: str, settings: Any) -> dict[str, Any]:
    """The settings a built-in reward takes from the grpo settings (`GRPOSettings`): its pattern, target or words."""
    return {
        "format_regex": {"pattern": settings.format_pattern},
        "length_target": {"target": settings.length_target},
        "words": {"required": list(settings.required_words), "forbidden": list(settings.forbidden_words)},
    }.get(name, {})


def column_problems(
    rewards: Sequence[tuple[str, float]], columns_of: Mapping[str, str], columns: Sequence[str]
) -> list[str]:
    """Why these rewards cannot be computed on data with these columns (before anything is queued): each reward
    whose column (`columns_of`, see `reward_columns`) the data does not have, naming the columns it does have."""
    return [
        f"grpo.{COLUMN_SETTINGS[name]}: reward {name} needs a column with {NEEDS_COLUMN[name]}, and this data has no "
        f"{columns_of[name]!r} column (it has {', '.join(columns)}). Name the column, or pick rewards that need none."
        for name, _ in rewards
        if name in NEEDS_COLUMN and columns_of[name] not in columns
    ]


def zero_spread_warning(events: Sequence[Mapping[str, Any]], steps: int = ZERO_SPREAD_STEPS) -> str | None:
    """A warning when, for the last `steps` logged steps, (nearly) every group of completions earned equal rewards
    (TRL's ``frac_reward_zero_std``): GRPO learns from the differences inside a group, so there is nothing to learn."""
    logged = [e["frac_reward_zero_std"] for e in events if e.get("frac_reward_zero_std") is not None]
    if len(logged) < steps or min(logged[-steps:]) < 0.95:
        return None
    return (
        f"For {steps} steps every group of completions earned the same reward: nothing to learn from. Give partial "
        "credit (a format or length reward beside an exact answer), raise num_generations or the temperature, or use "
        "easier prompts."
    )


def reward_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    """A GRPO run's held-out reward before -> after, with each reward function's, in one line (None without both)."""
    if not before or not after or "reward" not in before or "reward" not in after:
        return None
    parts = [
        f"{name.removeprefix('rewards/')} {before[name]:.3f} -> {after[name]:.3f}"
        for name in after
        if name.startswith("rewards/") and name in before
    ]
    prompts = f" on {after['prompts']} held-out prompts" if after.get("prompts") else ""
    detail = f" ({'; '.join(parts)})" if parts else ""
    return f"mean reward{prompts}: {before['reward']:.3f} -> {after['reward']:.3f}{detail}"
