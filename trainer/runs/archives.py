"""The downloads made of a run folder (call each with a job from `RunService.find`: the owner checked): the adapter
with its tracker's local files, and the run as a config for stock TRL."""

from __future__ import annotations

import shutil
from pathlib import Path

from trainer.runs import folder as rf
from trainer.runs.store import Job


def adapter_archive(job: Job, into: Path) -> str:
    """A .zip of the run's adapter folder at `into` + ".zip", with its tracker's local files (TensorBoard's event
    files, trackio's database, W&B's offline run, MLflow's store) in their own folders beside it (call with a job
    from `find`: the owner checked)."""
    from trainer.trackers import TRACKER_DIRS

    adapter = Path(job.run_dir) / rf.ADAPTER_DIR
    if not (adapter / "adapter_model.safetensors").is_file():
        raise ValueError(f"run #{job.id} has no adapter yet: it is saved when training finishes.")
    logs = [Path(job.run_dir) / name for name in sorted(set(TRACKER_DIRS.values()))]
    if not any(folder.is_dir() for folder in logs):
        return shutil.make_archive(str(into), "zip", root_dir=adapter)
    shutil.copytree(adapter, into)
    for folder in logs:
        if folder.is_dir():
            shutil.copytree(folder, into / folder.name, symlinks=False)
    return shutil.make_archive(str(into), "zip", root_dir=into)


def trl_archive(job: Job, into: Path) -> str:
    """A .zip of the run's `trl_<method>.yaml`, `trl_data/` (and a GRPO run's reward files) at `into` + ".zip"
    (call with a job from `find`)."""
    from trainer.trl_export import REWARD_FILES, TRL_DATA_DIR, trl_file_of

    run_dir = Path(job.run_dir)
    if (found := trl_file_of(run_dir)) is None:
        raise ValueError(
            f"run #{job.id} has no config for stock TRL: it is written when an SFT, DPO, KTO or GRPO run has "
            "prepared its data (TRL 1.16 has no `trl orpo` command)."
        )
    shutil.copytree(run_dir / TRL_DATA_DIR, into / TRL_DATA_DIR)
    for file in (found, *(run_dir / name for name in REWARD_FILES if (run_dir / name).is_file())):
        shutil.copy2(file, into / file.name)
    return shutil.make_archive(str(into), "zip", root_dir=into)
