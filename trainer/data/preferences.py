"""Preference data for DPO, KTO and ORPO: read the split, convert every row (`trainer.data.pairs`), hold out eval rows.

The counterpart of `trainer.data.load.prepare` for the preference methods: the same files and Hub datasets, the same
malformed-row gate and the same held-out split, but rows become TRL's conversational preference rows
(``prompt``/``chosen``/``rejected``, or ``prompt``/``completion``/``label`` for KTO) instead of ``messages``.

Example:
    >>> from trainer.config import DataConfig
    >>> from trainer.data.preferences import prepare_preferences
    >>> prepared = prepare_preferences(DataConfig(dataset_name="examples/pirate_pairs.jsonl"), "dpo")
    >>> prepared.format, sorted(prepared.train.column_names)
    ('prompt_pairs', ['chosen', 'prompt', 'rejected'])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.config import DataConfig
from trainer.data.formats import Normalised, RowStyle
from trainer.data.holdout import split_eval
from trainer.data.load import PreparedData, load_table, read_split
from trainer.data.pairs import (
    SHAPES,
    Pair,
    method_problem,
    pair_counts,
    preference_shape,
    to_pair,
    to_unpaired,
    unpaired_from_pairs,
)
from trainer.data.quality import malformed_problem
from trainer.data.shapes import DataError, RowError

logger = logging.getLogger(__name__)


def convert(
    rows: Sequence[Mapping[str, Any]], shape: str, method: str, style: RowStyle = RowStyle(), system_prompt: str = ""
) -> tuple[list[dict[str, Any]], Normalised]:
    """Every row as TRL's preference row for `method` (pure).

    Pairs stay pairs for DPO and ORPO, and give KTO one desirable and one undesirable example each; labelled rows
    are KTO examples. A system prompt is put first where a prompt has no system turn.

    Returns:
        (the TRL rows, the rows' account: problems by row number, rows read, pair counts in `notes`).
    """
    groups, account = convert_rows(rows, shape, method, style, system_prompt)
    return [item for group in groups for item in group], account


def convert_rows(
    rows: Sequence[Mapping[str, Any]], shape: str, method: str, style: RowStyle = RowStyle(), system_prompt: str = ""
) -> tuple[list[list[dict[str, Any]]], Normalised]:
    """`convert`, the TRL rows grouped by the row they came from (KTO: a pair's two examples stay together, so a
    held-out split never puts one side of a pair in training and the other in evaluation)."""
    out: list[list[dict[str, Any]]] = []
    pairs: list[Pair] = []
    account = Normalised(format=shape, rows=[], n_input=len(rows))
    for number, row in enumerate(rows, start=1):
        try:
            if shape == "kto":
                examples = [to_unpaired(row)]
            else:
                pair = to_pair(row, shape, style)
                pairs.append(pair)
                examples = unpaired_from_pairs([pair]) if method == "kto" else [pair]
        except RowError as exc:
            account.problems.append(f"row {number}: {exc}")
            continue
        account.numbers.append(number)
        group = []
        for example in examples:
            item = example.trl_row()
            if system_prompt and item["prompt"][0]["role"] != "system":
                item["prompt"] = [{"role": "system", "content": system_prompt}, *item["prompt"]]
            group.append(item)
        out.append(group)
    account.rows = [[] for _ in account.numbers]  # one entry a usable row: the malformed gate counts them
    if pairs:
        counts = pair_counts(pairs)
        account.notes.append(
            f"{counts['pairs']} pairs ({SHAPES[shape]}); {counts['identical']} with the same reply on both sides, "
            f"{counts['empty']} with an empty reply"
        )
    return out, account


def prepare_preferences(
    cfg: DataConfig, method: str, token: str | bool | None = None, seed: int = 42, limit: int | None = None
) -> PreparedData:
    """Load, convert and split preference data for `method` (dpo, kto, orpo).

    Raises:
        DataError: the data cannot be loaded, holds no preferences `method` can train on (the message names the
            method, the shape found and the fix), or too many rows are malformed.
    """
    import datasets

    table, _ = read_split(cfg, cfg.dataset_train_split, token, limit)
    first = table[0] if len(table) else None
    shape = preference_shape(table.column_names, first)
    if problem := method_problem(method, shape, f"'{', '.join(table.column_names)}'"):
        raise DataError(problem)
    assert shape is not None  # method_problem refuses data without a preference shape
    style = RowStyle.of(cfg)
    groups, account = convert_rows(list(table), shape, method, style, cfg.system_prompt)
    train = [item for group in groups for item in group]
    if problem := malformed_problem(account, cfg.allow_malformed):
        raise DataError(problem)
    if not train:
        reasons = "; ".join(account.problems[:3])
        raise DataError(f"data.dataset_name: no row could be read as {SHAPES[shape]}: {reasons}")
    problems = list(account.problems)
    if cfg.dataset_test_split:
        held, held_account = convert(
            list(load_table(cfg, cfg.dataset_test_split, token, limit)), shape, method, style, cfg.system_prompt
        )
        problems += [f"eval split {cfg.dataset_test_split!r}, {p}" for p in held_account.problems]
        train_rows, eval_rows = train, held
    else:
        eval_seed = seed if cfg.eval_seed is None else cfg.eval_seed  # by source row: a pair's KTO examples together
        kept, held = split_eval(groups, cfg.eval_fraction, eval_seed, cfg.eval_holdout)
        train_rows, eval_rows = [i for g in kept for i in g], [i for g in held for i in g]
    for note in account.notes:
        logger.info("data: %s", note)
    logger.info("data: %s, %d train / %d eval %s rows", shape, len(train_rows), len(eval_rows), method.upper())
    return PreparedData(
        train=datasets.Dataset.from_list(train_rows),
        eval=datasets.Dataset.from_list(eval_rows) if eval_rows else None,
        format=shape,
        n_input=account.n_input,
        problems=problems,
    )
