"""Continue training: a finished run's config for the Train form, and, at Start, its run id resolved on the server.

The Runs tab's *Continue training* fills the Train form from a finished run the caller owns, naming that run as the
adapter to start from by its id (``run #12``), never by a path; Start turns the id into the run's folder only after
checking the caller owns it (`resolve_parent`). The run itself loads the adapter trainable, with its own LoRA
settings (`trainer.training.continued_from`).
"""

from __future__ import annotations

import re
from pathlib import Path

from trainer.runs import folder as rf
from trainer.runs.access import AccessError, find_job
from trainer.ui import compare_tab

RUN_REF = re.compile(r"run #(\d{1,12})")
"""How Continue training names the parent run in the form (`run #12`): an id, resolved on the server at Start."""
CONTINUABLE = ("succeeded", "push_failed")
"""Runs that finished training (their adapter is saved), so a new run can start from it."""


def continuable(manager, who, job_id: object):
    """The caller's own finished run with a saved adapter (what a new run may continue from).

    Raises:
        AccessError: not signed in, no such run, or another user's run. ValueError: it has not finished training.
    """
    job = find_job(manager.store, who, job_id)
    if job.status not in CONTINUABLE or not (Path(job.run_dir) / rf.ADAPTER_DIR / "adapter_config.json").is_file():
        raise ValueError(
            f"run #{job.id} is {job.status}, with no saved adapter: continue it once it has finished training."
        )
    return job


def continue_config(manager, who, job_id: object):
    """The Train form's config to continue a finished run: its own config, its adapter to start from (named by id,
    never by a path), and the name "<its name> (continued)"."""
    from trainer.config import load_yaml
    from trainer.config.rules import RUN_NAME_MAX

    job = continuable(manager, who, job_id)
    cfg = load_yaml(Path(job.run_dir) / rf.CONFIG_FILE)
    cfg.model.adapter_name_or_path = f"run #{job.id}"
    suffix = " (continued)"
    cfg.run.name = (cfg.run.name.strip() or job.name)[: RUN_NAME_MAX - len(suffix)] + suffix
    return cfg


def resolve_parent(manager, who, cfg) -> str | None:
    """At Start: make `model.adapter_name_or_path` something the server may load for this caller (in place).

    `run #<id>` (what Continue training fills in) becomes that run's folder, if it is the caller's own finished run.
    On a Space anything else must be a Hub adapter repo, never a path on the server; the person at the machine
    (local mode) may also name a folder.

    Returns:
        The problem as ``model.adapter_name_or_path: ...``, or None.
    """
    value = (cfg.model.adapter_name_or_path or "").strip()
    if not value:
        return None
    try:
        if match := RUN_REF.fullmatch(value):
            cfg.model.adapter_name_or_path = continuable(manager, who, match[1]).run_dir
        elif not who.local:
            cfg.model.adapter_name_or_path = compare_tab.chosen_source(manager, who, None, value)
    except (AccessError, ValueError) as exc:
        return f"model.adapter_name_or_path: {exc}"
    return None
