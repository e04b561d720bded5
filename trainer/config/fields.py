"""The dataclass field every setting is made with: its metadata (help, label, bounds) drives the CLI, the YAML and the
web form (see `trainer.config.schema`)."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

INT_LIMIT = 2**31 - 1  # whole-number settings are handed to torch/numpy/SQLite as 32-bit values


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    label: str | None = None,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    advanced: bool = False,
    default_factory: Any = dataclasses.MISSING,
    max_chars: int | None = None,
) -> Any:
    """A dataclass field whose metadata drives the CLI, the YAML and the web form (max_chars: if not TEXT_LIMIT)."""
    meta = {"help": help, "label": label, "min": min, "max": max, "step": step, "advanced": advanced}
    if max_chars is not None:
        meta["max_chars"] = max_chars
    return field(default=default, default_factory=default_factory, metadata=meta)
