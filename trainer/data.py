"""Training data: load a dataset, detect its format, normalise every row to chat `messages`, preview it, split it.

A dataset is a Hub dataset ID (``user/name``, optionally a config and split names) or a local ``.jsonl``, ``.json``,
``.csv`` or ``.parquet`` file. Its rows may be in any of the common chat-instruction layouts (see `FORMATS`):
``messages`` (role/content lists, what TRL and the Phi-3 chat template expect), ShareGPT ``conversations``
(from/value lists), Alpaca (``instruction``/``input``/``output``), TRL prompt/completion (strings or conversational
lists), ``text`` (Phi-3 chat markup or plain text) or any columns mapped to chat roles. Every row becomes a list of
``{"role", "content"}`` messages that ends with an assistant reply; malformed rows are reported with their row
numbers, never silently dropped. The row-level functions (`detect_format`, `to_messages`, `normalise`,
`split_eval`) are pure; `load_table`, `prepare` and `preview` do the I/O.

Example:
    >>> from trainer.config import DataConfig
    >>> from trainer.data import prepare
    >>> prepared = prepare(DataConfig(dataset_name="examples/pirate_alpaca.json"))
    >>> prepared.format, len(prepared.train), len(prepared.eval)
    ('alpaca', 216, 24)
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import PROJECT_ROOT, DataConfig

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("messages", "sharegpt", "alpaca", "prompt_completion", "text", "columns")
"""Row formats `to_messages` understands (``columns`` needs a column mapping and is never auto-detected)."""

ROLES: tuple[str, ...] = ("system", "user", "assistant")
"""Chat roles the Phi-3 chat template renders (it silently drops any other role, so others are rejected)."""

SUPPORTED_SUFFIXES: dict[str, str] = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""Local file suffix -> the `datasets` packaged builder that reads it."""

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
PHI3_END = "<|end|>"
PHI3_EOS = "<|endoftext|>"
PHI3_BOS = "<s>"
PHI3_MARKERS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>", PHI3_END)

# Suffixes that mark a name as a (wrong kind of) file rather than a Hub ID such as "teknium/OpenHermes-2.5".
_OTHER_FILE_SUFFIXES = frozenset(
    ".txt .tsv .xlsx .xls .ods .xml .html .htm .md .yaml .yml .arrow .feather .pkl .pickle .npy .npz .zip .gz .bz2 "
    ".xz .zst .tar .tgz .7z .rar .pdf .doc .docx .ndjson .jsonlines .pq .db .sqlite .h5 .hdf5 .avro .orc".split()
)
_SUFFIX_LIST = ", ".join(SUPPORTED_SUFFIXES)
_MAP_EXAMPLE = "--map question=user --map answer=assistant"
_STATS_BATCH = 512


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


@dataclass
class PreparedData:
    """What training consumes: `datasets.Dataset` objects with a single ``messages`` column.

    Attributes:
        train: rows to train on.
        eval: held-out rows (the test split, or `eval_fraction` of the train rows); None when there are none.
        format: the row format used.
        n_input: rows read from the train split (before malformed rows were set aside).
        problems: one line per malformed row (train and eval).
    """

    train: datasets.Dataset
    eval: datasets.Dataset | None
    format: str
    n_input: int
    problems: list[str] = field(default_factory=list)


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
    """

    format: str
    n_rows: int
    n_input: int
    problems: list[str]
    rendered: list[str]
    token_lengths: dict[str, float]
    max_length: int
    n_over_max_length: int


# --------------------------------------------------------------------------- loading


def resolve_local_path(name: str) -> Path | None:
    """Tell a local data file from a Hub dataset ID.

    A name is looked up as given (relative to the working directory) and then relative to the repository root,
    so ``examples/pirate_chat.jsonl`` works from any directory. Directories are left to `datasets` (None).

    Args:
        name: `DataConfig.dataset_name`.

    Returns:
        The path of an existing supported file, or None when the name looks like a Hub ID (``user/name``).

    Raises:
        DataError: the name is a file path, but the file is missing or its suffix is not supported.
    """
    name = name.strip()
    if not name:
        raise DataError("data.dataset_name: empty. Give a Hub dataset ID (user/name) or a local file path.")
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [given, PROJECT_ROOT / given]
    suffix = given.suffix.lower()
    for path in candidates:
        if path.is_file():
            if suffix in SUPPORTED_SUFFIXES:
                return path
            raise DataError(
                f"data.dataset_name: {name} is a {suffix or 'suffix-less'} file, which cannot be read. "
                f"Supported local files are {_SUFFIX_LIST}; convert it (e.g. one JSON object per line in a .jsonl)."
            )
        if path.is_dir():
            return None
    if suffix in SUPPORTED_SUFFIXES:
        raise DataError(
            f"data.dataset_name: file {name} not found (looked in {Path.cwd()} and {PROJECT_ROOT}). "
            f"Check the path; supported local files are {_SUFFIX_LIST}."
        )
    if suffix in _OTHER_FILE_SUFFIXES or _looks_like_path(name):
        raise DataError(
            f"data.dataset_name: {name} is not a supported data file. "
            f"Use a local {_SUFFIX_LIST} file that exists, or a Hub dataset ID such as user/name."
        )
    return None


def _looks_like_path(name: str) -> bool:
    """Hub IDs are "name" or "user/name"; anything else with separators is a path."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if name.startswith((".", "~")) or Path(name).is_absolute():
        return True
    return sum(name.count(sep) for sep in separators) > 1


def load_table(cfg: DataConfig, split: str, token: str | None = None) -> datasets.Dataset:
    """Load one split of the configured dataset as a `datasets.Dataset` (the first `max_rows` rows).

    Local files go through `datasets.load_dataset` with the json/csv/parquet builder; they have one split,
    ``train`` (slices such as ``train[:100]`` work). CSV columns are read as text, so an answer "4" stays "4".
    Anything else is a Hub dataset ID (or a local dataset folder) loaded with `cfg.dataset_config`.

    Args:
        cfg: the data settings.
        split: split name, usually `cfg.dataset_train_split` or `cfg.dataset_test_split`.
        token: Hugging Face token for private or gated datasets (never logged).

    Returns:
        The rows, with at least one row.

    Raises:
        DataError: the file is missing, unsupported, unreadable or empty; the split does not exist; the Hub
            dataset cannot be found, read or reached.
    """
    import datasets

    path = resolve_local_path(cfg.dataset_name)
    field_name = _split_field(cfg, split)
    if path is not None:
        table = _load_local(path, split, field_name)
        where = str(path)
    else:
        table = _load_hub(cfg, split, field_name, token)
        where = f"{cfg.dataset_name} ({split})"
    if not isinstance(table, datasets.Dataset):  # e.g. a folder loader that ignored split=
        raise DataError(f"{field_name}: {where} did not load as one split. Name the split to use.")
    if len(table) == 0:
        raise DataError(
            f"data.dataset_name: {where} has no rows. Check that the right file/split is named and that it holds data."
        )
    if cfg.max_rows is not None and cfg.max_rows < len(table):
        table = table.select(range(max(cfg.max_rows, 1)))
    logger.info("loaded %d rows with columns %s from %s", len(table), table.column_names, where)
    return table


def _split_field(cfg: DataConfig, split: str) -> str:
    """The setting a split name came from, for error messages."""
    if cfg.dataset_test_split and split == cfg.dataset_test_split and split != cfg.dataset_train_split:
        return "data.dataset_test_split"
    return "data.dataset_train_split"


def _load_local(path: Path, split: str, field_name: str) -> datasets.Dataset:
    import datasets

    if split.split("[", 1)[0].strip() != "train":
        raise DataError(
            f"{field_name}: split {split!r} does not exist in {path}; a local file has one split, 'train'. "
            "Use train; to evaluate on a local file leave dataset_test_split empty and hold out eval_fraction "
            "of the rows (or put train/test files in a folder or a Hub dataset)."
        )
    if path.stat().st_size == 0 or (path.stat().st_size < 65536 and not path.read_bytes().strip()):
        raise DataError(f"data.dataset_name: {path} is empty (no rows). Add rows, or point to the right file.")
    builder = SUPPORTED_SUFFIXES[path.suffix.lower()]
    kwargs: dict[str, Any] = {}
    if builder == "csv":
        header = _csv_header(path)
        if header:
            kwargs["features"] = datasets.Features({name: datasets.Value("string") for name in header})
    try:
        return datasets.load_dataset(builder, data_files=str(path), split=split, **kwargs)
    except Exception as exc:  # any failure to parse a user's file is a problem with that file
        detail = _error_detail(exc)
        if "corresponds to no data" in detail:
            raise DataError(f"data.dataset_name: {path} has no rows. Add rows, or point to the right file.") from exc
        raise DataError(
            f"data.dataset_name: cannot read {path} as {path.suffix.lower()} ({detail}). "
            f"Check that the file is valid {_FILE_SHAPES[path.suffix.lower()]} and not truncated."
        ) from exc


_FILE_SHAPES = {
    ".jsonl": "JSON Lines (one JSON object per line)",
    ".json": "JSON (an array of objects, or JSON Lines)",
    ".csv": "CSV with a header row",
    ".parquet": "Parquet",
}


def _csv_header(path: Path) -> list[str] | None:
    """The header row of a CSV file, or None when it cannot be read plainly (the loader then decides)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not header or any(not name for name in header) or len(set(header)) != len(header):
        return None
    return header


def _error_detail(exc: BaseException, limit: int = 300) -> str:
    """The most specific message in an exception chain ("JSON parse error: ..." rather than "An error occurred")."""
    from datasets.exceptions import DatasetGenerationError

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    specific = [e for e in seen if str(e).strip() and not isinstance(e, DatasetGenerationError)]
    best = specific[0] if specific else exc
    text = " ".join(str(best).split()) or type(best).__name__
    return f"{type(best).__name__}: {text[:limit]}"


def _load_hub(cfg: DataConfig, split: str, field_name: str, token: str | None) -> datasets.Dataset:
    import datasets
    from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    name = cfg.dataset_name.strip()
    try:
        return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)
    except (DatasetNotFoundError, HfHubHTTPError, FileNotFoundError) as exc:
        raise DataError(
            f"data.dataset_name: dataset {name!r} not found or not readable ({_error_detail(exc)}). "
            "Check the ID and that your token can read it (private and gated datasets need a read token "
            "and, for gated ones, accepted terms)."
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise DataError(
            f"data.dataset_name: could not reach the Hub for {name!r} ({_error_detail(exc)}). Check the network "
            "(and that HF_HUB_OFFLINE is not set), check the ID and that your token can read it."
        ) from exc
    except DatasetGenerationError as exc:
        raise DataError(
            f"data.dataset_name: cannot read the files of {name!r} ({_error_detail(exc)}). "
            "Check the dataset's files, or pick another config or split."
        ) from exc
    except ValueError as exc:
        message = str(exc)
        if "split" in message.lower():
            available = _split_names(name, cfg.dataset_config, token)
            listing = ", ".join(available) if available else f"see the error: {_error_detail(exc)}"
            raise DataError(
                f"{field_name}: {name} has no split {split!r}. Available splits: {listing}. Use one of these."
            ) from exc
        if "config" in message.lower():
            raise DataError(
                f"data.dataset_config: {name} has no config {cfg.dataset_config!r} ({_error_detail(exc)}). "
                "Set dataset_config to one of the available configs."
            ) from exc
        raise


def _split_names(name: str, config: str | None, token: str | None) -> list[str]:
    """The split names of a dataset, or [] when they cannot be found (offline, no access ...)."""
    import datasets

    try:
        return list(datasets.get_dataset_split_names(name, config, token=token))
    except Exception as exc:  # only used to improve an error message; never let it replace the real one
        logger.debug("could not list the splits of %s: %s", name, exc)
        return []


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
        f"Map your columns to chat roles instead ({_map_hint(columns)}, setting column_mapping), "
        "or pick a format with --format."
    )


def _expected() -> str:
    return "; ".join(f"{fmt} ({description})" for fmt, (_, description) in FORMAT_COLUMNS.items())


def _map_hint(columns: Sequence[str]) -> str:
    """``--map <col>=user --map <col>=assistant`` with the dataset's own column names where there are two or more."""
    names = [c for c in columns if re.fullmatch(r"[\w.-]+", c)]
    if len(names) >= 2:
        return f"e.g. --map {names[0]}=user --map {names[1]}=assistant"
    return f"e.g. {_MAP_EXAMPLE}"


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
        if not column_mapping:
            raise DataError(f"data.column_mapping: empty, but format columns needs it. Map columns, {_MAP_EXAMPLE}.")
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
    if role not in ROLES:
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
    if body.endswith(PHI3_EOS):
        body = body[: -len(PHI3_EOS)]
    parts = PHI3_ROLE_TAG_RE.split(body)
    prefix = parts[0].strip()
    if prefix.startswith(PHI3_BOS):
        prefix = prefix[len(PHI3_BOS) :].strip()
    if len(parts) == 1:
        raise RowError("text has <|end|> but no <|system|>, <|user|> or <|assistant|> tag")
    if prefix:
        raise RowError(f"text has {prefix[:30]!r} before the first role tag; chat markup must start with one")
    messages = []
    pairs = list(zip(parts[1::2], parts[2::2], strict=True))
    for index, (role, chunk) in enumerate(pairs, start=1):
        chunk = chunk[1:] if chunk.startswith("\n") else chunk
        content, end, rest = chunk.partition(PHI3_END)
        if not end and index < len(pairs):
            raise RowError(f"message {index} ({role}) is not closed with <|end|>")
        if rest.strip():
            raise RowError(f"message {index} ({role}) has {rest.strip()[:30]!r} after <|end|>")
        messages.append({"role": role, "content": content if end else content.rstrip("\n")})
    return messages


def _columns(row: Mapping[str, Any], column_mapping: Mapping[str, str]) -> list[Message]:
    out = []
    for column, role in column_mapping.items():
        if role not in ROLES:
            raise DataError(f"data.column_mapping: {column}={role} is not a chat role. Use system, user or assistant.")
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
    if fmt == "columns":
        if not column_mapping:
            raise DataError(f"data.column_mapping: empty, but format columns needs it. Map columns, {_MAP_EXAMPLE}.")
        bad = {c: r for c, r in column_mapping.items() if r not in ROLES}
        if bad:
            raise DataError(f"data.column_mapping: roles {bad} are not chat roles. Use system, user or assistant.")
        if "assistant" not in column_mapping.values():
            raise DataError("data.column_mapping: no column maps to assistant. Map the answer column to assistant.")
    missing = [c for c in required_columns(fmt, column_mapping) if c not in columns]
    if missing:
        setting = "data.column_mapping" if fmt == "columns" else "data.format"
        raise DataError(
            f"{setting}: format {fmt} needs the columns {missing}, but the dataset has {list(columns)}. "
            f"Use format auto, the format that matches, or map the existing columns ({_map_hint(columns)})."
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
            "Check that the format matches the data (--format, --map) or fix the rows."
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


# --------------------------------------------------------------------------- prepare and preview


def _choose_format(cfg: DataConfig, columns: Sequence[str]) -> str:
    if cfg.column_mapping:
        if cfg.format not in ("auto", "columns"):
            raise DataError(
                f"data.format: {cfg.format} conflicts with data.column_mapping. Use format auto or columns."
            )
        return "columns"
    if cfg.format == "columns":
        raise DataError(f"data.format: columns needs data.column_mapping. Map columns, {_MAP_EXAMPLE}.")
    return detect_format(columns) if cfg.format == "auto" else cfg.format


def _messages_dataset(rows: list[list[Message]]) -> datasets.Dataset:
    import datasets

    return datasets.Dataset.from_dict({"messages": rows})


def prepare(cfg: DataConfig, token: str | None = None, seed: int = 42) -> PreparedData:
    """Load, normalise and split the data for training.

    Args:
        cfg: the data settings.
        token: Hugging Face token for private or gated datasets (never logged).
        seed: seed of the held-out split (use the training seed).

    Returns:
        Train and eval datasets with one ``messages`` column. Eval is `cfg.dataset_test_split` normalised the
        same way when set, else a seeded `cfg.eval_fraction` of the train rows, None when that is 0 (or there
        is only one row).

    Raises:
        DataError: the data cannot be loaded or no row can be used (see `load_table`, `normalise`).
    """
    table = load_table(cfg, cfg.dataset_train_split, token)
    fmt = _choose_format(cfg, table.column_names)
    mapping = cfg.column_mapping or None
    train = normalise(table, fmt, mapping, cfg.system_prompt)
    problems = list(train.problems)
    if cfg.dataset_test_split:
        split = cfg.dataset_test_split
        try:
            held = normalise(load_table(cfg, split, token), fmt, mapping, cfg.system_prompt)
        except DataError as exc:
            raise DataError(f"{exc} (in the eval split {split!r})") from exc
        problems += [f"eval split {split!r}, {p}" for p in held.problems]
        train_rows, eval_rows = train.rows, held.rows
    else:
        train_rows, eval_rows = split_eval(train.rows, cfg.eval_fraction, seed)
        if cfg.eval_fraction > 0 and not eval_rows:
            logger.warning("only %d usable row: nothing held out for evaluation", len(train_rows))
    logger.info(
        "data: %s format, %d of %d rows usable, %d train / %d eval",
        fmt,
        len(train.rows),
        train.n_input,
        len(train_rows),
        len(eval_rows),
    )
    return PreparedData(
        train=_messages_dataset(train_rows),
        eval=_messages_dataset(eval_rows) if eval_rows else None,
        format=fmt,
        n_input=train.n_input,
        problems=problems,
    )


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


def preview(cfg: DataConfig, tokenizer: Any, max_length: int, n: int = 3, token: str | None = None) -> Preview:
    """What training would see of the train split: format, counts, problems, rendered rows, token lengths.

    Args:
        cfg: the data settings.
        tokenizer: the model's tokenizer (its chat template renders the rows).
        max_length: tokens per row that training keeps.
        n: rows to render.
        token: Hugging Face token for private or gated datasets (never logged).

    Returns:
        The preview; format it with `format_preview`.

    Raises:
        DataError: the data cannot be loaded or no row can be used.
    """
    table = load_table(cfg, cfg.dataset_train_split, token)
    fmt = _choose_format(cfg, table.column_names)
    data = normalise(table, fmt, cfg.column_mapping or None, cfg.system_prompt)
    lengths = token_lengths(tokenizer, data.rows)
    return Preview(
        format=data.format,
        n_rows=len(data.rows),
        n_input=data.n_input,
        problems=data.problems,
        rendered=[tokenizer.apply_chat_template(m, tokenize=False) for m in data.rows[: max(n, 0)]],
        token_lengths=length_stats(lengths),
        max_length=max_length,
        n_over_max_length=sum(1 for length in lengths if length > max_length),
    )


def format_preview(p: Preview, max_problems: int = 10) -> str:
    """A preview as readable text for the command line.

    Args:
        p: the preview.
        max_problems: problem lines to show before "... and N more".

    Returns:
        Multi-line text: format, rows, problems, token lengths, rows over max_length, then the rendered rows.
    """
    stats = p.token_lengths
    lines = [
        f"format: {p.format}",
        f"rows:   {p.n_rows} usable of {p.n_input} ({len(p.problems)} malformed, left out)",
    ]
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
    for index, text in enumerate(p.rendered, start=1):
        lines += ["", f"--- row {index} (rendered with the chat template) ---", text]
    return "\n".join(lines)
