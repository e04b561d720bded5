"""The shared rules of a few settings (pure, no dataclasses): chat roles and column mappings (and the mapping to
suggest for a dataset's columns), Hub repo IDs, and `hint`, the neutral way a fix names a setting (each front end
renders it: a form label, a CLI flag)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.phi3 import DEFAULT_BASE_MODEL, STOP_TOKENS

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")
"""Chat roles the Phi-3 chat template renders (it silently drops any other role, so others are rejected)."""
CONVERSATION_ROLE = "messages"
"""The column-mapping value for a column that holds a whole conversation (a list of {role, content} or {from,
value} messages), e.g. dialog=messages."""
MAPPING_EXAMPLE = {"question": "user", "answer": "assistant"}
RUN_NAME_MAX = 80


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


USER_WORDS = frozenset({"question", "prompt", "instruction", "input", "query", "ask", "q", "user", "human", "request"})
"""Words in a column name that mark the user's side (the question)."""
ASSISTANT_WORDS = frozenset(
    {"answer", "ans", "response", "output", "completion", "reply", "a", "assistant", "gpt", "bot", "solution"}
)
"""Words in a column name that mark the assistant's side (the answer)."""
OTHER_WORDS = frozenset(
    {"note", "id", "ids", "uuid", "comment", "metadata", "meta", "source", "url", "link", "category", "tag", "label"}
    | {"index", "idx", "date", "time", "timestamp", "lang", "language", "score", "split", "topic", "author", "hash"}
)
"""Words in a column name that mark neither side (notes, IDs, metadata): never suggested for a role."""


def _name_words(name: str) -> set[str]:
    """The lower-case words of a column name ("Question Text", "question_text", "questionText"), plural -s off."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower())
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words}


def _name_side(name: str) -> int:
    """+1 a question-like name, -1 an answer-like one, 0 neither or both."""
    words = _name_words(name)
    return bool(words & USER_WORDS) - bool(words & ASSISTANT_WORDS)


def mapping_name(column: str) -> str | None:
    """How a column is written in a mapping (`name=role,...`), or None when it cannot be: its name without the
    spaces around it (the mapping parsers strip them; `resolve_mapping` finds the column again), with no ``,``,
    ``=`` or backtick (they separate entries, key and role, and a hint's value)."""
    name = column.strip()
    return name if name and name.isprintable() and not re.search(r"[,=`]", name) else None


def suggest_column_mapping(columns: Sequence[str], sample: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The column mapping to suggest for a dataset that no format fits (pure).

    A column holding a conversation list maps to messages. Else the user column is the most question-like (by name:
    question, prompt, instruction, input, query, q ...; then content that ends in "?"; then the shorter content),
    and the assistant column the most answer-like of the rest (answer, ans, response, output, completion, reply,
    a ...; then the longer content). Notes, IDs, comments and metadata, non-text values, and names a mapping cannot
    write (`mapping_name`) are never suggested; the generic example stands in when fewer than two columns are left.

    Args:
        columns: the dataset's column names, in order.
        sample: a row, whose values show which column holds what.

    Returns:
        {column as written in a mapping: role}, the user column first (messages follow the mapping's order).
    """
    written = [mapping_name(column) for column in columns]
    names = {name: column for name, column in zip(written, columns, strict=True) if name and written.count(name) == 1}
    row = sample or {}
    for name, column in names.items():
        value = row.get(column)
        if isinstance(value, (list, tuple)) and value and all(isinstance(m, Mapping) for m in value):
            return {name: CONVERSATION_ROLE}
    texts = {n: row.get(c) or "" for n, c in names.items() if isinstance(row.get(c), (str, type(None)))}
    pool = [n for n in texts if not _name_words(n) & OTHER_WORDS]
    if len(pool) < 2:
        return dict(MAPPING_EXAMPLE)
    user = max(pool, key=lambda n: (_name_side(n), texts[n].rstrip().endswith("?"), -len(texts[n]), -pool.index(n)))
    rest = [n for n in pool if n != user]
    assistant = max(rest, key=lambda n: (-_name_side(n), len(texts[n]), -rest.index(n)))
    return {user: "user", assistant: "assistant"}


def resolve_mapping(columns: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """The mapping with each key that names no column, but exactly one column written without the spaces around it
    (a CSV header `question, answer` has the column " answer"), renamed to that column (pure)."""
    resolved = {}
    for key, role in mapping.items():
        stripped = [c for c in columns if c.strip() == key.strip()]
        resolved[stripped[0] if key not in columns and len(stripped) == 1 else key] = role
    return resolved


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


def cross_field_problems(cfg: Any) -> list[str]:
    """Problems of a RunConfig that involve more than one field or a field's meaning."""
    found = []
    if not cfg.model.model_name_or_path.strip():
        found.append(f"model.model_name_or_path: empty. Give a Hub model ID such as {DEFAULT_BASE_MODEL}.")
    if not cfg.data.dataset_name.strip():
        found.append("data.dataset_name: empty. Give a Hub dataset ID (user/name) or a local .jsonl/.csv file.")
    if cfg.model.pad_token in STOP_TOKENS:
        found.append(
            f"model.pad_token: {cfg.model.pad_token} is a stop token, so the model would learn never to stop. "
            "Use <unk>."
        )
    if not cfg.lora.target_modules:
        found.append("lora.target_modules: empty. Use qkv_proj,o_proj,gate_up_proj,down_proj or all-linear.")
    if cfg.training.max_steps == 0:
        found.append("training.max_steps: 0 trains nothing. Use -1 (train for num_train_epochs) or a positive count.")
    found += column_mapping_problems(cfg.data.column_mapping, cfg.data.format)
    if cfg.hub.push_checkpoints and not cfg.hub.repo_id:
        found.append(f"hub.push_checkpoints: needs hub.repo_id (where the checkpoints go); {hint('hub.repo_id')}.")
    if cfg.hub.push_merged and not cfg.hub.repo_id:
        found.append(
            f"hub.push_merged: needs hub.repo_id (the merged model goes to <repo_id>-merged); {hint('hub.repo_id')}."
        )
    if cfg.hub.repo_id and (problem := repo_id_problem(cfg.hub.repo_id)):
        found.append(problem)
    if len(cfg.run.name) > RUN_NAME_MAX or any(c in cfg.run.name for c in "\r\n\t"):
        found.append(f"run.name: use one line of at most {RUN_NAME_MAX} characters.")
    if cfg.training.method == "grpo":
        found += grpo_problems(cfg.grpo, cfg.training)
    if space := cfg.run.trackio_space_id.strip():
        if cfg.run.report_to != "trackio":
            found.append(
                "run.trackio_space_id: only trackio logs to a Space. Set run.report_to to trackio, or clear it."
            )
        elif not re.fullmatch(r"([A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}", space):
            found.append(f"run.trackio_space_id: {space!r} is not a Space ID. Use user/name, or name (in yours).")
    return found


PATTERN_EXAMPLE = r"(?s).*Answer: \d+"


def grpo_problems(g: Any, t: Any) -> list[str]:
    """What is wrong with a GRPO run's settings (pure): the reward menu, what each reward needs (a pattern, words),
    and a batch that does not hold whole groups of completions."""
    import re as regex

    from trainer.rewards import parse_rewards

    found = []
    rewards: list[tuple[str, float]] = []
    if g.rewards.strip() or not g.reward_module.strip():
        try:
            rewards = parse_rewards(g.rewards)
        except ValueError as exc:
            found.append(f"grpo.rewards: {exc} {hint('grpo.rewards', 'answer_match:1.0, think_format:0.5')}.")
    names = {name for name, _ in rewards}
    if "format_regex" in names:
        try:
            if not g.format_pattern:
                raise regex.error("empty")
            regex.compile(g.format_pattern)
        except regex.error as exc:
            found.append(
                f"grpo.format_pattern: format_regex needs a regular expression the completion must match ({exc}); "
                f"{hint('grpo.format_pattern', PATTERN_EXAMPLE)}."
            )
    if "words" in names and not (g.required_words or g.forbidden_words):
        found.append(
            f"grpo.required_words: the words reward needs required or forbidden words; {hint('grpo.required_words')}."
        )
    batch = t.per_device_train_batch_size * t.gradient_accumulation_steps
    generation = g.generation_batch_size or batch
    if generation % g.num_generations:
        what = "grpo.generation_batch_size" if g.generation_batch_size else "training.per_device_train_batch_size"
        found.append(
            f"{what}: {generation} completions per generation is not a multiple of grpo.num_generations "
            f"({g.num_generations}): each prompt needs its whole group. Make batch size x gradient accumulation "
            f"a multiple of {g.num_generations}, or {hint('grpo.num_generations')}."
        )
    elif g.generation_batch_size and g.generation_batch_size % t.per_device_train_batch_size:
        found.append(
            f"grpo.generation_batch_size: {g.generation_batch_size} is not a multiple of the batch size "
            f"({t.per_device_train_batch_size}). Use a multiple of both, or leave it empty."
        )
    return found
