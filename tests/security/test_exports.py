"""GGUF exports on a Space: a user exports only their own trained run, pushes with their own token only, downloads
only their own files, chosen by name from their run's list (never a path from the browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.runs import folder as rf

from .conftest import ALICE_OAUTH, BOB_OAUTH, oauth, profile, wait_for

ALICE, BOB = profile("alice"), profile("bob")


def _export(space, run_id, who=ALICE, token=ALICE_OAUTH, kind="q4_K_M", adapter=False, push="none", repo=""):
    """The Export GGUF button's handler, as Gradio calls it."""
    return space.fns["export_gguf"](str(run_id), kind, adapter, push, repo, who, token and oauth(token))


def _exports(space):
    return [job for job in space.manager.store.list() if job.kind == "export"]


def test_an_export_is_queued_for_its_owner_without_a_token_it_does_not_need(space):
    run = space.run_of("alice")
    message = _export(space, run.id)
    assert message.startswith("**Export queued**"), message
    (job,) = _exports(space)
    assert (job.owner, job.name, job.run_dir) == ("alice", "GGUF export of alice-run", str(Path(run.run_dir) / "gguf"))
    request = json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())
    assert request == {"type": "q4_K_M", "adapter": False, "push": "none", "repo_id": ""}
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == "<none>"  # nothing to push: no token held


def test_a_push_uses_the_owners_own_token(space):
    run = space.run_of("bob")
    assert _export(space, run.id, BOB, BOB_OAUTH, push="separate", repo="bob/pirate-GGUF").startswith(
        "**Export queued"
    )
    (job,) = _exports(space)
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == BOB_OAUTH  # bob's, never the Space's


@pytest.mark.parametrize("who", ["bob", "visitor"])
def test_nobody_exports_another_users_run(space, who):
    run = space.run_of("alice")
    message = _export(space, run.id, BOB if who == "bob" else None, BOB_OAUTH if who == "bob" else None)
    assert "Export not started" in message and ("not yours" if who == "bob" else "Sign in") in message
    assert _exports(space) == [] and not (Path(run.run_dir) / "gguf").exists()


@pytest.mark.parametrize(
    ("kind", "push", "repo", "expected"),
    [
        ("q3_K_S", "none", "", "is not offered"),
        ("q4_K_M", "alongside", "", "no adapter repo to put them beside"),
        ("q4_K_M", "separate", "", "give a repo ID"),
        ("q4_K_M", "separate", "not a repo", "repo: 'not a repo' has no namespace"),
        ("q4_K_M", "separate", "bob/x", None),
    ],
)
def test_bad_export_settings_are_refused_before_queueing(space, monkeypatch, kind, push, repo, expected):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    message = _export(space, space.run_of("bob").id, BOB, BOB_OAUTH, kind=kind, push=push, repo=repo)
    if expected is None:
        assert message.startswith("**Export queued**"), message
    else:
        assert "Export not started" in message and expected in message and _exports(space) == []


def test_a_push_without_a_token_is_refused_on_a_space(space):
    message = _export(space, space.run_of("bob").id, BOB, None, push="separate", repo="bob/x-GGUF")
    assert "sign in again to give your token" in message and _exports(space) == []


def test_one_export_of_a_run_at_a_time_and_none_lost_by_a_delete(space, monkeypatch):
    from trainer.runs.service import RunService

    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # nothing starts: the first stays queued
    run = space.run_of("alice")
    assert _export(space, run.id).startswith("**Export queued**")
    assert "already has an export queued or running" in _export(space, run.id)
    service = RunService(space.manager)
    with pytest.raises(ValueError, match="has an export queued or running: cancel it before deleting the run"):
        service.delete(service.caller("alice", ALICE_OAUTH), run.id)


def _exported(run_dir: Path, name: str, data: bytes = b"GGUF weights") -> None:
    (run_dir / "gguf").mkdir(exist_ok=True)
    (run_dir / "gguf" / name).write_bytes(data)


def test_downloads_only_the_callers_own_files_by_name(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    _exported(Path(alice_run.run_dir), "alice-run-q4_K_M.gguf", b"alice's model")
    _exported(Path(bob_run.run_dir), "bob-run-q8_0.gguf", b"bob's model")
    download = space.fns["download_export"]
    assert Path(download(str(bob_run.id), "bob-run-q8_0.gguf", BOB)).read_bytes() == b"bob's model"
    with pytest.warns(UserWarning, match="not yours"):
        assert download(str(alice_run.id), "alice-run-q4_K_M.gguf", BOB) is None
    for name in ("../config.yaml", "../../alice-run/gguf/alice-run-q4_K_M.gguf", str(Path(alice_run.run_dir) / "x")):
        with pytest.warns(UserWarning, match="has no export named"):
            assert download(str(bob_run.id), name, BOB) is None


def test_the_runs_tab_lists_the_owners_exports_only(space):
    alice_run = space.run_of("alice")
    _exported(Path(alice_run.run_dir), "alice-run-q4_K_M.gguf", b"x" * 2_000_000)
    status, files, cancel, _ = space.fns["refresh_export"](str(alice_run.id), {}, ALICE)
    assert "`alice-run-q4_K_M.gguf` (2.0 MB)" in status and files["choices"] == ["alice-run-q4_K_M.gguf"]
    assert space.fns["refresh_export"](str(alice_run.id), {}, BOB)[0] == ""  # bob sees nothing of alice's


def test_the_estimate_names_size_and_time(space):
    text = space.fns["estimate_export"](str(space.run_of("alice").id), "q8_0", False, ALICE)
    assert text.startswith("**q8_0**: a file of about") and " MB, made in about " in text  # the tiny model
    assert "not yours" in space.fns["estimate_export"](str(space.run_of("alice").id), "q8_0", False, BOB)
