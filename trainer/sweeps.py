"""Sweeps: one run per combination of a few settings' values (a grid, or a random sample of it), pure.

A sweep is written as axes, `setting=value,value,...` (a setting by its key or its unique name: `learning_rate`,
`r`, `lora.lora_alpha`), e.g. ``learning_rate=1e-4,2e-4`` and ``r=8,16``: four runs. `sample` draws that many of the
combinations at random (seeded), for a budget smaller than the grid. Every run is the base config with its values
set, named after them (``"pirate sweep · learning_rate=0.0001 r=8"``), and checked before any is queued: one bad
value refuses the whole sweep, naming the run and the setting.

The runs are queued as normal runs of one owner (`RunService.start_sweep`: the run limits apply to the whole sweep
before any run is queued), or trained one after another by `python -m trainer sweep`; each records its sweep's id in
its status.json, so *Compare runs* picks a sweep's runs at once and marks the best.
"""

from __future__ import annotations

import copy
import itertools
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trainer.config import ConfigError, RunConfig, find_field
from trainer.config.loading import apply_value, parse_scalar

MAX_SWEEP_RUNS = 16
"""The most runs one sweep makes (a larger grid is sampled with `sample`)."""


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """`key=v1,v2,...` -> (the setting's full key, its values read as YAML scalars); ConfigError when malformed."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError([f"sweep: {text!r} is not setting=value,value (e.g. learning_rate=1e-4,2e-4)."])
    spec = find_field(key.strip())  # ConfigError for an unknown or ambiguous name
    parsed = [parse_scalar(v.strip()) for v in values.split(",") if v.strip()]
    if len(set(map(repr, parsed))) != len(parsed):
        raise ConfigError([f"sweep: {spec.key} lists a value twice."])
    return spec.key, parsed


def parse_grid(axes: Iterable[str]) -> dict[str, list[Any]]:
    """Every axis (one per item; blank items ignored) -> {key: values}; every problem at once."""
    grid: dict[str, list[Any]] = {}
    problems: list[str] = []
    for text in axes:
        if not text.strip():
            continue
        try:
            key, values = parse_axis(text.strip())
        except ConfigError as exc:
            problems += exc.problems
            continue
        if key in grid:
            problems.append(f"sweep: {key} is given twice; put all its values on one line.")
        grid[key] = values
    if not grid and not problems:
        problems.append("sweep: give at least one setting=value,value line (e.g. learning_rate=1e-4,2e-4).")
    if problems:
        raise ConfigError(problems)
    return grid


def combinations(grid: Mapping[str, Sequence[Any]], sample: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The grid's combinations in order, or `sample` of them drawn at random (seeded; all when it is not smaller)."""
    keys = list(grid)
    every = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if sample is not None and 0 < sample < len(every):
        chosen = sorted(random.Random(seed).sample(range(len(every)), sample))
        return [every[i] for i in chosen]
    return every


def short_key(key: str) -> str:
    """A setting as a sweep names it: its unique name (`learning_rate`, `r`, `grpo_beta`)."""
    return find_field(key).unique_name


def run_label(values: Mapping[str, Any]) -> str:
    """A sweep run's values, as its name ends: `learning_rate=0.0001 r=8`."""
    return " ".join(f"{short_key(k)}={v}" for k, v in values.items())


def sweep_configs(
    base: RunConfig, grid: Mapping[str, Sequence[Any]], name: str, sample: int | None = None, seed: int = 0
) -> list[RunConfig]:
    """One config per combination: `base` with the values set and named `<name> · <values>`.

    Raises:
        ConfigError: more than MAX_SWEEP_RUNS runs, or any run's problems (each prefixed with the run's values).
    """
    chosen = combinations(grid, sample, seed)
    if len(chosen) > MAX_SWEEP_RUNS:
        raise ConfigError(
            [f"sweep: {len(chosen)} runs; at most {MAX_SWEEP_RUNS}. Sample some of them (random, with a budget)."]
        )
    configs, problems = [], []
    for values in chosen:
        cfg, errors = copy.deepcopy(base), []
        for key, value in values.items():
            apply_value(cfg, key, value, errors)
        cfg.run.name = f"{name} · {run_label(values)}"[:120]
        errors += cfg.problems()
        problems += [f"{run_label(values)}: {error}" for error in errors]
        configs.append(cfg)
    if problems:
        raise ConfigError(problems)
    return configs


def sweep_id(name: str, when: float) -> str:
    """A sweep's id, recorded in each of its runs' status.json: its name as a slug and when it started."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "sweep"
    return f"{slug}-{int(when)}"


def best_run(
    labels: Sequence[str], losses: Mapping[str, Mapping[str, Any]], evaluations: Mapping[str, Any] | None = None
) -> tuple[str, str] | None:
    """The best of the runs compared, and by what: the tuned model's chrF when every run has an evaluation, else the
    lowest eval loss after training; None when fewer than two runs have the figure."""
    evaluations = evaluations or {}
    chrf = {label: (evaluations.get(label) or {}).get("tuned", {}).get("chrf") for label in labels}
    if len(labels) > 1 and all(value is not None for value in chrf.values()):
        return max(labels, key=lambda label: chrf[label]), "highest chrF (evaluation)"
    loss = {label: losses.get(label, {}).get("eval_loss_after") for label in labels}
    scored = [label for label in labels if isinstance(loss[label], (int, float))]
    if len(scored) < 2:
        return None
    return min(scored, key=lambda label: loss[label]), "lowest eval loss"
