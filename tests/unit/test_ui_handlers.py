"""The web app's real handlers (as Gradio calls them) with signed-in users: each sees and picks only their own runs."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from trainer import runfolder as rf
from trainer.jobs import JobManager, JobStore
from trainer.ui import build_app


def _profile(name: str) -> gr.OAuthProfile:
    return gr.OAuthProfile({"preferred_username": name, "name": name.title(), "profile": "", "picture": ""})


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The app around a job table holding alice's and bob's finished runs (no worker is ever started)."""
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    store = JobStore(tmp_path / "jobs.sqlite")
    for owner in ("alice", "bob"):
        run_dir = tmp_path / "runs" / f"run-{owner}"
        run_dir.mkdir(parents=True)
        rf.write_status(run_dir, "succeeded")
        rf.append_event(run_dir, {"step": 1, "total_steps": 1, "loss": 1.0})
        job = store.create(run_dir, name=f"pirates of {owner}", owner=owner)
        store.update(job.id, status="succeeded")
    manager = JobManager(store, python="/bin/false")
    blocks = build_app(manager, on_gpu=False)
    handlers = {fn.name: fn.fn for fn in blocks.fns.values()}
    handlers["components"] = {block.elem_id: block for block in blocks.blocks.values() if block.elem_id}
    return handlers, store


def _ids(update) -> list[str]:
    return [value for _, value in update["choices"]]


def test_the_runs_refresh_shows_a_signed_in_user_only_their_runs(app):
    handlers, store = app
    alice_job, bob_job = (j for j in reversed(store.list()))
    outputs = handlers["refresh"](str(bob_job.id), {}, _profile("alice"))  # alice asks for bob's run by its id
    status, picker = outputs[0], outputs[-2]
    assert "alice" not in status and "bob" not in status and "No runs yet" in status  # bob's run is not shown
    assert _ids(picker) == [str(alice_job.id)]
    outputs = handlers["refresh"](str(alice_job.id), {}, _profile("alice"))
    assert "pirates of alice" in outputs[0]
    assert _ids(handlers["refresh_picker"](None, _profile("bob"))) == [str(bob_job.id)]


def test_the_compare_tab_offers_a_signed_in_user_only_their_adapters(app):
    handlers, store = app
    alice_job = next(j for j in store.list() if j.owner == "alice")
    assert _ids(handlers["adapter_choices"](_profile("alice"))) == [alice_job.run_dir]


def test_start_records_the_signed_in_user_as_the_owner(app):
    from trainer.config import preset_config
    from trainer.ui.form import form_fields, widget_value

    handlers, store = app
    cfg = preset_config("tiny-demo")
    form = {handlers["components"][f"field-{s.name}"]: widget_value(s, s.get(cfg)) for s in form_fields()}
    outputs = handlers["start"](form, _profile("carol"), None)
    assert outputs[0] == ""  # no problems: queued
    newest = store.list()[0]
    assert newest.owner == "carol" and newest.id == int(outputs[-1])
    assert Path(newest.run_dir).is_dir()


def test_the_built_form_has_a_widget_for_every_setting(app):
    """Checked on the page Gradio builds, not on the list the form is generated from."""
    from trainer.config import iter_fields

    components = app[0]["components"]
    for spec in iter_fields():
        widget = components.get(f"field-{spec.name}")
        assert widget is not None, spec.key
        assert widget.label == spec.meta["label"]
        assert isinstance(widget, gr.Checkbox) == (spec.type is bool)


def _action(app_handlers_blocks, name: str):
    """The Runs tab's action handler wrapping manager.<name> (cancel, resume, delete)."""
    blocks = app_handlers_blocks
    for fn in blocks.fns.values():
        cells = dict(zip(fn.fn.__code__.co_freevars, fn.fn.__closure__ or (), strict=False))
        if fn.name == "handler" and getattr(cells.get("action"), "cell_contents", None).__name__ == name:
            return fn.fn
    raise AssertionError(f"no {name} handler")


def test_the_runs_actions_through_their_handlers(tmp_path, monkeypatch):
    """Delete removes a finished run and refreshes the picker; a refused action warns and changes nothing."""
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    store = JobStore(tmp_path / "jobs.sqlite")
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    done = store.create(run_dir, name="done", owner=None)
    store.update(done.id, status="succeeded")
    blocks = build_app(JobManager(store, python="/bin/false"), on_gpu=False)
    with pytest.warns(UserWarning, match="only a stopped run with a checkpoint can be resumed"):
        picker = _action(blocks, "resume")(str(done.id), None)
    assert store.get(done.id).status == "succeeded" and _ids(picker) == [str(done.id)]
    picker = _action(blocks, "delete")(str(done.id), None)
    assert store.get(done.id) is None and not run_dir.exists() and _ids(picker) == []
