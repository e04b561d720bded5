"""A simulated public Space: alice and bob are signed in, a visitor is not, and the Space holds its own HF_TOKEN.

Handlers are the app's real ones, the tabs' public methods (`build_studio(...).handlers()`), called by name as Gradio
calls them, with `gr.OAuthProfile` / `gr.OAuthToken` objects standing for the server's session. Workers are a
stand-in that records the token it was given, so no test trains a model.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import gradio as gr
import pytest

from trainer.config import find_field
from trainer.runs import folder as rf

SPACE_TOKEN = "hf_SPACEsecretOWNERtoken0000"
ALICE_OAUTH = "hf_oauthALICE1111"
BOB_OAUTH = "hf_oauthBOB2222"

RECORDING_WORKER = textwrap.dedent(
    """
    import os, pathlib, sys
    if "--run-dir" in sys.argv:  # train --config ... --run-dir RUN
        run_dir = pathlib.Path(sys.argv[sys.argv.index("--run-dir") + 1])
    else:  # eval RUN --request or export-gguf RUN --request: the job's folder is RUN/eval or RUN/gguf
        queued = [pathlib.Path(sys.argv[1]) / name for name in ("eval", "gguf")]
        run_dir = next(f for f in queued if '"running"' in ((f / "status.json").read_text() if f.is_dir() else ""))
    (run_dir / "worker-token.txt").write_text(os.environ.get("HF_TOKEN", "<none>"))
    (run_dir / "worker-env.txt").write_text(" ".join(sorted(os.environ)))
    (run_dir / "worker-time-limit.txt").write_text(os.environ.get("PHI3_STUDIO_MAX_RUN_S", "<none>"))
    (run_dir / "worker-tracker.txt").write_text(os.environ.get("WANDB_API_KEY", "<none>"))
    """
)


def profile(name: str) -> gr.OAuthProfile:
    return gr.OAuthProfile({"preferred_username": name, "name": name.title(), "profile": "", "picture": ""})


def oauth(token: str) -> gr.OAuthToken:
    return gr.OAuthToken(token=token, scope="openid profile read-repos write-repos", expires_at=2_000_000_000)


class Space:
    """The app's handlers and state on a simulated Space."""

    def __init__(self, studio, manager, data_dir: Path):
        self.blocks, self.manager, self.data_dir = studio.app, manager, data_dir
        self.fns = studio.handlers()  # the tabs' handlers by name: start, refresh, cancel, send ...
        self.refreshed = studio.runs.output_names  # what the Runs tab's `refresh` returns, by name, in order
        self.components = {b.elem_id: b for b in self.blocks.blocks.values() if getattr(b, "elem_id", None)}

    def action(self, name: str):
        """The Runs tab's action handler `name` (cancel, resume, delete)."""
        return self.fns[name]

    def form(self, **changes) -> dict:
        """The Train form's values as Gradio hands them to Start (keyed by component), from the tiny-demo preset."""
        from trainer.config import preset_config
        from trainer.ui.form import form_fields, widget_value

        cfg = preset_config("tiny-demo")
        values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()}
        values.update({f"data.{k}" if k == "dataset_name" else k: v for k, v in changes.items()})
        return {self.components[f"field-{find_field(key).unique_name}"]: value for key, value in values.items()}

    def form_with_key(self, key: str, **changes) -> dict:
        """The form with the Tracker key field filled in (it is not a setting: it never reaches the config)."""
        return {**self.form(**changes), self.components["tracker-key"]: key}

    def run_of(self, owner: str | None):
        return next(j for j in self.manager.store.list() if j.owner == owner)


def wait_for(path: Path, timeout: float = 20.0) -> str:
    """The text of a file a worker writes (its recorded token, environment ...), once it is there."""
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def finished_run(store, data_dir: Path, owner: str | None, name: str):
    """A finished run folder with an adapter, samples and events, owned by `owner`."""
    run_dir = data_dir / "runs" / name
    (run_dir / rf.ADAPTER_DIR).mkdir(parents=True)
    (run_dir / rf.ADAPTER_DIR / "adapter_model.safetensors").write_bytes(b"weights of " + name.encode())
    (run_dir / rf.ADAPTER_DIR / "adapter_config.json").write_text("{}")
    (run_dir / rf.CONFIG_FILE).write_text("model:\n  model_name_or_path: tiny-phi3\n")
    rf.write_status(run_dir, "succeeded", owner=owner, name=name)
    rf.write_json_atomic(run_dir / rf.SAMPLES_FILE, [{"prompt": f"secret prompt of {name}"}])
    rf.append_event(run_dir, {"step": 1, "total_steps": 1, "loss": 1.0})
    job = store.create(run_dir, name=name, owner=owner)
    store.update(job.id, status="succeeded")
    return store.get(job.id)


SPACE_ENV = {
    "OAUTH_CLIENT_ID": "test-client",
    "OAUTH_CLIENT_SECRET": "test-secret",
    "OAUTH_SCOPES": "openid profile read-repos write-repos manage-repos",
    "OPENID_PROVIDER_URL": "https://huggingface.co",
    "SYSTEM": "spaces",
    "SPACE_ID": "owner/phi3-studio",
    "HF_TOKEN": SPACE_TOKEN,
}


def simulate_space(monkeypatch) -> None:
    """The environment of a Space with `hf_oauth: true` (gradio reads some of it at import: patch those too)."""
    import gradio.oauth

    for name, value in SPACE_ENV.items():
        monkeypatch.setenv(name, value)
        if hasattr(gradio.oauth, name):
            monkeypatch.setattr(gradio.oauth, name, value)


@pytest.fixture(scope="module")
def _space_app(tmp_path_factory):
    """The app is built once per test module (building Blocks takes about a second); `space` resets its state."""
    from trainer.runs.access import Limits
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService
    from trainer.ui import build_studio

    data_dir = tmp_path_factory.mktemp("space")
    with pytest.MonkeyPatch.context() as monkeypatch:
        simulate_space(monkeypatch)
        monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(data_dir))
        for name in (
            "PHI3_STUDIO_ADMINS",
            "PHI3_STUDIO_MAX_ACTIVE_RUNS",
            "PHI3_STUDIO_MAX_RUN_MINUTES",
            "PHI3_STUDIO_MAX_UPLOAD_MB",
            "PHI3_STUDIO_MAX_UPLOADS_MB",
        ):
            monkeypatch.delenv(name, raising=False)
        worker = data_dir / "worker.py"
        worker.write_text(RECORDING_WORKER)
        launcher = data_dir / "python"
        launcher.write_text(f'#!/bin/sh\nshift 3\nexec {sys.executable} {worker} "$@"\n')  # drop "-m trainer train"
        launcher.chmod(0o755)
        manager = RunQueue(JobStore(data_dir / "jobs.sqlite"), python=str(launcher), limits=Limits.from_env())
        yield Space(build_studio(RunService(manager), on_gpu=False), manager, data_dir)


@pytest.fixture
def space(_space_app, monkeypatch) -> Space:
    """A Space (sign-in on, its own HF_TOKEN set) holding exactly one finished run each of alice and bob."""
    import shutil

    from trainer.runs.access import Limits

    simulate_space(monkeypatch)
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(_space_app.data_dir))
    store, manager = _space_app.manager.store, _space_app.manager
    for job in store.list():
        store.delete(job.id)
    for folder in ("runs", "uploads"):
        shutil.rmtree(_space_app.data_dir / folder, ignore_errors=True)
    manager._tokens.clear()
    manager._secrets.clear()
    with sqlite3.connect(_space_app.data_dir / "votes.sqlite") as votes:  # no votes or vote links left over
        votes.execute("DELETE FROM votes")
        votes.execute("DELETE FROM shares")
    manager.limits = Limits.from_env()
    finished_run(store, _space_app.data_dir, "alice", "alice-run")
    finished_run(store, _space_app.data_dir, "bob", "bob-run")
    return _space_app
