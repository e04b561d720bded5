"""Row formats: detect a dataset's layout and normalise every row to chat `messages` (pure functions, no I/O).

A row may be in any of the common chat-instruction layouts (see `FORMATS`): ``messages`` (role/content lists, what
TRL and the Phi-3 chat template expect; OpenAI tool calls and content parts too), ShareGPT ``conversations``
(from/value lists, glaive/LLaMA-Factory function calls too), Alpaca (``instruction``/``input``/``output``), TRL
prompt/completion (strings or conversational lists), preference pairs (``chosen``/``rejected``, SFT on chosen),
``text`` (Phi-3 chat markup or plain text) or any columns mapped to chat roles. A ``tools`` column goes into the
system turn, and a boolean ``label`` column (KTO) keeps only the desirable rows (see `trainer.data.shapes`). Every
row becomes a list of ``{"role", "content"}`` messages that ends with an assistant reply; malformed rows are
reported with their row numbers, never silently dropped.

Example:
    >>> from trainer.data.formats import normalise
    >>> normalise([{"instruction": "Hi", "output": "Ahoy!"}], "auto").rows
    [[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Ahoy!'}]]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from trainer.config import (
    CONVERSATION_ROLE,
    DataConfig,
    column_mapping_problems,
    hint,
    resolve_mapping,
    suggest_column_mapping,
)
from trainer.data.jsonlines import Lines
from trainer.data.shapes import (
    SHAREGPT_ROLES,
    TEXT_ONLY,
    DataError,
    Message,
    RowError,
    chat_message,
    content_text,
    fill_placeholders,
    media_columns,
    merge_tool_responses,
    phi3_markup_messages,
    sharegpt_message,
    type_name,
    with_tools,
)

__all__ = ["SHAREGPT_ROLES", "DataError", "Message", "RowError"]  # defined in trainer.data.shapes, used from here

FORMATS: tuple[str, ...] = ("messages", "sharegpt", "alpaca", "prompt_completion", "preference", "text", "columns")
"""Row formats `to_messages` understands (``columns`` needs a column mapping and is never auto-detected)."""


# Columns each auto-detectable format needs, in detection priority order, with a short description for messages.
FORMAT_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "messages": (("messages",), "column 'messages' with lists of {role, content}"),
    "sharegpt": (("conversations",), "column 'conversations' with lists of {from, value}"),
    "alpaca": (("instruction", "output"), "columns 'instruction' and 'output', optional 'input' and 'system'"),
    "prompt_completion": (("prompt", "completion"), "columns 'prompt' and 'completion', strings or message lists"),
    "preference": (("chosen", "rejected"), "columns 'chosen' and 'rejected', optional 'prompt': SFT on chosen"),
    "text": (("text",), "column 'text', Phi-3 chat markup or plain text trained as an assistant turn"),
}


@dataclass
class Normalised:
    """Rows normalised to chat messages.

    Attributes:
        format: the row format used (one of `FORMATS`).
        rows: one list of ``{"role", "content"}`` messages per good row, in input order.
        problems: one line per malformed row, ``"row N: <reason>"`` (N counts from 1, the first row).
        n_input: how many rows came in (good + malformed + left out).
        left_out: rows set aside on purpose, not malformed (KTO rows labelled undesirable).
        notes: what was done to the data as a whole, in a sentence each (e.g. "Preference data: ...").
        numbers: each good row's number in the input (from 1).
        kinds: how many rows were malformed for each kind of reason (`RowError.kind`).
    """

    format: str
    rows: list[list[Message]]
    problems: list[str] = field(default_factory=list)
    n_input: int = 0
    left_out: int = 0
    notes: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RowStyle:
    """How rows become chat text where recipes differ (`DataConfig.alpaca_template`, `.empty_system_turn`).

    Attributes:
        alpaca_template: ``studio`` (the instruction, then a blank line and the input when there is one) or
            ``cookbook`` (``"{instruction}\\n Input: {input}"``, even for an empty input, as the Cookbook notebooks).
        empty_system_turn: a conversation without a system message begins with an empty one (sample_finetune.py).
    """

    alpaca_template: str = "studio"
    empty_system_turn: bool = False

    @classmethod
    def of(cls, cfg: DataConfig) -> RowStyle:
        """The style a data config asks for."""
        return cls(cfg.alpaca_template, cfg.empty_system_turn)


# --------------------------------------------------------------------------- formats and rows


def detect_format(columns: Sequence[str], sample: Mapping[str, Any] | None = None) -> str:
    """Pick the row format from the column names.

    Priority: messages, sharegpt, alpaca, prompt_completion, preference, text (the first whose columns are all
    present).

    Args:
        columns: the dataset's column names.
        sample: a row, to suggest a mapping that fits the values (a conversation list maps to messages).

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
    mapping = hint("data.column_mapping", suggest_column_mapping(columns, sample))
    raise DataError(
        f"data.format: cannot detect the format from the columns {list(columns)}. Expected one of: {_expected()}. "
        f"Map your columns to chat roles instead (e.g. {mapping})."
    )


def _expected() -> str:
    return "; ".join(f"{fmt} ({description})" for fmt, (_, description) in FORMAT_COLUMNS.items())


def to_messages(
    row: Mapping[str, Any],
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    system_prompt: str = "",
    placeholders: Mapping[str, str] | None = None,
    style: RowStyle = RowStyle(),
) -> list[Message]:
    """Turn one row into chat messages (pure).

    Rules per format:

    - ``messages``: a list of ``{"role", "content"}``; roles system, user, assistant, and tool (a tool result);
      content is text or text parts; an assistant message may carry OpenAI ``tool_calls`` (content may be null).
    - ``sharegpt``: ``conversations`` of ``{"from", "value"}``; human/user -> user, gpt/assistant/chatgpt ->
      assistant, system -> system, function_call -> an assistant tool call, observation -> a tool result.
    - ``alpaca``: user = ``instruction``, plus ``"\\n\\n" + input`` when ``input`` is not empty (`style`: or the
      Cookbook's ``"{instruction}\\n Input: {input}"``); assistant = ``output``; an optional non-empty ``system``
      column becomes the system message.
    - ``prompt_completion``: strings become one user and one assistant message; TRL conversational lists of
      messages are concatenated (prompt messages, then completion messages).
    - ``preference``: the ``prompt`` (string or messages, optional) and the ``chosen`` reply (string or messages;
      without a prompt, a whole conversation, or Anthropic HH text "\\n\\nHuman: ... \\n\\nAssistant: ...");
      ``rejected`` is not used (SFT on the chosen replies).
    - ``text``: Phi-3 chat markup (``<|user|>\\n...<|end|>\\n<|assistant|>\\n...<|end|>\\n``, optionally ending in
      ``<|endoftext|>``) is parsed back into messages. Plain text becomes a single assistant message, i.e. it is
      trained as an unprompted assistant turn.
    - ``columns``: one message per mapped column, in mapping order, with the mapped role; null or empty values
      are skipped; a column mapped to ``messages`` holds a whole conversation (role/content or from/value list).

    Tool calls, results and a ``tools`` column are rendered as `trainer.data.shapes` describes. Messages and
    ShareGPT lists stored as JSON strings (as in CSV exports) are parsed. Template slots named in `placeholders`
    are filled. Empty system messages are dropped. Then, if `system_prompt` is set and the first message is not a
    system message, it is prepended (or, with `style.empty_system_turn`, an empty one).

    Args:
        row: one dataset row (column -> value).
        fmt: one of `FORMATS`.
        column_mapping: column -> role, for the ``columns`` format.
        system_prompt: system message for rows that have none ("" = none).
        placeholders: slot name -> value, filled into every message (``{{name}}``, ``{name}``).
        style: where recipes differ (`RowStyle`).

    Returns:
        The messages; at least one is from the assistant and the last one is.

    Raises:
        RowError: the row is malformed (bad role, content that is not text, no assistant reply, an image, ...).
        DataError: `fmt` is unknown, or ``columns`` without a mapping.
    """
    if fmt == "messages":
        messages = _role_content_list(_json_list(_get(row, "messages"), "messages"), "messages")
    elif fmt == "sharegpt":
        messages = _sharegpt(_json_list(_get(row, "conversations"), "conversations"))
    elif fmt == "alpaca":
        messages = _alpaca(row, style.alpaca_template)
    elif fmt == "prompt_completion":
        messages = _prompt_completion(_get(row, "prompt"), _get(row, "completion"))
    elif fmt == "preference":
        messages = _preference(row.get("prompt"), _get(row, "chosen"))
    elif fmt == "text":
        messages = phi3_markup_messages(_string(_get(row, "text"), "text"))
    elif fmt == "columns":
        if problems := column_mapping_problems(column_mapping, fmt):
            raise DataError(problems[0])
        messages = _columns(row, column_mapping)
    else:
        raise DataError(f"data.format: unknown format {fmt!r}. Use auto or one of {', '.join(FORMATS)}.")
    messages = with_tools(merge_tool_responses(messages), row.get("tools"))
    if placeholders:
        messages = [{"role": m["role"], "content": fill_placeholders(m["content"], placeholders)} for m in messages]
    messages = _finish(messages, system_prompt)
    if style.empty_system_turn and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": ""}, *messages]
    return messages


def _get(row: Mapping[str, Any], column: str) -> Any:
    if column not in row:
        raise RowError(f"no {column!r} column")
    return row[column]


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"{what} is {type_name(value)}, expected a string")
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
        raise RowError(f"{what} is {type_name(value)}, expected a list of {shape}")
    return list(value)


def _role_content_list(value: Any, what: str, start: int = 1) -> list[Message]:
    items = _check_list(value, what, "{role, content} messages")
    return [chat_message(item, index) for index, item in enumerate(items, start=start)]


def _sharegpt(value: Any) -> list[Message]:
    items = _check_list(value, "conversations", "{from, value} messages")
    return [sharegpt_message(item, index) for index, item in enumerate(items, start=1)]


def _alpaca(row: Mapping[str, Any], template: str = "studio") -> list[Message]:
    instruction = _string(_get(row, "instruction"), "instruction")
    extra = row.get("input")
    if template == "cookbook":  # the notebooks' f"{row['instruction']}\n Input: {row['input']}", an empty input too
        instruction = f"{instruction}\n Input: {'' if extra is None else _string(extra, 'input')}"
    elif extra is not None:
        instruction = instruction + "\n\n" + extra if _string(extra, "input").strip() else instruction
    output = _string(_get(row, "output"), "output")
    if not output.strip():
        raise RowError("output is empty; the assistant reply is required", "empty reply")
    system = row.get("system")
    messages = (
        []
        if system is None or not _string(system, "system").strip()
        else [chat_message({"role": "system", "content": system}, 0)]
    )
    return [*messages, {"role": "user", "content": instruction}, {"role": "assistant", "content": output}]


def _prompt_completion(prompt: Any, completion: Any) -> list[Message]:
    for value, what in ((prompt, "prompt"), (completion, "completion")):
        if not isinstance(value, (str, list, tuple)):
            raise RowError(f"{what} is {type_name(value)}, expected a string or a list of {{role, content}} messages")
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else _role_content_list(prompt, "prompt")
    if isinstance(completion, str):
        return [*head, {"role": "assistant", "content": completion}]
    return head + _role_content_list(completion, "completion", start=len(head) + 1)


HH_TURN_RE = re.compile(r"\n\n(Human|Assistant): ")


def _preference(prompt: Any, chosen: Any) -> list[Message]:
    """The prompt and the chosen reply (see `to_messages`)."""
    if prompt is not None:
        return _prompt_completion(prompt, chosen)
    if isinstance(chosen, str):
        parts = HH_TURN_RE.split("\n\n" + chosen.lstrip("\n") if chosen.startswith(("Human: ", "\n")) else chosen)
        if len(parts) < 3:
            raise RowError("chosen is text without a prompt column or Human:/Assistant: turns")
        roles = {"Human": "user", "Assistant": "assistant"}
        return [
            {"role": roles[who], "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2], strict=True)
        ]
    return _role_content_list(_json_list(chosen, "chosen"), "chosen")


def _columns(row: Mapping[str, Any], column_mapping: Mapping[str, str]) -> list[Message]:
    out: list[Message] = []
    for column, role in column_mapping.items():
        value = _get(row, column)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if role == CONVERSATION_ROLE:  # a whole conversation: {role, content} or ShareGPT {from, value} items
            items = _check_list(_json_list(value, f"column {column!r}"), f"column {column!r}", "messages")
            shaped = (
                sharegpt_message if items and isinstance(items[0], Mapping) and "from" in items[0] else chat_message
            )
            out += [shaped(item, len(out) + index) for index, item in enumerate(items, start=1)]
        else:
            out.append({"role": role, "content": content_text(_string(value, f"column {column!r}"), len(out) + 1)})
    return out


def _finish(messages: list[Message], system_prompt: str) -> list[Message]:
    """Check that a conversation can be trained on, drop empty system messages, add the system prompt."""
    for index, message in enumerate(messages, start=1):
        if message["role"] == "assistant" and not message["content"].strip():
            raise RowError(f"message {index} is an empty assistant reply", "empty reply")
    messages = [m for m in messages if m["role"] != "system" or m["content"].strip()]
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("no assistant message", "no assistant turn")
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


def _check_columns(
    columns: Sequence[str], fmt: str, column_mapping: Mapping[str, str] | None, sample: Mapping[str, Any] | None = None
) -> None:
    if fmt == "columns" and (problems := column_mapping_problems(column_mapping, fmt)):
        raise DataError(problems[0])
    missing = [c for c in required_columns(fmt, column_mapping) if c not in columns]
    if missing:
        setting = "data.column_mapping" if fmt == "columns" else "data.format"
        try:  # a fix that works as printed: the format these columns are, else a mapping of them
            fix = f"it looks like {(found := detect_format(columns))} data ({hint('data.format', found)})"
        except DataError:
            mapping = hint("data.column_mapping", suggest_column_mapping(columns, sample))
            fix = f"map its columns ({mapping}{'' if fmt == 'columns' else ' and ' + hint('data.format', 'auto')})"
        raise DataError(
            f"{setting}: format {fmt} needs the columns {missing}, but the dataset has {list(columns)}; {fix}."
        )


def normalise(
    rows: Iterable[Mapping[str, Any]],
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    system_prompt: str = "",
    placeholders: Mapping[str, str] | None = None,
    lines: Lines | None = None,
    style: RowStyle = RowStyle(),
) -> Normalised:
    """Normalise rows to chat messages, setting malformed rows aside with their row numbers (pure).

    A boolean ``label`` column marks KTO data: rows labelled false (undesirable replies) are left out, never
    trained on, and a note says how many. Preference data gets a note that SFT trains on the chosen replies.

    Args:
        rows: dataset rows (a `datasets.Dataset` or any iterable of dicts); the columns are the Dataset's, or the
            keys of the first row.
        fmt: one of `FORMATS`, or ``auto`` to detect it (``columns`` when a mapping is given).
        column_mapping: column -> role, for ``columns``.
        system_prompt: system message for rows that have none.
        placeholders: template slot -> value, filled into every message.
        lines: where the rows of a JSON Lines file with bad lines came from (`jsonlines.Lines`): the problems
            then name line numbers, and each bad line is one more malformed row.
        style: where recipes differ (`RowStyle`: the Alpaca prompt, an empty system turn).

    Returns:
        The good rows, one problem line per malformed row (``"row N: reason"``, N from 1; ``"line N: ..."`` with
        `lines`), in the input's order, the input count, the rows left out on purpose and the notes.

    Raises:
        DataError: no rows; a multimodal dataset; unknown or mismatched format; a bad column mapping; every row is
            malformed; a KTO dataset without a desirable row.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        raise DataError("data.dataset_name: the dataset has no rows. Point to a file or split that holds data.")
    columns = list(getattr(rows, "column_names", None) or first.keys())
    if media := media_columns(columns):
        raise DataError(f"data.dataset_name: this is a multimodal dataset (column {', '.join(media)}); {TEXT_ONLY}.")
    if fmt == "auto":
        fmt = "columns" if column_mapping else detect_format(columns, first)
    if column_mapping:  # a mapping may name a column without the spaces around it (as a printed fix does)
        column_mapping = resolve_mapping(columns, column_mapping)
    _check_columns(columns, fmt, column_mapping, first)
    kto = "label" in columns and isinstance(first.get("label"), bool)
    good: list[list[Message]] = []
    numbered: list[tuple[int, str]] = [(n, f"line {n}: {why}") for n, why in lines.unreadable.items()] if lines else []
    numbers: list[int] = []
    kinds: Counter[str] = Counter(unreadable=len(numbered)) if numbered else Counter()
    n_input = undesirable = 0
    for n_input, row in enumerate(chain([first], iterator), start=1):
        number = lines.numbers[n_input - 1] if lines else n_input
        try:
            if kto and not isinstance(row.get("label"), bool):
                raise RowError(f"label is {type_name(row.get('label'))}, expected true or false (KTO data)")
            messages = to_messages(row, fmt, column_mapping, system_prompt, placeholders, style)
        except RowError as exc:
            numbered.append((number, f"{'line' if lines else 'row'} {number}: {exc}"))
            kinds[getattr(exc, "kind", "malformed")] += 1
            continue
        if kto and row["label"] is False:
            undesirable += 1
        else:
            good.append(messages)
            numbers.append(number)
    problems = [text for _, text in sorted(numbered)]
    n_input += len(lines.unreadable) if lines else 0
    if not good:
        if undesirable:
            raise DataError(
                f"data.dataset_name: KTO data (a boolean 'label' column) with no desirable row: all {undesirable} "
                "readable rows are labelled false, and supervised fine-tuning must not learn undesirable replies."
            )
        if kinds.get("media") == len(problems):
            raise DataError(f"data.dataset_name: every row holds images, audio or video ({problems[0]}).")
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise DataError(
            f"data.dataset_name: all {n_input} rows are malformed for format {fmt} ({shown}). "
            f"Check that the format matches the data ({hint('data.format')}, or {hint('data.column_mapping')}) "
            "or fix the rows."
        )
    notes = []
    if kto:
        notes.append(
            f"KTO data (a boolean 'label' column): {len(good)} of {len(good) + undesirable} rows are desirable "
            f"(label=true); the {undesirable} undesirable ones are left out, so no undesirable reply is trained on."
        )
    if fmt == "preference":
        notes.append(
            "Preference data (chosen/rejected): with method sft, training on the chosen replies (the usual first "
            "stage; the rejected ones are not used); with dpo, kto or orpo, on the pairs themselves."
        )
    return Normalised(fmt, good, problems, n_input, undesirable, notes, numbers, dict(kinds))


def choose_format(cfg: DataConfig, columns: Sequence[str], sample: Mapping[str, Any] | None = None) -> str:
    """The row format for a dataset with these columns: the mapped columns, the configured format, or detected.

    Raises:
        DataError: the column mapping and the format disagree, or no format can be detected.
    """
    if problems := column_mapping_problems(cfg.column_mapping, cfg.format):
        raise DataError(problems[0])
    if cfg.column_mapping:
        return "columns"
    return detect_format(columns, sample) if cfg.format == "auto" else cfg.format
