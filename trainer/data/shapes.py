"""Message shapes beyond plain text turns: tool calls and results, content parts, media, template slots (pure).

Phi-3's chat template knows three roles (system, user, assistant) and plain-text content. Richer rows are mapped
into those, the way Microsoft's Phi-4-mini chat template writes function calling, so a tuned Phi-3 learns the
convention its successor uses:

- the tool schemas (a ``tools`` column, OpenAI or ShareGPT/glaive style) go at the end of the system turn,
  ``<|tool|>[{"name": ..., "description": ..., "parameters": ...}]<|/tool|>``;
- a tool call (OpenAI ``tool_calls``, ShareGPT ``function_call``) is an assistant turn,
  ``<|tool_call|>[{"name": ..., "arguments": {...}}]<|/tool_call|>`` after any text of that turn, so the call is
  trained on like any reply;
- a tool result (OpenAI ``tool`` role, ShareGPT ``observation``) is a user turn,
  ``<|tool_response|>...<|/tool_response|>`` (results in a row are merged into one turn), never trained on.

Content parts (``[{"type": "text", "text": ...}]``, the OpenAI/TRL shape) are joined; an image, audio or video part,
an ``<image>``-style marker or a media column is refused: Phi-3-mini reads text only.

Example:
    >>> chat_message({"role": "assistant", "content": None,
    ...               "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}, 2)["content"]
    '<|tool_call|>[{"name": "f", "arguments": {}}]<|/tool_call|>'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.config import CHAT_ROLES
from trainer.phi3 import BOS, END, ENDOFTEXT, ROLE_TAGS

TOOLS_OPEN, TOOLS_CLOSE = "<|tool|>", "<|/tool|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call|>", "<|/tool_call|>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<|tool_response|>", "<|/tool_response|>"

MEDIA_COLUMNS: tuple[str, ...] = ("images", "image", "audios", "audio", "videos", "video")
MEDIA_MARKERS: tuple[str, ...] = ("<image>", "<audio>", "<video>")
MEDIA_PARTS = ("image", "image_url", "input_image", "audio", "input_audio", "video", "video_url", "file")
TEXT_ONLY = "Phi-3-mini reads text only (Phi-3-vision is not supported); use a text-only dataset"

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}|(?<![{\w$%])\{([a-z_][a-z_]{2,})\}(?!\})")
"""Template slots: ``{{name}}`` always; ``{name}`` (lower-case word of 3+ letters) only in text without code."""
CODE_HINTS = ("```", "def ", "function ", "return ", "=>", "printf", 'f"', "f'", ".format(")

Message = dict[str, str]


class DataError(ValueError):
    """A dataset-level problem (unreadable, empty, unknown format, missing split ...); the message names the fix."""


class RowError(ValueError):
    """One row cannot become chat messages; the message says why (e.g. "message 2 has role 'gpt'; ...").

    `kind` sorts the reasons for the data-quality report ("empty reply", "no assistant turn", "media", "malformed").
    """

    def __init__(self, message: str, kind: str = "malformed"):
        super().__init__(message)
        self.kind = kind


def type_name(value: Any) -> str:
    """A value's type as a message shows it (``null`` for None)."""
    return "null" if value is None else type(value).__name__


def _json(value: Any, what: str) -> Any:
    """A value, or the JSON it holds when it is text starting with [ or { (CSV exports and glaive store JSON)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"{what} is text that is not valid JSON ({exc.msg})") from exc
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def content_text(content: Any, index: int, allow_null: bool = False) -> str:
    """A message's content as text: a string, or text parts joined by newlines.

    Raises:
        RowError: a media part or marker, a part without text, or content that is neither (null only when
            `allow_null`, e.g. beside tool calls).
    """
    if content is None and allow_null:
        return ""
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise RowError(f"message {index} content is a list of {type_name(part)}, expected text parts")
            kind = part.get("type")
            if kind in MEDIA_PARTS:
                raise RowError(f"message {index} has an {kind} part; {TEXT_ONLY}", "media")
            text = part.get("text")
            if not isinstance(text, str):
                raise RowError(f"message {index} has a content part of type {kind!r} without text")
            texts.append(text)
        content = "\n".join(texts)
    if not isinstance(content, str):
        raise RowError(f"message {index} content is {type_name(content)}, expected a string")
    if marker := next((m for m in MEDIA_MARKERS if m in content), None):
        raise RowError(f"message {index} has an {marker} marker (a multimodal row); {TEXT_ONLY}", "media")
    return content


def tools_text(tools: Any) -> str:
    """The tool schemas as Phi-4-mini's system-turn block; "" when there are none.

    Accepts a list of function schemas or OpenAI ``{"type": "function", "function": {...}}`` entries (or JSON text).
    """
    tools = _json(tools, "tools")
    if tools in (None, "", [], ()):
        return ""
    if not isinstance(tools, (list, tuple)) or not all(isinstance(t, Mapping) for t in tools):
        raise RowError(f"tools is {type_name(tools)}, expected a list of function schemas")
    schemas = [dict(t["function"]) if isinstance(t.get("function"), Mapping) else dict(t) for t in tools]
    return f"{TOOLS_OPEN}{_dumps(schemas)}{TOOLS_CLOSE}"


def call_text(calls: Sequence[Any], index: int) -> str:
    """Tool calls (OpenAI ``tool_calls`` entries or ``{"name", "arguments"}`` objects) as one marked block."""
    rendered = []
    for call in calls:
        call = _json(call, f"message {index} tool call")
        body = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str):
            raise RowError(f"message {index} has a tool call without a function name")
        arguments = body.get("arguments", {})
        try:  # OpenAI sends the arguments as JSON text
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError:
            pass  # kept as the text it is
        rendered.append({"name": body["name"], "arguments": arguments})
    return f"{CALL_OPEN}{_dumps(rendered)}{CALL_CLOSE}"


def response_text(content: str) -> str:
    """A tool's result as the user turn that carries it back."""
    return f"{RESPONSE_OPEN}{content}{RESPONSE_CLOSE}"


def chat_message(item: Any, index: int) -> Message:
    """One ``{role, content}`` message (OpenAI/TRL shape: content parts, ``tool_calls``, the ``tool`` role).

    Raises:
        RowError: the item is not a message, its role is unknown, or its content cannot be read as text.
    """
    if not isinstance(item, Mapping):
        raise RowError(f"message {index} is {type_name(item)}, expected a {{role, content}} object")
    role, calls = item.get("role"), item.get("tool_calls")
    if role == "tool":
        return {"role": "user", "content": response_text(content_text(item.get("content"), index))}
    if role not in CHAT_ROLES:
        shown = "no role" if role is None else f"role {role!r}"
        raise RowError(f"message {index} has {shown}; expected system, user, assistant or tool")
    if role == "assistant" and calls:
        text = content_text(item.get("content"), index, allow_null=True)
        return {"role": role, "content": (text + "\n" if text.strip() else "") + call_text(calls, index)}
    return {"role": role, "content": content_text(item.get("content"), index)}


SHAREGPT_ROLES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
"""ShareGPT ``from`` value -> chat role (tool turns: see `sharegpt_message`)."""


def sharegpt_message(item: Any, index: int) -> Message:
    """One ShareGPT ``{from, value}`` message; ``function_call`` is a call, ``observation``/``tool`` a result."""
    if not isinstance(item, Mapping):
        raise RowError(f"message {index} is {type_name(item)}, expected a {{from, value}} object")
    speaker, value = item.get("from"), item.get("value")
    if speaker == "function_call":
        call = _json(value, f"message {index} function_call")
        return {"role": "assistant", "content": call_text(call if isinstance(call, list) else [call], index)}
    if speaker in ("observation", "tool", "function_response"):
        return {"role": "user", "content": response_text(content_text(value, index))}
    role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
    if role is None:
        shown = "no 'from'" if speaker is None else f"from {speaker!r}"
        raise RowError(
            f"message {index} has {shown}; expected human, user, gpt, assistant, chatgpt, system, function_call "
            "or observation"
        )
    return {"role": role, "content": content_text(value, index)}


def merge_tool_responses(messages: list[Message]) -> list[Message]:
    """Results of several tool calls in a row become one user turn (the template has one turn per speaker)."""
    out: list[Message] = []
    for message in messages:
        both = [m["content"].startswith(RESPONSE_OPEN) for m in (out[-1:] or [{"content": ""}]) + [message]]
        if out and all(both) and out[-1]["role"] == message["role"] == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + message["content"]}
        else:
            out.append(message)
    return out


def with_tools(messages: list[Message], tools: Any) -> list[Message]:
    """The tool schemas added to the system turn (a system turn is made when the row has none)."""
    block = tools_text(tools)
    if not block:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n" + block}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


def media_columns(columns: Sequence[str]) -> list[str]:
    """The dataset's image/audio/video columns (a multimodal dataset)."""
    return [c for c in columns if c.lower() in MEDIA_COLUMNS]


def placeholder_slots(text: str) -> list[str]:
    """The template slots in a text ({{name}} always; {name} only where the text does not look like code)."""
    code = any(h in text for h in CODE_HINTS)
    return [double or single for double, single in PLACEHOLDER_RE.findall(text) if double or (single and not code)]


FILLED_LIMIT = 100_000
"""Characters a message may grow to when its placeholders are filled: a few slots and a long value must not make a
row of megabytes (each value is at most 2,000 characters: `data.placeholders`)."""


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """`text` with the slots named in `values` filled in (``{{name}}`` and, outside code, ``{name}``).

    Raises:
        RowError: the filled text would pass `FILLED_LIMIT` (the row is left out as malformed, counted and shown).
    """
    if not values or "{" not in text:
        return text
    code = any(h in text for h in CODE_HINTS)
    grown = len(text)

    def fill(match: re.Match[str]) -> str:
        nonlocal grown
        double, single = match.group(1), match.group(2)
        name = double or (None if code else single)
        value = values.get(name, match.group(0)) if name else match.group(0)
        grown += len(value) - len(match.group(0))
        if grown > FILLED_LIMIT:
            raise RowError(f"filling its placeholders makes a message of over {FILLED_LIMIT:,} characters")
        return value

    return PLACEHOLDER_RE.sub(fill, text)


# Phi-3 chat markup, as the tokenizer's chat template writes it.
PHI3_ROLE_TAG_RE = re.compile(r"<\|(system|user|assistant)\|>")
PHI3_MARKERS: tuple[str, ...] = (*ROLE_TAGS, END)


def phi3_markup_messages(text: str) -> list[Message]:
    """Phi-3 chat markup parsed back into messages; plain text is one assistant message (see `to_messages`)."""
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
