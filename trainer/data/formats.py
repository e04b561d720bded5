"""Row formats: detect a dataset's layout and normalise every row to chat `messages` (pure functions, no I/O).

A row may be in any of the common chat-instruction layouts (see `FORMATS`): ``messages`` (role/content lists, what
TRL and the Phi-3 chat template expect), ShareGPT ``conversations`` (from/value lists), Alpaca
(``instruction``/``input``/``output``), TRL prompt/completion (strings or conversational lists), ``text`` (Phi-3
chat markup or plain text) or any columns mapped to chat roles. Every row becomes a list of ``{"role", "content"}``
messages that ends with an assistant reply; malformed rows are reported with their row numbers, never silently
dropped.

Example:
    >>> from trainer.data.formats import normalise
    >>> normalise([{"instruction": "Hi", "output": "Ahoy!"}], "auto").rows
    [[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Ahoy!'}]]
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from trainer.config import CHAT_ROLES, MAPPING_EXAMPLE, DataConfig, column_mapping_problems, hint
from trainer.phi3 import BOS, END, ENDOFTEXT, ROLE_TAGS

FORMATS: tuple[str, ...] = ("messages", "sharegpt", "alpaca", "prompt_completion", "text", "columns")
"""Row formats `to_messages` understands (``columns`` needs a column mapping and is never auto-detected)."""

SHAREGPT_ROLES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
"""ShareGPT ``from`` value -> chat role."""

# Columns each auto-detectable format needs, in detection priority order, with a short description for messages.
FORMAT_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "messages": (("messages",), "column 'messages' with lists of {role, content}"),
    "sharegpt": (("conversations",), "column 'conversations' with lists of {from, value}"),
    "alpaca": (("instruction", "output"), "columns 'instruction' and 'output', optional 'input' and 'system'"),
    "prompt_completion": (("prompt", "completion"), "columns 'prompt' and 'completion', strings or message lists"),
    "text": (("text",), "column 'text', Phi-3 chat markup or plain text trained as an assistant turn"),
}

# Phi-3 chat markup, as the tokenizer's chat template writes it.
PHI3_ROLE_TAG_RE = re.compile(r"<\|(system|user|assistant)\|>")
PHI3_MARKERS: tuple[str, ...] = (*ROLE_TAGS, END)


class DataError(ValueError):
    """A dataset-level problem (unreadable, empty, unknown format, missing split ...); the message names the fix."""


class RowError(ValueError):
    """One row cannot become chat messages; the message says why (e.g. "message 2 has role 'gpt'; ...")."""


Message = dict[str, str]


@dataclass
class Normalised:
    """Rows normalised to chat messages.

    Attributes:
        format: the row format used (one of `FORMATS`).
        rows: one list of ``{"role", "content"}`` messages per good row, in input order.
        problems: one line per malformed row, ``"row N: <reason>"`` (N counts from 1, the first row).
        n_input: how many rows came in (good + malformed).
    """

    format: str
    rows: list[list[Message]]
    problems: list[str] = field(default_factory=list)
    n_input: int = 0


# --------------------------------------------------------------------------- formats and rows


def detect_format(columns: Sequence[str]) -> str:
    """Pick the row format from the column names.

    Priority: messages, sharegpt, alpaca, prompt_completion, text (the first whose columns are all present).

    Args:
        columns: the dataset's column names.

    Returns:
        One of ``messages``, ``sharegpt``, ``alpaca``, ``prompt_completion``, ``text``.

    Raises:
        DataError: no format matches; the message lists the columns found, each format's columns and how to map
            other columns to chat roles.
    """
    present = set(columns)
    for fmt, (needed, _) in FORMAT_COLUMNS.items():
        if all(column in present for column in needed):
            return fmt
    raise DataError(
        f"data.format: cannot detect the format from the columns {list(columns)}. Expected one of: {_expected()}. "
        f"Map your columns to chat roles instead (e.g. {hint('data.column_mapping', _example_mapping(columns))}), "
        f"or name the format ({hint('data.format')})."
    )


def _expected() -> str:
    return "; ".join(f"{fmt} ({description})" for fmt, (_, description) in FORMAT_COLUMNS.items())


def _example_mapping(columns: Sequence[str]) -> dict[str, str]:
    """{first column: user, second column: assistant} with the dataset's own names where it has two plain ones."""
    names = [c for c in columns if re.fullmatch(r"[\w.-]+", c)]
    return {names[0]: "user", names[1]: "assistant"} if len(names) >= 2 else dict(MAPPING_EXAMPLE)


def to_messages(
    row: Mapping[str, Any],
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    system_prompt: str = "",
) -> list[Message]:
    """Turn one row into chat messages (pure).

    Rules per format:

    - ``messages``: a list of ``{"role", "content"}``; roles must be system, user or assistant.
    - ``sharegpt``: ``conversations`` of ``{"from", "value"}``; human/user -> user, gpt/assistant/chatgpt ->
      assistant, system -> system.
    - ``alpaca``: user = ``instruction``, plus ``"\\n\\n" + input`` when ``input`` is not empty; assistant =
      ``output``; an optional non-empty ``system`` column becomes the system message.
    - ``prompt_completion``: strings become one user and one assistant message; TRL conversational lists of
      messages are concatenated (prompt messages, then completion messages).
    - ``text``: Phi-3 chat markup (``<|user|>\\n...<|end|>\\n<|assistant|>\\n...<|end|>\\n``, optionally ending in
      ``<|endoftext|>``) is parsed back into messages. Plain text becomes a single assistant message, i.e. it is
      trained as an unprompted assistant turn.
    - ``columns``: one message per mapped column, in mapping order, with the mapped role; null or empty values
      are skipped.

    Messages and ShareGPT lists stored as JSON strings (as in CSV exports) are parsed. Empty system messages are
    dropped. Then, if `system_prompt` is set and the first message is not a system message, it is prepended.

    Args:
        row: one dataset row (column -> value).
        fmt: one of `FORMATS`.
        column_mapping: column -> role, for the ``columns`` format.
        system_prompt: system message for rows that have none ("" = none).

    Returns:
        The messages; at least one is from the assistant and the last one is.

    Raises:
        RowError: the row is malformed (bad role, content that is not a string, no assistant reply, ...).
        DataError: `fmt` is unknown, or ``columns`` without a mapping.
    """
    if fmt == "messages":
        messages = _role_content_list(_json_list(_get(row, "messages"), "messages"), "messages")
    elif fmt == "sharegpt":
        messages = _sharegpt(_json_list(_get(row, "conversations"), "conversations"))
    elif fmt == "alpaca":
        messages = _alpaca(row)
    elif fmt == "prompt_completion":
        messages = _prompt_completion(_get(row, "prompt"), _get(row, "completion"))
    elif fmt == "text":
        messages = _text(_string(_get(row, "text"), "text"))
    elif fmt == "columns":
        if problems := column_mapping_problems(column_mapping, fmt):
            raise DataError(problems[0])
        messages = _columns(row, column_mapping)
    else:
        raise DataError(f"data.format: unknown format {fmt!r}. Use auto or one of {', '.join(FORMATS)}.")
    return _finish(messages, system_prompt)


def _get(row: Mapping[str, Any], column: str) -> Any:
    if column not in row:
        raise RowError(f"no {column!r} column")
    return row[column]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"{what} is {_type_name(value)}, expected a string")
    return value


def _json_list(value: Any, what: str) -> Any:
    """A list, or a JSON string holding one (CSV exports store message lists as JSON text)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"{what} is text that is not a valid JSON list ({exc.msg})") from exc
    return value


def _check_list(value: Any, what: str, shape: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise RowError(f"{what} is {_type_name(value)}, expected a list of {shape}")
    return list(value)


def _message(role: Any, content: Any, index: int) -> Message:
    if role not in CHAT_ROLES:
        shown = "no role" if role is None else f"role {role!r}"
        raise RowError(f"message {index} has {shown}; expected system, user or assistant")
    if not isinstance(content, str):
        raise RowError(f"message {index} content is {_type_name(content)}, expected a string")
    return {"role": role, "content": content}


def _role_content_list(value: Any, what: str, start: int = 1) -> list[Message]:
    items = _check_list(value, what, "{role, content} messages")
    out = []
    for index, item in enumerate(items, start=start):
        if not isinstance(item, Mapping):
            raise RowError(f"message {index} is {_type_name(item)}, expected a {{role, content}} object")
        out.append(_message(item.get("role"), item.get("content"), index))
    return out


def _sharegpt(value: Any) -> list[Message]:
    items = _check_list(value, "conversations", "{from, value} messages")
    out = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise RowError(f"message {index} is {_type_name(item)}, expected a {{from, value}} object")
        speaker = item.get("from")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            shown = "no 'from'" if speaker is None else f"from {speaker!r}"
            raise RowError(f"message {index} has {shown}; expected human, user, gpt, assistant, chatgpt or system")
        out.append(_message(role, item.get("value"), index))
    return out


def _alpaca(row: Mapping[str, Any]) -> list[Message]:
    instruction = _string(_get(row, "instruction"), "instruction")
    extra = row.get("input")
    if extra is not None:
        instruction = instruction + "\n\n" + extra if _string(extra, "input").strip() else instruction
    output = _string(_get(row, "output"), "output")
    if not output.strip():
        raise RowError("output is empty; the assistant reply is required")
    system = row.get("system")
    messages = [] if system is None or not _string(system, "system").strip() else [_message("system", system, 0)]
    return [*messages, {"role": "user", "content": instruction}, {"role": "assistant", "content": output}]


def _prompt_completion(prompt: Any, completion: Any) -> list[Message]:
    for value, what in ((prompt, "prompt"), (completion, "completion")):
        if not isinstance(value, (str, list, tuple)):
            raise RowError(f"{what} is {_type_name(value)}, expected a string or a list of {{role, content}} messages")
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else _role_content_list(prompt, "prompt")
    if isinstance(completion, str):
        return [*head, {"role": "assistant", "content": completion}]
    return head + _role_content_list(completion, "completion", start=len(head) + 1)


def _text(text: str) -> list[Message]:
    if not any(marker in text for marker in PHI3_MARKERS):
        return [{"role": "assistant", "content": text}]
    body = text.strip()
    if body.endswith(ENDOFTEXT):
        body = body[: -len(ENDOFTEXT)]
    parts = PHI3_ROLE_TAG_RE.split(body)
    prefix = parts[0].strip()
    if prefix.startswith(BOS):
        prefix = prefix[len(BOS) :].strip()
    if len(parts) == 1:
        raise RowError("text has <|end|> but no <|system|>, <|user|> or <|assistant|> tag")
    if prefix:
        raise RowError(f"text has {prefix[:30]!r} before the first role tag; chat markup must start with one")
    messages = []
    pairs = list(zip(parts[1::2], parts[2::2], strict=True))
    for index, (role, chunk) in enumerate(pairs, start=1):
        chunk = chunk[1:] if chunk.startswith("\n") else chunk
        content, end, rest = chunk.partition(END)
        if not end and index < len(pairs):
            raise RowError(f"message {index} ({role}) is not closed with <|end|>")
        if rest.strip():
            raise RowError(f"message {index} ({role}) has {rest.strip()[:30]!r} after <|end|>")
        messages.append({"role": role, "content": content if end else content.rstrip("\n")})
    return messages


def _columns(row: Mapping[str, Any], column_mapping: Mapping[str, str]) -> list[Message]:
    out = []
    for column, role in column_mapping.items():
        value = _get(row, column)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out.append({"role": role, "content": _string(value, f"column {column!r}")})
    return out


def _finish(messages: list[Message], system_prompt: str) -> list[Message]:
    """Check that a conversation can be trained on, drop empty system messages, add the system prompt."""
    for index, message in enumerate(messages, start=1):
        if message["role"] == "assistant" and not message["content"].strip():
            raise RowError(f"message {index} is an empty assistant reply")
    messages = [m for m in messages if m["role"] != "system" or m["content"].strip()]
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("no assistant message")
    if messages[-1]["role"] != "assistant":
        raise RowError(f"last message is from the {messages[-1]['role']}; a row must end with an assistant reply")
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def required_columns(fmt: str, column_mapping: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The columns a format needs.

    Args:
        fmt: one of `FORMATS`.
        column_mapping: column -> role, for ``columns``.

    Returns:
        Column names (for ``columns``: the mapped columns).

    Raises:
        DataError: unknown format.
    """
    if fmt == "columns":
        return tuple(column_mapping or ())
    if fmt not in FORMAT_COLUMNS:
        raise DataError(f"data.format: unknown format {fmt!r}. Use auto or one of {', '.join(FORMATS)}.")
    return FORMAT_COLUMNS[fmt][0]


def _check_columns(columns: Sequence[str], fmt: str, column_mapping: Mapping[str, str] | None) -> None:
    if fmt == "columns" and (problems := column_mapping_problems(column_mapping, fmt)):
        raise DataError(problems[0])
    missing = [c for c in required_columns(fmt, column_mapping) if c not in columns]
    if missing:
        setting = "data.column_mapping" if fmt == "columns" else "data.format"
        raise DataError(
            f"{setting}: format {fmt} needs the columns {missing}, but the dataset has {list(columns)}. "
            "Use format auto, the format that matches, or map the existing columns "
            f"(e.g. {hint('data.column_mapping', _example_mapping(columns))})."
        )


def normalise(
    rows: Iterable[Mapping[str, Any]],
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    system_prompt: str = "",
) -> Normalised:
    """Normalise rows to chat messages, setting malformed rows aside with their row numbers (pure).

    Args:
        rows: dataset rows (a `datasets.Dataset` or any iterable of dicts); the columns are the Dataset's, or the
            keys of the first row.
        fmt: one of `FORMATS`, or ``auto`` to detect it (``columns`` when a mapping is given).
        column_mapping: column -> role, for ``columns``.
        system_prompt: system message for rows that have none.

    Returns:
        The good rows, one problem line per malformed row (``"row N: reason"``, N from 1) and the input count.

    Raises:
        DataError: no rows; unknown or mismatched format; a bad column mapping; every row is malformed.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        raise DataError("data.dataset_name: the dataset has no rows. Point to a file or split that holds data.")
    columns = list(getattr(rows, "column_names", None) or first.keys())
    if fmt == "auto":
        fmt = "columns" if column_mapping else detect_format(columns)
    _check_columns(columns, fmt, column_mapping)
    good: list[list[Message]] = []
    problems: list[str] = []
    n_input = 0
    for n_input, row in enumerate(chain([first], iterator), start=1):
        try:
            good.append(to_messages(row, fmt, column_mapping, system_prompt))
        except RowError as exc:
            problems.append(f"row {n_input}: {exc}")
    if not good:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise DataError(
            f"data.dataset_name: all {n_input} rows are malformed for format {fmt} ({shown}). "
            f"Check that the format matches the data ({hint('data.format')}, or {hint('data.column_mapping')}) "
            "or fix the rows."
        )
    return Normalised(format=fmt, rows=good, problems=problems, n_input=n_input)


def split_eval(
    rows: Sequence[list[Message]], eval_fraction: float, seed: int = 42
) -> tuple[list[list[Message]], list[list[Message]]]:
    """Hold out a seeded random `eval_fraction` of the rows (pure); both parts keep the input order.

    At least one row is held out when `eval_fraction` > 0 and there are two or more rows, and at least one row
    is always left to train on.

    Args:
        rows: normalised rows.
        eval_fraction: share to hold out, 0 <= x < 1 (0 = none).
        seed: random seed; the same seed gives the same split.

    Returns:
        (train rows, eval rows); eval is empty when `eval_fraction` is 0 or there are fewer than two rows.

    Raises:
        DataError: `eval_fraction` is outside [0, 1).
    """
    if not 0 <= eval_fraction < 1:
        raise DataError(f"data.eval_fraction: {eval_fraction} is outside [0, 1). Use e.g. 0.1, or 0 for no eval.")
    n = len(rows)
    if eval_fraction == 0 or n < 2:
        return list(rows), []
    n_eval = min(max(round(n * eval_fraction), 1), n - 1)
    held = set(random.Random(seed).sample(range(n), n_eval))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def choose_format(cfg: DataConfig, columns: Sequence[str]) -> str:
    """The row format for a dataset with these columns: the mapped columns, the configured format, or detected.

    Raises:
        DataError: the column mapping and the format disagree, or no format can be detected.
    """
    if problems := column_mapping_problems(cfg.column_mapping, cfg.format):
        raise DataError(problems[0])
    if cfg.column_mapping:
        return "columns"
    return detect_format(columns) if cfg.format == "auto" else cfg.format
