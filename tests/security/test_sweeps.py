"""Sweeps on a Space: a sweep's runs are normal runs of the signed-in user, all queued or none (the run limit counts
every one of them before the first is queued), and Compare runs finds a user's own sweeps only."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.runs import folder as rf

from .conftest import ALICE_OAUTH, BOB_OAUTH, oauth, profile

ALICE, BOB = profile("alice"), profile("bob")


def _sweep(space, axes: str, who=ALICE, token=ALICE_OAUTH, sample: int = 0, **changes):
    form = space.form(**changes)
    form[space.components["sweep-axes"]] = axes
    form[space.components["sweep-sample"]] = sample
    form[space.components["tracker-key"]] = ""
    form[space.components["preset"]] = "tiny-demo"
    return space.fns["start_sweep"](form, who, token and oauth(token))


def _queued(space, owner):
    return [job for job in space.manager.store.list(owner) if job.status in ("queued", "running")]


def test_a_sweep_queues_a_named_run_per_combination_for_its_owner(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    status, tabs, picker = _sweep(space, "learning_rate=1e-3,3e-3", **{"run.name": "pirates"})
    assert status.startswith("**Sweep queued:** 2 runs"), status
    runs = _queued(space, "alice")
    assert sorted(job.name for job in runs) == ["pirates · learning_rate=1e-3", "pirates · learning_rate=3e-3"]
    sweeps = {json.loads((Path(job.run_dir) / rf.STATUS_FILE).read_text())["sweep"] for job in runs}
    assert len(sweeps) == 1 and sweeps.pop().startswith("pirates-")
    assert tabs.selected == "runs"


def test_a_sweep_larger_than_the_room_under_the_run_limit_queues_nothing(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    status, _, _ = _sweep(space, "learning_rate=1e-3,3e-3\nr=4,8")  # 4 runs; this Space allows 2 per user
    assert "a sweep of 4 runs: this Space allows 2 runs queued or training per user" in status
    assert _queued(space, "alice") == []
    assert _sweep(space, "learning_rate=1e-3,3e-3\nr=4,8", sample=2)[0].startswith("**Sweep queued:** 2 runs")


def test_one_refused_run_refuses_the_sweep(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    status, _, _ = _sweep(space, "learning_rate=1e-3,9")
    assert "The sweep was not started" in status and "**learning\\_rate=9**:" in status, status
    assert _queued(space, "alice") == []


def test_a_visitor_starts_no_sweep(space):
    status, _, _ = _sweep(space, "learning_rate=1e-3,3e-3", who=None, token=None)
    assert "Sign in" in status and _queued(space, None) == []


def test_compare_runs_finds_the_callers_own_sweeps(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    _sweep(space, "learning_rate=1e-3,3e-3", **{"run.name": "alice sweep"})
    _sweep(space, "r=4,8", who=BOB, token=BOB_OAUTH, **{"run.name": "bob sweep"})
    (alice_sweep,) = [value for _, value in space.fns["sweep_choices"](ALICE)["choices"]]
    assert alice_sweep.startswith("alice-sweep-")
    picked = space.fns["pick_sweep"](alice_sweep, ALICE)["value"]
    assert sorted(picked) == sorted(str(job.id) for job in _queued(space, "alice"))
    assert space.fns["pick_sweep"](alice_sweep, BOB) == {"__type__": "update"}  # bob finds nothing of alice's
