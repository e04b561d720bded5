"""Experiment trackers (`run.report_to`), each read back with its own library, never with ours: TensorBoard's event
files with tensorboard's reader hold the loss curve events.jsonl holds; trackio in local mode records the run and
its losses in the run folder; MLflow's local store has the run's metrics. The tiny model, a few steps each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli import run_cli
from trainer.config import load_config
from trainer.runs import folder as rf
from trainer.training import run

pytestmark = pytest.mark.slow

ENV = (
    "TENSORBOARD_LOGGING_DIR",
    "TRACKIO_DIR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_ALLOW_FILE_STORE",
)
OVERRIDES = ["max_steps=6", "logging_steps=2", "eval_fraction=0", "sample_prompts=0", "save_steps=100"]


def _losses(run_dir) -> dict[int, float]:
    """{step: loss} of the run's own events.jsonl (the curve the Runs tab draws)."""
    lines = (run_dir / rf.EVENTS_FILE).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return {e["step"]: e["loss"] for e in events if e.get("loss") is not None}


def _train(tmp_path, tracker: str, monkeypatch):
    for name in ENV:  # the run sets them in os.environ, as a worker does: this test's own values go at its end
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    cfg = load_config(preset="tiny-demo", overrides=[*OVERRIDES, f"report_to={tracker}", "run.name=tracked demo"])
    run_dir = tmp_path / "run"
    run(cfg, run_dir=run_dir)
    return run_dir


def test_tensorboard_event_files_hold_the_loss_curve(tiny_model_path, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = _train(tmp_path, "tensorboard", monkeypatch)
    files = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file in the run folder"
    reader = EventAccumulator(str(files[0].parent))
    reader.Reload()
    scalars = {s.step: s.value for s in reader.Scalars("train/loss")}
    expected = _losses(run_dir)
    assert sorted(scalars) == sorted(expected) == [2, 4, 6]
    assert all(scalars[step] == pytest.approx(expected[step], rel=1e-5) for step in expected)


def test_trackio_records_the_run_locally(tiny_model_path, tmp_path):
    # as a worker runs it, in a fresh process: trackio reads TRACKIO_DIR once, when it is first imported
    run_dir = tmp_path / "run"
    sets = [a for o in [*OVERRIDES, "report_to=trackio", "run.name=tracked demo"] for a in ("--set", o)]
    done = run_cli("train", "--preset", "tiny-demo", *sets, "--run-dir", str(run_dir), env={"TRACKIO_DIR": ""})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    databases = list((run_dir / "trackio").glob("*.db"))
    assert [db.stem for db in databases] == ["tracked-demo"]  # the project: the run's name
    read = (  # trackio's own storage reads it, in a fresh process pointed at the run folder (TRACKIO_DIR)
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
        "print(json.dumps({'runs': S.get_runs('tracked-demo'), 'logs': S.get_logs('tracked-demo', sys.argv[1])}))"
    )
    env = {**os.environ, "TRACKIO_DIR": str(run_dir / "trackio")}
    out = subprocess.run([sys.executable, "-c", read, run_dir.name], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["runs"] == [run_dir.name]
    losses = {log["train/global_step"]: log["train/loss"] for log in found["logs"] if "train/loss" in log}
    expected = _losses(run_dir)
    assert sorted(losses) == sorted(expected) and all(
        losses[s] == pytest.approx(expected[s], rel=1e-5) for s in losses
    )


def test_mlflow_logs_into_the_run_folder_without_a_server(tiny_model_path, tmp_path, monkeypatch):
    import mlflow

    run_dir = _train(tmp_path, "mlflow", monkeypatch)
    client = mlflow.MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tracked-demo")
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == run_dir.name
    history = {m.step: m.value for m in client.get_metric_history(found.info.run_id, "loss")}
    expected = _losses(run_dir)
    assert sorted(history) == sorted(expected) and all(
        history[s] == pytest.approx(expected[s], rel=1e-5) for s in history
    )


def test_wandb_without_a_key_logs_offline_into_the_run_folder(tiny_model_path, tmp_path, monkeypatch):
    run_dir = _train(tmp_path, "wandb", monkeypatch)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # no network, no key: `wandb sync` sends it later
    assert list(offline.glob("run-*.wandb"))
