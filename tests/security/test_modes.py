"""Local mode and Space mode: who the caller is, what the server binds and serves, which limits hold."""

from __future__ import annotations

import pytest

from trainer.runs.access import Caller, Limits, admins, caller_from

from .conftest import SPACE_TOKEN, simulate_space


def test_locally_the_person_at_the_machine_sees_everything_with_the_local_token(monkeypatch):
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_localUSER")
    who = caller_from("mallory", "hf_forged")  # locally there is no sign-in: a profile changes nothing
    assert who == Caller(name=None, token="hf_localUSER", admin=True, local=True) and who.signed_in


def test_on_a_space_a_visitor_has_no_token_and_a_user_only_their_own(monkeypatch):
    simulate_space(monkeypatch)
    visitor = caller_from(None, None)
    assert visitor.token is None and not visitor.signed_in and visitor.token != SPACE_TOKEN
    assert caller_from("alice", None).token is None  # signed in without an OAuth token: still not the Space's
    assert caller_from("alice", "hf_oauthALICE").token == "hf_oauthALICE"


def test_limits_have_safe_defaults_on_a_space_and_none_locally(monkeypatch):
    for name in ("MAX_ACTIVE_RUNS", "MAX_RUN_MINUTES", "MAX_UPLOAD_MB", "MAX_UPLOADS_MB"):
        monkeypatch.delenv(f"PHI3_STUDIO_{name}", raising=False)
        monkeypatch.delenv(f"STUDIO_{name}", raising=False)
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    assert Limits.from_env() == Limits(None, None, None, None) and Limits.from_env().describe() == ""
    simulate_space(monkeypatch)
    assert Limits.from_env() == Limits(2, 120, 100, 500)
    monkeypatch.setenv("PHI3_STUDIO_MAX_RUN_MINUTES", "30")
    monkeypatch.setenv("PHI3_STUDIO_MAX_ACTIVE_RUNS", "0")  # 0: no limit
    limits = Limits.from_env()
    assert limits == Limits(None, 30, 100, 500)
    assert limits.describe() == (
        "Limits on this Space: 30 training minutes per run (then it checkpoints and stops, resumable); "
        "uploads up to 100 MB; 500 MB of uploads kept per user."
    )


@pytest.mark.parametrize(("env", "expected"), [({}, "127.0.0.1"), ({"GRADIO_SERVER_NAME": "0.0.0.0"}, "0.0.0.0")])
def test_the_app_listens_on_loopback_unless_told_otherwise_and_serves_no_data_dir(
    monkeypatch, tmp_path, env, expected
):
    import gradio as gr

    import trainer.ui.app as app_module

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: seen.update(kwargs, app=self))
    app_module.launch()
    assert seen["server_name"] == expected
    assert "allowed_paths" not in seen  # nothing in the data dir is served by its path
    assert seen["app"].delete_cache == (600, 3600)  # uploads POSTed by anyone, download links: 70 minutes at most
    assert seen["app"]._queue.max_size == 64  # a flood of events is refused, not queued without end


def test_a_read_only_data_dir_is_one_clear_message(monkeypatch, tmp_path):
    import os

    import trainer.ui.app as app_module

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real(path, mode))
    with pytest.raises(SystemExit) as info:
        app_module.launch()
    assert str(info.value) == (
        f"Phi-3 Fine-Tune Studio cannot start: the data dir {tmp_path} is read-only: runs cannot be kept there. "
        "Make it writable, or point PHI3_STUDIO_DATA_DIR at a folder that is."
    )


def test_a_space_can_start_with_sign_in():
    """`hf_oauth: true` needs gradio's oauth extra; without it the Space fails at start."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert '"gradio[oauth]' in (root / "pyproject.toml").read_text()  # the range the lock is made from
    lock = (root / "requirements.txt").read_text()
    assert "\nauthlib==" in lock and "\nitsdangerous==" in lock  # what the extra brings, locked for the Space
    import authlib  # noqa: F401 - installed from requirements.txt
    import itsdangerous  # noqa: F401


def test_the_older_studio_names_are_still_read_with_a_deprecation_line(monkeypatch, caplog):
    import trainer.paths

    monkeypatch.delenv("PHI3_STUDIO_MAX_RUN_MINUTES", raising=False)
    monkeypatch.delenv("PHI3_STUDIO_ADMINS", raising=False)
    monkeypatch.setattr(trainer.paths, "_warned", set())
    monkeypatch.setenv("STUDIO_MAX_RUN_MINUTES", "45")
    monkeypatch.setenv("STUDIO_ADMINS", "carol")
    with caplog.at_level("WARNING", logger="trainer.paths"):
        assert Limits.from_env().run_minutes == 45 and admins() == frozenset({"carol"})
        Limits.from_env()  # said once per name, not at every read
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "STUDIO_MAX_RUN_MINUTES is deprecated: name it PHI3_STUDIO_MAX_RUN_MINUTES (it is read for now)",
        "STUDIO_ADMINS is deprecated: name it PHI3_STUDIO_ADMINS (it is read for now)",
    ]
    monkeypatch.setenv("PHI3_STUDIO_MAX_RUN_MINUTES", "10")  # the new name wins
    assert Limits.from_env().run_minutes == 10
