"""A tracker's key on a public Space (`run.report_to`): a visitor's runs never use the Space's own W&B key; the key a
user types reaches their worker's environment only (never the config, the run folder, the job table or the log);
the Space's author may use the Space's secret; a trackio Space must be the user's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .conftest import ALICE_OAUTH, BOB_OAUTH, oauth, profile, wait_for

SPACE_WANDB_KEY = "wandb-key-of-the-space-0123456789abcdef"
BOB_KEY = "bob-own-wandb-key-fedcba9876543210"


def _start(space, who: str, token: str, key: str = ""):
    outputs = space.fns["start"](space.form_with_key(key, **{"run.report_to": "wandb"}), profile(who), oauth(token))
    assert outputs[0] == "", outputs[0]
    return space.manager.store.get(int(outputs[-1]["value"]))


def test_a_visitor_never_gets_the_spaces_tracker_key(space, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SPACE_WANDB_KEY)
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")  # the Space is alice's, bob is a visitor
    job = _start(space, "bob", BOB_OAUTH)
    assert wait_for(Path(job.run_dir) / "worker-tracker.txt") == "<none>"  # W&B then logs offline in the run


def test_the_key_a_user_types_reaches_only_their_worker(space, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SPACE_WANDB_KEY)
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")
    job = _start(space, "bob", BOB_OAUTH, key=BOB_KEY)
    run_dir = Path(job.run_dir)
    assert wait_for(run_dir / "worker-tracker.txt") == BOB_KEY
    stored = [p for p in run_dir.rglob("*") if p.is_file() and p.name != "worker-tracker.txt"]
    assert stored and not [p.name for p in stored if BOB_KEY in p.read_text(errors="replace")]
    with sqlite3.connect(space.data_dir / "jobs.sqlite") as db:
        assert BOB_KEY not in repr(db.execute("SELECT * FROM jobs").fetchall())
    assert job.id not in space.manager._secrets  # handed over, then forgotten


def test_the_spaces_author_may_use_the_spaces_key(space, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SPACE_WANDB_KEY)
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")
    job = _start(space, "alice", ALICE_OAUTH)
    assert wait_for(Path(job.run_dir) / "worker-tracker.txt") == SPACE_WANDB_KEY


def test_a_trackio_space_must_be_the_users_own(space):
    form = space.form(**{"run.report_to": "trackio", "run.trackio_space_id": "alice/trackio"})
    outputs = space.fns["start"](form, profile("bob"), oauth(BOB_OAUTH))
    assert "(`run.trackio_space_id`): alice/trackio is not in your namespace. Use bob/trackio." in outputs[0]
    assert [j.owner for j in space.manager.store.list()] == ["bob", "alice"]  # the two finished runs only


def test_a_run_cancelled_before_it_starts_leaves_no_key_in_memory(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # it stays queued
    job = _start(space, "bob", BOB_OAUTH, key=BOB_KEY)
    assert space.manager._secrets[job.id] == {"WANDB_API_KEY": BOB_KEY}  # held for its worker, in memory only
    space.manager.cancel(job.id)
    assert job.id not in space.manager._secrets
