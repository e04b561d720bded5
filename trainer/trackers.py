"""Experiment trackers: where a run reports its metrics besides its own `events.jsonl` (`run.report_to`).

transformers' own callbacks do the reporting (`TrainingArguments.report_to`); this module says, as pure functions,
what each tracker is told: its project and run names (from the run's name), where its files go (inside the run
folder, so they are downloaded with it), and which keys it may use.

- `tensorboard`: event files in `<run>/tensorboard/` (torch's SummaryWriter), offered in the run's zip.
- `trackio`: the Hub's own tracker; locally (the default) into `<run>/trackio/`, or live to a Space of the user's
  (`run.trackio_space_id`) with their own token: the worker holds no other.
- `wandb`: online with the user's own key (the Tracker key field, held in memory like the Hub token, or, for the
  local user or the Space's owner, the machine's `WANDB_API_KEY`); without a key, offline into `<run>/wandb/`
  (`wandb sync` sends it later).
- `mlflow`: to the tracking server the local user or the Space's owner set (`MLFLOW_TRACKING_URI`, with its
  credentials), else into `<run>/mlruns/`; a visitor's key is sent as `MLFLOW_TRACKING_TOKEN`.

A key never reaches the YAML, the run folder, the job table or a log: it goes to the worker's environment only.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.config import RunConfig

TRACKERS: tuple[str, ...] = ("none", "tensorboard", "trackio", "wandb", "mlflow")
"""What `run.report_to` offers: transformers' integrations that people pick (none: events.jsonl only)."""

PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}
"""The package each tracker needs (mlflow: mlflow-skinny provides it)."""

TRACKER_DIRS = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlruns"}
"""Each tracker's folder inside the run folder."""

SERVER_SECRETS = {
    "wandb": ("WANDB_API_KEY",),
    "mlflow": ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
}
"""The machine's settings a tracker may take, for the local user or the Space's owner only (a worker inherits no
secret: `trainer.runs.processes.SECRET_NAMES`)."""

KEY_VARIABLE = {"wandb": "WANDB_API_KEY", "mlflow": "MLFLOW_TRACKING_TOKEN"}
"""Where the Tracker key field's value goes in the worker's environment."""

DEFAULT_PROJECT = "phi3-finetune-studio"


def project_name(config: RunConfig) -> str:
    """The tracker's project: the run's name as a slug (runs of one sweep share it), else the studio's."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", config.run.name.strip()).strip("-.")[:96]
    return slug or DEFAULT_PROJECT


def tracker_settings(config: RunConfig, run_dir: Path) -> dict[str, Any]:
    """TrainingArguments' tracker settings for the run (pure): `report_to`, the run's name (its folder's, unique)
    and project; trackio's Space when one is asked for (no static copy is made of a local run)."""
    report_to = config.run.report_to
    settings: dict[str, Any] = {"report_to": report_to, "run_name": Path(run_dir).name}
    if report_to != "none":
        settings["project"] = project_name(config)
    if report_to == "trackio":
        space = config.run.trackio_space_id.strip() or None
        settings.update(trackio_space_id=space, trackio_static_space_id=None if space else False)
    return settings


def tracker_environment(config: RunConfig, run_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The environment variables the training process sets for its tracker (pure): its folder inside the run folder,
    and for W&B offline mode when no key is at hand, for MLflow a local store when no server is set."""
    report_to, run_dir = config.run.report_to, Path(run_dir)
    if report_to == "none":
        return {}
    folder = str(run_dir / TRACKER_DIRS[report_to])
    if report_to == "tensorboard":
        return {"TENSORBOARD_LOGGING_DIR": folder}
    if report_to == "trackio":
        return {"TRACKIO_DIR": folder}
    if report_to == "wandb":
        out = {"WANDB_DIR": str(run_dir), "WANDB_PROJECT": project_name(config), "WANDB_SILENT": "true"}
        if not env.get("WANDB_API_KEY"):
            out["WANDB_MODE"] = "offline"
        return out
    out = {"MLFLOW_EXPERIMENT_NAME": project_name(config)}
    if not env.get("MLFLOW_TRACKING_URI"):  # MLflow's file store: its client alone, no database or server needed
        out.update(MLFLOW_TRACKING_URI=Path(folder).resolve().as_uri(), MLFLOW_ALLOW_FILE_STORE="true")
    return out


def tracker_secrets(
    report_to: str, server_env: Mapping[str, str], server_secrets_allowed: bool, key: str | None = None
) -> dict[str, str]:
    """What is added to the worker's environment for its tracker (pure): the machine's settings for the local user
    or the Space's owner (`server_secrets_allowed`), and the key the caller typed, which wins."""
    out = {}
    if server_secrets_allowed:
        out = {name: server_env[name] for name in SERVER_SECRETS.get(report_to, ()) if server_env.get(name)}
    if key and key.strip() and report_to in KEY_VARIABLE:
        out[KEY_VARIABLE[report_to]] = key.strip()
    return out


def tracker_problems(config: RunConfig) -> list[str]:
    """What stops the run's tracker before the run is queued: its package missing here."""
    report_to = config.run.report_to
    package = PACKAGES.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        return [f"run.report_to: {report_to} is not installed here. pip install {package}, or pick another tracker."]
    return []
