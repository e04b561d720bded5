"""Prompt data for GRPO: each row's prompt as chat messages, with the columns its rewards read kept beside it.

GRPO trains on prompts only: the model writes the completions and the rewards (`trainer.rewards`) score them, some
against a reference column of the same row (GSM8K's ``answer``, a ``tools`` list). A row's prompt is its prompt
column (``grpo.prompt_column``: text, or a list of chat messages), or, in chat data, its ``messages`` up to the last
reply (the reply itself is kept as ``reference``). Every other column is kept as it is, because TRL hands a row's
columns to the reward functions.

Example:
    >>> from trainer.config import preset_config
    >>> from trainer.data.prompts import prepare_prompts
    >>> prepared = prepare_prompts(preset_config("tiny-demo-grpo"))
    >>> prepared.train[0]["prompt"]
    [{'role': 'user', 'content': 'What is rain?'}]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.config import RunConfig, hint
from trainer.data.formats import Normalised, _json_list, _role_content_list
from trainer.data.holdout import split_eval
from trainer.data.load import PreparedData, load_table, read_split
from trainer.data.quality import malformed_problem
from trainer.data.shapes import DataError, Message, RowError, type_name
from trainer.rewards import column_problems, parse_rewards, reward_columns

logger = logging.getLogger(__name__)

CHAT_COLUMN = "messages"
REFERENCE_COLUMN = "reference"
"""Where a chat row's last reply is kept (a reference a reward module may read)."""


def prompt_source(columns: Sequence[str], prompt_column: str) -> str | None:
    """The column the prompts come from: the prompt column, else a ``messages`` column; None when there is neither."""
    if prompt_column in columns:
        return prompt_column
    return CHAT_COLUMN if CHAT_COLUMN in columns else None


def to_prompt(row: Mapping[str, Any], source: str, system_prompt: str = "") -> tuple[list[Message], dict[str, Any]]:
    """A row's prompt as chat messages, and the row's other columns (pure).

    Text becomes one user turn; a message list is kept up to (not including) its last assistant turn, whose text is
    returned as ``reference``. A system prompt goes first where the prompt has no system turn.

    Raises:
        RowError: the prompt is empty, not text or messages, or holds no user turn.
    """
    value = _json_list(row.get(source), source)
    rest = {k: v for k, v in row.items() if k != source}
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"{source} is empty")
        messages = [{"role": "user", "content": value}]
    elif isinstance(value, (list, tuple)):
        messages = _role_content_list(value, source)
        replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if replies and replies[-1] == len(messages) - 1:  # a conversation that ends in its reply: the reply is kept
            rest.setdefault(REFERENCE_COLUMN, messages[-1]["content"])
            messages = messages[: replies[-1]]
    else:
        raise RowError(f"{source} is {type_name(value)}, expected text or a list of chat messages")
    if not any(m["role"] == "user" for m in messages):
        raise RowError(f"{source} has no user turn to prompt with")
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages, rest


def prompt_rows(
    rows: Sequence[Mapping[str, Any]], source: str, system_prompt: str = ""
) -> tuple[list[dict[str, Any]], Normalised]:
    """Every row as TRL's conversational prompt row (``prompt`` and the other columns), and their account (pure)."""
    out = []
    account = Normalised(format="prompts", rows=[], n_input=len(rows))
    for number, row in enumerate(rows, start=1):
        try:
            prompt, rest = to_prompt(row, source, system_prompt)
        except RowError as exc:
            account.problems.append(f"row {number}: {exc}")
            continue
        account.numbers.append(number)
        out.append({"prompt": prompt, **rest})
    account.rows = [[] for _ in account.numbers]  # one entry a usable row: the malformed gate counts them
    return out, account


def data_problems(cfg: RunConfig, columns: Sequence[str]) -> list[str]:
    """Why a GRPO run cannot use data with these columns (pure): no prompt column, or a reward's column missing."""
    g = cfg.grpo
    found = []
    source = prompt_source(columns, g.prompt_column)
    if source is None:
        found.append(
            f"grpo.prompt_column: this data has no {g.prompt_column!r} column and no 'messages' column (it has "
            f"{', '.join(columns)}). Name the column holding the prompts ({hint('grpo.prompt_column', 'question')} "
            "for GSM8K)."
        )
    rewards = menu(g)
    available = [*columns, REFERENCE_COLUMN] if source == CHAT_COLUMN else list(columns)  # a chat row's last reply
    return found + column_problems(rewards, reward_columns(g), available)


def prepare_prompts(
    cfg: RunConfig, token: str | bool | None = None, seed: int = 42, limit: int | None = None
) -> PreparedData:
    """Load a GRPO run's prompts (the train split, the eval split or a held-out share), with their columns.

    Raises:
        DataError: the data cannot be loaded, has no prompt column, lacks a column a reward reads (each named, with
            the columns there are), or too many rows are malformed.
    """
    import datasets

    data = cfg.data
    table, _ = read_split(data, data.dataset_train_split, token, limit)
    if problems := data_problems(cfg, table.column_names):
        raise DataError("\n".join(problems))
    source = prompt_source(table.column_names, cfg.grpo.prompt_column)
    assert source is not None  # data_problems refuses data without one
    train, account = prompt_rows(list(table), source, data.system_prompt)
    if problem := malformed_problem(account, data.allow_malformed):
        raise DataError(problem)
    if not train:
        raise DataError(f"data.dataset_name: no row holds a prompt: {'; '.join(account.problems[:3])}")
    problems = list(account.problems)
    if data.dataset_test_split:
        held_table = load_table(data, data.dataset_test_split, token, limit)
        held, held_account = prompt_rows(list(held_table), source, data.system_prompt)
        problems += [f"eval split {data.dataset_test_split!r}, {p}" for p in held_account.problems]
    else:
        eval_seed = seed if data.eval_seed is None else data.eval_seed
        train, held = split_eval(train, data.eval_fraction, eval_seed, data.eval_holdout)
    logger.info("data: %d train / %d held-out prompts from %r", len(train), len(held), source)
    return PreparedData(
        train=datasets.Dataset.from_list(train),
        eval=datasets.Dataset.from_list(held) if held else None,
        format="prompts",
        n_input=account.n_input,
        problems=problems,
    )


def prompt_lengths(tokenizer: Any, prompts: Sequence[list[Message]]) -> list[int]:
    """Tokens of each prompt as the model is prompted with it (the chat template with the generation prompt)."""
    if not prompts:
        return []
    out = tokenizer.apply_chat_template(list(prompts), tokenize=True, add_generation_prompt=True, return_dict=True)
    return [len(ids) for ids in out["input_ids"]]


def preview_prompts(cfg: RunConfig, tokenizer: Any, token: str | bool | None = None, rows: int = 200):
    """What a GRPO run would see of the train split (the Train tab's Preview): its prompts rendered with the
    generation prompt, their token lengths (the estimate adds each completion to them), the columns its rewards
    read, and why Start would stop (a missing prompt or reward column, too many malformed rows).

    Raises:
        DataError: the data cannot be loaded.
    """
    from trainer.data.load import resolve_local_path
    from trainer.data.preview import Preview, _row_count, length_stats

    data, g = cfg.data, cfg.grpo
    table, _ = read_split(data, data.dataset_train_split, token, rows)
    problems = data_problems(cfg, table.column_names)
    source = prompt_source(table.column_names, g.prompt_column)
    prompts, account = prompt_rows(list(table), source, data.system_prompt) if source else ([], Normalised("", []))
    if source and (problem := malformed_problem(account, data.allow_malformed)):
        problems.append(problem)
    messages = [row["prompt"] for row in prompts]
    lengths = prompt_lengths(tokenizer, messages)
    read = reward_columns(g)
    used = [f"{name} compares with column {read[name]!r}" for name, _ in menu(g) if name in read]
    note = f"GRPO: each prompt is answered {g.num_generations} times, up to {g.max_completion_length} tokens each"
    path = resolve_local_path(data.dataset_name)
    sampled = len(table) >= rows
    return Preview(
        format="prompts",
        n_rows=len(prompts),
        n_input=account.n_input,
        problems=account.problems,
        rendered=[tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages[:3]],
        token_lengths=length_stats(lengths),
        max_length=cfg.training.max_length,
        n_over_max_length=sum(n > cfg.training.max_length for n in lengths),
        sampled=sampled,
        n_total=_row_count(data, path, token) if sampled else len(table),
        local=path is not None,
        rows=messages,
        measured=lengths,
        notes=[f"{note}; {'; '.join(used) or 'no reward reads a column'}."],
        blocked="\n".join(problems),
    )


def menu(g: Any) -> list[tuple[str, float]]:
    """The grpo settings' reward menu, or none when it does not parse (the config's own check names why)."""
    try:
        return parse_rewards(g.rewards) if g.rewards.strip() else []
    except ValueError:
        return []
