"""Everything knowable before a run is queued: the machine, the offline demo's limits, push rights, the data.

A long run must never fail for a reason that was knowable at Start: a missing package, a typo in the repo ID, a
read-only token, a dataset that does not parse. These checks take seconds (the data check streams a few hundred
rows, never the whole split) and return every problem as ``"<key>: <problem>. <fix>"``, so the form can show each
one next to its field.
"""

from __future__ import annotations

from trainer.config import ConfigError, RunConfig
from trainer.phi3 import TINY_MODEL_NAME

DEMO_PRESET = "tiny-demo"
CHECK_ROWS = 200
"""Rows of each split the pre-queue data check reads (enough for a missing file/split, the format, bad rows)."""


def demo_problems(cfg: RunConfig, on_gpu: bool) -> list[str]:
    """What the offline CPU demo cannot do (a real Phi-3 on a CPU with no Hub access)."""
    if on_gpu or cfg.model.model_name_or_path == TINY_MODEL_NAME:
        return []
    return [
        f"model.model_name_or_path: this machine has no GPU, so it runs the offline demo and can only train "
        f"{TINY_MODEL_NAME}. Pick the {DEMO_PRESET} preset, or run the app on a GPU Space."
    ]


def check_before_queueing(cfg: RunConfig, on_gpu: bool, token: str | None = None) -> list[str]:
    """Every problem knowable before a job is queued: machine, demo limits, push rights, and that the data parses.

    Args:
        cfg: a valid run config (see `RunConfig.problems` for the values themselves).
        on_gpu: whether this machine trains on a GPU (False: the offline demo).
        token: the user's Hugging Face token (for private data and the push check; never logged).

    Returns:
        The problems (empty when the run can be queued).
    """
    from trainer import data
    from trainer.hub import HubError, check_push_access
    from trainer.modeling import environment_problems, model_problems

    problems = environment_problems(cfg.model) + demo_problems(cfg, on_gpu)
    if problems:
        return problems
    problems += model_problems(cfg.model, cfg.lora, token)  # its config only: a Phi-3 model, real target modules
    if cfg.hub.repo_id:  # a long run must never fail at push time for a reason knowable now
        try:
            check_push_access(cfg.hub.repo_id, token)
        except HubError as exc:
            problems.append(str(exc) if str(exc).startswith("hub.") else f"hub.repo_id: {exc}")
    try:  # the first rows catch a missing file/ID/split, an unknown format, all-bad rows, or no room for replies
        prepared = data.prepare(cfg.data, token=token, limit=CHECK_ROWS)
        tokenizer = data.preview_tokenizer(cfg.model.model_name_or_path)
        if problem := data.reply_room_problem(tokenizer, prepared.train["messages"], cfg.training.max_length):
            problems.append(problem)
    except (data.DataError, ConfigError) as exc:
        problems.append(str(exc))
    return problems
