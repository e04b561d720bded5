"""Holding out evaluation rows: a seeded share of the train rows, picked the studio's way or the way
`datasets.Dataset.train_test_split` picks them (the split the Phi-3 Cookbook notebooks make), so a Cookbook preset
evaluates on, and trains in the order of, the rows its notebook does.

Example:
    >>> train, held = split_eval(rows, 0.05, seed=1234, method="train_test_split")
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal, TypeVar

from trainer.data.shapes import DataError

Row = TypeVar("Row")
HOLDOUT_METHODS = ("studio", "train_test_split")


def split_eval(
    rows: Sequence[Row],
    eval_fraction: float,
    seed: int = 42,
    method: Literal["studio", "train_test_split"] = "studio",
) -> tuple[list[Row], list[Row]]:
    """Hold out a seeded random `eval_fraction` of the rows (pure).

    ``studio``: round(fraction × rows) rows sampled with Python's `random`; both parts keep the input order.
    ``train_test_split``: as `datasets.Dataset.train_test_split(test_size=eval_fraction, seed=seed)`: a NumPy
    permutation of the rows (`np.random.default_rng(seed)`), its first ceil(fraction × rows) held out; both parts in
    the permutation's order.

    Either way at least one row is held out when `eval_fraction` > 0 and there are two or more rows, and at least one
    row is always left to train on.

    Args:
        rows: normalised rows.
        eval_fraction: share to hold out, 0 <= x < 1 (0 = none).
        seed: random seed; the same seed gives the same split.
        method: how the rows are picked (`HOLDOUT_METHODS`).

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
    if method == "train_test_split":
        import numpy as np

        n_eval = min(max(math.ceil(eval_fraction * n), 1), n - 1)
        order = np.random.default_rng(seed).permutation(n).tolist()
        return [rows[i] for i in order[n_eval:]], [rows[i] for i in order[:n_eval]]
    n_eval = min(max(round(n * eval_fraction), 1), n - 1)
    held = set(random.Random(seed).sample(range(n), n_eval))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
