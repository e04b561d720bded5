"""What each tracker is told (trainer.trackers, pure): names from the run's, files inside the run folder, keys only
where they belong; and the run's zip carries the tracker's local files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from trainer.config import preset_config
from trainer.methods import machine_settings
from trainer.trackers import project_name, tracker_environment, tracker_problems, tracker_secrets, tracker_settings


def _config(report_to: str, name: str = "My run: pirate v2", space: str = ""):
    cfg = preset_config("tiny-demo")
    cfg.run.report_to, cfg.run.name, cfg.run.trackio_space_id = report_to, name, space
    return cfg


def test_the_runs_tracker_reaches_the_trainers_arguments(tmp_path):
    settings = machine_settings(_config("tensorboard"), tmp_path / "run-7", has_eval=False)
    assert (settings["report_to"], settings["run_name"], settings["project"]) == (
        "tensorboard",
        "run-7",
        "My-run-pirate-v2",
    )
    assert machine_settings(_config("none"), tmp_path / "r", has_eval=False)["report_to"] == "none"


def test_project_name_is_the_runs_name_or_the_studios():
    assert project_name(_config("trackio", name="a/b c")) == "a-b-c"
    assert project_name(_config("trackio", name="  ")) == "phi3-finetune-studio"


def test_trackio_logs_locally_unless_a_space_is_named(tmp_path):
    local = tracker_settings(_config("trackio"), tmp_path / "run")
    assert (local["trackio_space_id"], local["trackio_static_space_id"]) == (None, False)  # no Hub call at all
    live = tracker_settings(_config("trackio", space="bob/trackio"), tmp_path / "run")
    assert (live["trackio_space_id"], live["trackio_static_space_id"]) == ("bob/trackio", None)


@pytest.mark.parametrize(
    ("tracker", "env", "expected"),
    [
        ("none", {}, {}),
        ("tensorboard", {}, {"TENSORBOARD_LOGGING_DIR": "RUN/tensorboard"}),
        ("trackio", {}, {"TRACKIO_DIR": "RUN/trackio"}),
        ("wandb", {}, {"WANDB_DIR": "RUN", "WANDB_PROJECT": "t", "WANDB_SILENT": "true", "WANDB_MODE": "offline"}),
        ("wandb", {"WANDB_API_KEY": "k"}, {"WANDB_DIR": "RUN", "WANDB_PROJECT": "t", "WANDB_SILENT": "true"}),
        ("mlflow", {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, {"MLFLOW_EXPERIMENT_NAME": "t"}),
    ],
)
def test_tracker_files_go_in_the_run_folder(tmp_path, tracker, env, expected):
    run_dir = tmp_path / "run"
    found = tracker_environment(_config(tracker, name="t"), run_dir, env)
    assert found == {k: v.replace("RUN", str(run_dir)) for k, v in expected.items()}


def test_mlflow_without_a_server_uses_a_store_in_the_run_folder(tmp_path):
    found = tracker_environment(_config("mlflow", name="t"), tmp_path / "run", {})
    assert found["MLFLOW_TRACKING_URI"] == (tmp_path / "run" / "mlruns").resolve().as_uri()


def test_the_machines_tracker_secrets_only_for_its_owner():
    server = {"WANDB_API_KEY": "server", "MLFLOW_TRACKING_URI": "http://m", "MLFLOW_TRACKING_PASSWORD": "pw"}
    assert tracker_secrets("wandb", server, server_secrets_allowed=False) == {}
    assert tracker_secrets("wandb", server, server_secrets_allowed=True) == {"WANDB_API_KEY": "server"}
    assert tracker_secrets("wandb", server, False, key=" mine ") == {"WANDB_API_KEY": "mine"}
    assert tracker_secrets("wandb", server, True, key="mine") == {"WANDB_API_KEY": "mine"}  # the caller's wins
    assert tracker_secrets("mlflow", server, True) == {
        "MLFLOW_TRACKING_URI": "http://m",
        "MLFLOW_TRACKING_PASSWORD": "pw",
    }
    assert tracker_secrets("mlflow", server, False, key="t") == {"MLFLOW_TRACKING_TOKEN": "t"}
    assert tracker_secrets("tensorboard", server, True, key="x") == {}  # nothing to send


def test_a_missing_tracker_package_is_refused_before_queueing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert tracker_problems(_config("wandb")) == [
        "run.report_to: wandb is not installed here. pip install wandb, or pick another tracker."
    ]
    assert tracker_problems(_config("tensorboard")) == []


def test_a_trackio_space_needs_trackio_and_a_space_id():
    assert any(p.startswith("run.trackio_space_id: only trackio") for p in _config("wandb", space="me/x").problems())
    assert any("is not a Space ID" in p for p in _config("trackio", space="me/x/y").problems())
    assert _config("trackio", space="me/trackio").problems() == []


def test_the_adapter_zip_carries_the_trackers_files(tmp_path):
    from trainer.runs.service import RunService
    from trainer.runs.store import Job

    run_dir = tmp_path / "run"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"w")
    (run_dir / "tensorboard" / "run").mkdir(parents=True)
    (run_dir / "tensorboard" / "run" / "events.out.tfevents.1").write_bytes(b"e")
    job = Job(id=1, owner=None, name="r", status="succeeded", run_dir=str(run_dir), created_at=0.0)
    with zipfile.ZipFile(RunService.adapter_archive(job, tmp_path / "out" / "run-1-adapter")) as archive:
        assert sorted(archive.namelist()) == [
            "adapter_model.safetensors",
            "tensorboard/",
            "tensorboard/run/",
            "tensorboard/run/events.out.tfevents.1",
        ]
    assert Path(tmp_path / "out").is_dir()
