"""Sweeps behind the run service (`RunService.sweeps`): queue one run per combination of a few settings' values
(`trainer.sweeps`) as normal runs of the caller, and find a caller's sweeps again.

The whole sweep or nothing: every run is checked as `RunService.start` checks one, and the caller's limit of runs
queued or training must have room for all of them, before the first is queued. Each run records its sweep's id in
its status.json (*Compare runs* picks a sweep's runs by it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from trainer.config import ConfigError, RunConfig
from trainer.preflight import RefusedRun
from trainer.runs import folder as rf
from trainer.runs.access import Caller, tracker_environment
from trainer.runs.store import Job
from trainer.sweeps import parse_grid, sweep_configs, sweep_id


class Sweeps:
    """The sweep actions of the run service."""

    def __init__(self, service):
        self.service = service  # the RunService that holds this (its checks, `queue` and `visible`)

    def configs(self, base: RunConfig, axes: Sequence[str], sample: int | None = None, seed: int = 0):
        """The sweep's runs (RunConfigs named after their values), or RefusedRun with every problem."""
        name = base.run.name.strip() or base.display_name()
        try:
            return name, sweep_configs(base, parse_grid(axes), name, sample, seed)
        except ConfigError as exc:
            raise RefusedRun(exc.problems) from None

    def start(
        self,
        who: Caller,
        base: RunConfig,
        axes: Sequence[str],
        sample: int | None = None,
        seed: int = 0,
        on_gpu: bool = False,
        zero_gpu: bool = False,
        tracker_key: str | None = None,
    ) -> list[Job]:
        """Queue the sweep's runs for the caller, all or none.

        Args:
            who: the caller (a signed-out visitor on a Space is refused).
            base: the run every sweep run starts from (the Train form's).
            axes: `setting=value,value` lines (see `trainer.sweeps`).
            sample: draw this many of the combinations at random (None: all of them).

        Raises:
            AccessError: not signed in. RefusedRun: the problems, each prefixed with its run's values. ValueError:
                the caller's limit of runs queued or training has no room for every run of the sweep.
        """
        who.require("train")
        name, configs = self.configs(base, axes, sample, seed)
        self.service.queue.check_active_runs(who.owner, len(configs))
        problems = []
        for cfg in configs:
            label = cfg.run.name.split(" · ", 1)[-1]
            found = self.service.problems_before_queueing(who, cfg, None, on_gpu, zero_gpu, tracker_key)
            problems += [f"{label}: {problem}" for problem in found]
        if problems:
            raise RefusedRun(problems)
        sweep = sweep_id(name, time.time())
        secrets = tracker_environment(who, base.run.report_to, tracker_key)
        submit = self.service.queue.submit
        return [submit(cfg, owner=who.owner, token=who.token, secrets=secrets, sweep=sweep) for cfg in configs]

    def of(self, who: Caller, visible: list[Job] | None = None) -> dict[str, list[Job]]:
        """The caller's sweeps: {sweep id: its runs}, newest first (read from the runs' status.json); `visible`: the
        caller's runs when the caller has just read them (`RunService.visible`)."""
        found: dict[str, list[Job]] = {}
        for job in self.service.visible(who) if visible is None else visible:
            status = rf.read_json(Path(job.run_dir) / rf.STATUS_FILE, {}) or {}
            if isinstance(status, dict) and isinstance(status.get("sweep"), str):
                found.setdefault(status["sweep"], []).append(job)
        return found
