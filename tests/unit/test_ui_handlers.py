"""The web app's real handlers (as Gradio calls them) in local mode: the person at the machine sees and manages every
run. (Space mode, with signed-in users and visitors, is tests/security.)"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from trainer import runfolder as rf
from trainer.jobs import JobManager, JobStore
from trainer.ui import build_app


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The app around a job table holding two finished runs (no worker is ever started)."""
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    store = JobStore(tmp_path / "jobs.sqlite")
    for owner in ("alice", None):
        run_dir = tmp_path / "runs" / f"run-{owner}"
        run_dir.mkdir(parents=True)
        rf.write_status(run_dir, "succeeded")
        rf.append_event(run_dir, {"step": 1, "total_steps": 1, "loss": 1.0})
        job = store.create(run_dir, name=f"pirates of {owner}", owner=owner)
        store.update(job.id, status="succeeded")
    blocks = build_app(JobManager(store, python="/bin/false"), on_gpu=False)
    handlers = {fn.name: fn.fn for fn in blocks.fns.values() if fn.fn is not None and fn.name != "handler"}
    handlers["components"] = {block.elem_id: block for block in blocks.blocks.values() if block.elem_id}
    handlers["actions"] = {
        dict(zip(fn.fn.__code__.co_freevars, fn.fn.__closure__, strict=True))["action"].cell_contents.__name__: fn.fn
        for fn in blocks.fns.values()
        if fn.name == "handler"
    }
    return handlers, store


def _ids(update) -> list[str]:
    return [value for _, value in update["choices"]]


def test_locally_every_run_is_shown(app):
    handlers, store = app
    assert sorted(_ids(handlers["refresh_picker"](None, None))) == sorted(str(j.id) for j in store.list())
    first = store.list()[-1]
    assert "pirates of alice" in handlers["refresh"](str(first.id), {}, None, None)[0]


def test_the_runs_actions_through_their_handlers(app, tmp_path):
    """Delete removes a finished run and refreshes the picker; a refused action warns and changes nothing."""
    handlers, store = app
    done = store.list()[0]
    with pytest.warns(UserWarning, match="only a stopped run with a checkpoint can be resumed"):
        picker = handlers["actions"]["resume"](str(done.id), None, None)
    assert store.get(done.id).status == "succeeded" and str(done.id) in _ids(picker)
    picker = handlers["actions"]["delete"](str(done.id), None, None)
    assert store.get(done.id) is None and not Path(done.run_dir).exists() and str(done.id) not in _ids(picker)


def test_the_built_form_has_a_widget_for_every_setting(app):
    """Checked on the page Gradio builds, not on the list the form is generated from."""
    from trainer.config import iter_fields

    components = app[0]["components"]
    for spec in iter_fields():
        widget = components.get(f"field-{spec.name}")
        assert widget is not None, spec.key
        assert widget.label == spec.meta["label"]
        assert isinstance(widget, gr.Checkbox) == (spec.type is bool)
