"""Where a run's results go and what it is called: the `hub` section (the adapter's repo, checkpoints, a merged
copy) and the `run` section (its name, its GPUs, the experiment tracker it reports to)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainer.config.fields import setting as _field


@dataclass
class HubConfig:
    """Where the adapter is published."""

    repo_id: str = _field("", label="Push to", help="Hub model repo for the adapter (user/name); empty = keep local.")
    private: bool = _field(True, label="Private repo", help="Create the repo as private.")
    push_checkpoints: bool = _field(
        False,
        label="Push every checkpoint",
        advanced=True,
        help="Also upload each checkpoint's adapter to checkpoints/checkpoint-<step>/ in the repo while training, "
        "so a crash or a lost machine keeps the latest adapter.",
    )
    push_merged: bool = _field(
        False,
        label="Also push a merged model",
        advanced=True,
        help="Merge the adapter into a bf16 copy of the base (unquantised, also for QLoRA) and push the full model "
        "to <repo_id>-merged with its own card.",
    )


@dataclass
class RunSettings:
    """What a person calls the run (shown wherever runs are listed), and how many GPUs of the machine it uses."""

    name: str = _field(
        "",
        label="Run name",
        help="Shown in the run list and the Compare tab; empty = the preset (or base model) and the dataset.",
    )
    gpus: Literal["all", "one"] = _field(
        "all",
        label="GPUs",
        advanced=True,
        help="On a machine with several GPUs, train on all of them (one process per GPU, each with a full copy of "
        "the model and its share of every batch) or on one. The web app's setting; the CLI uses what it is "
        "launched with (torchrun, accelerate launch).",
    )
    report_to: Literal["none", "tensorboard", "trackio", "wandb", "mlflow"] = _field(
        "none",
        label="Report to",
        advanced=True,
        help="An experiment tracker that also records the run (its metrics are always in the Runs tab): "
        "TensorBoard files and local trackio go in the run folder and its zip; W&B and MLflow use your own key "
        "(Tracker key, held in memory only), else log offline into the run folder.",
    )
    trackio_space_id: str = _field(
        "",
        label="trackio Space",
        advanced=True,
        help="trackio only: a Space of yours (user/name) to log to live, with your own token; empty = locally, "
        "in the run folder.",
    )
