"""The shared rules of a few settings (pure, no dataclasses): chat roles and column mappings, Hub repo IDs, and
`hint`, the neutral way a fix names a setting (each front end renders it: a form label, a CLI flag)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")
"""Chat roles the Phi-3 chat template renders (it silently drops any other role, so others are rejected)."""
CONVERSATION_ROLE = "messages"
"""The column-mapping value for a column that holds a whole conversation (a list of {role, content} or {from,
value} messages), e.g. dialog=messages."""
MAPPING_EXAMPLE = {"question": "user", "answer": "assistant"}


def hint(key: str, value: Any = None) -> str:
    """A fix that names a setting, in the neutral form every front end renders: ``set data.format to `alpaca```.

    Mappings are written as the form and `--set` take them (``question=user,answer=assistant``).
    """
    if value is None:
        return f"set {key}"
    if isinstance(value, Mapping):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    return f"set {key} to `{value}`"


def column_mapping_problems(mapping: Mapping[str, str] | None, fmt: str) -> list[str]:
    """What is wrong with a column -> chat role mapping for a row format (pure; the one copy of these rules).

    Args:
        mapping: `data.column_mapping` (empty or None when not used).
        fmt: `data.format` (``auto``, ``columns`` or a named format).

    Returns:
        Problems as ``"<key>: <problem>. <fix>"`` (empty when the mapping and the format agree).
    """
    if not mapping:
        if fmt == "columns":
            return [f"data.format: columns needs data.column_mapping; {hint('data.column_mapping', MAPPING_EXAMPLE)}."]
        return []
    found = []
    bad = {column: role for column, role in mapping.items() if role not in (*CHAT_ROLES, CONVERSATION_ROLE)}
    if bad:
        found.append(
            f"data.column_mapping: roles {bad} are not chat roles. Map each column to system, user or assistant "
            f"(or a column holding a whole conversation to {CONVERSATION_ROLE})."
        )
    elif not {"assistant", CONVERSATION_ROLE} & set(mapping.values()):
        found.append("data.column_mapping: no column maps to assistant. Map the answer column to assistant.")
    if fmt not in ("auto", "columns"):
        found.append(f"data.format: {fmt} conflicts with data.column_mapping. Use format auto or columns.")
    return found


def repo_id_problem(repo_id: str) -> str | None:
    """The problem with a Hub model repo ID (`namespace/name`), or None (our rule and huggingface_hub's validator)."""
    fix = "Use namespace/name with letters, digits, '-', '_' or '.' (e.g. alice/phi3-pirate-lora)."
    if not repo_id or not repo_id.strip():
        return f"hub.repo_id: empty. {fix}"
    if "/" not in repo_id:
        return f"hub.repo_id: {repo_id!r} has no namespace. Use <your user name>/{repo_id}."
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    reason = None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).split(":")[0].rstrip(".")
    if reason is None and not REPO_ID_RE.match(repo_id):
        reason = "Repo id must use alphanumeric chars, '-', '_' or '.'"
    return f"hub.repo_id: {repo_id!r} is not a valid repo ID ({reason}). {fix}" if reason else None


TEXT_LIMIT = 500
"""Characters of a text setting (IDs, names, splits, each entry of a mapping or a list), unless its field says."""
ENTRY_LIMIT = 100
"""Entries of a mapping or list setting (column mapping, placeholders, target modules)."""


def size_problem(key: str, value: Any, max_chars: int = TEXT_LIMIT) -> str | None:
    """A text, mapping or list setting over its size (`max_chars` per text, `ENTRY_LIMIT` entries), or None: checked
    before anything reads or expands it."""
    if isinstance(value, (dict, list)) and len(value) > ENTRY_LIMIT:
        return f"{key}: {len(value)} entries, more than the {ENTRY_LIMIT} it takes. Keep the ones you need."
    texts = [value] if isinstance(value, str) else [*value, *value.values()] if isinstance(value, dict) else value
    longest = max((len(t) for t in texts if isinstance(t, str)), default=0) if isinstance(texts, list) else 0
    if longest > max_chars:
        return f"{key}: {longest:,} characters, more than the {max_chars:,} it takes. Shorten it."
    return None
