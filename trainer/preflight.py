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


class RefusedRun(ValueError):
    """A job refused before it is queued: `problems`, each "<setting key>: <what is wrong and the fix>"."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


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


QLORA_KEYS = ("model.load_in_4bit", "model.bnb_4bit_quant_type", "model.use_bnb_nested_quant")
"""The 4-bit (QLoRA) settings: the switch first, then the options that only matter when it is on."""
FLASH_CHOICE = "model.attn_implementation=flash_attention_2"


def unavailable_options(on_gpu: bool) -> dict[str, str]:
    """What the form must not offer on this machine, with why: the same facts the checks at Start and load use.

    4-bit needs bitsandbytes, on a GPU or on its CPU backend (`trainer.modeling.environment_problems`, which
    refuses it at Start); flash_attention_2 needs a GPU and the flash-attn package (`trainer.modeling.pick_attention`,
    which falls back to sdpa without them); Hub kernels need the owner's leave on a Space
    (`trainer.runs.access.hub_kernels_problem`, which refuses them at Start).

    Args:
        on_gpu: whether this machine trains on a GPU (False: the offline demo; flash-attn is not looked up then).

    Returns:
        {key: reason}: a setting's key (``model.load_in_4bit``) when the whole setting is unusable, or
        ``<key>=<choice>`` (`FLASH_CHOICE`) when one choice of it is; empty when everything can run.
    """
    from trainer.config import ModelConfig
    from trainer.modeling import environment_problems
    from trainer.runs.access import HUB_KERNELS_REFUSED, hub_kernels_problem

    found: dict[str, str] = {}
    # the server's own check, asked about a 4-bit config: its reason is the one Start would give
    problems = environment_problems(ModelConfig(load_in_4bit=True))
    qlora = problems[0].split(": ", 1)[-1] if problems else ""
    if not on_gpu:
        flash = "flash_attention_2 needs a CUDA GPU and this machine has none."
    else:
        from transformers.utils import is_flash_attn_2_available

        flash = "" if is_flash_attn_2_available() else "flash_attention_2 needs the flash-attn package."
    if qlora:
        found[QLORA_KEYS[0]] = qlora
        found.update({key: f"only used by QLoRA. {qlora}" for key in QLORA_KEYS[1:]})
    if flash:
        found[FLASH_CHOICE] = flash
    if hub_kernels_problem(asked=True):  # a Space whose owner has not allowed them
        found["model.hub_kernels"] = HUB_KERNELS_REFUSED + "."
    return found


def check_before_queueing(cfg: RunConfig, on_gpu: bool, token: str | bool | None = None) -> list[str]:
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
    from trainer.modeling import adapter_problems, environment_problems, model_problems
    from trainer.trackers import tracker_problems

    problems = environment_problems(cfg.model) + demo_problems(cfg, on_gpu) + tracker_problems(cfg)
    if problems:
        return problems
    problems += model_problems(cfg.model, cfg.lora, token)  # its config only: a Phi-3 model, real target modules
    problems += adapter_problems(cfg.model, token)  # an adapter to continue from: there, finished, on this base
    if cfg.hub.repo_id:  # a long run must never fail at push time for a reason knowable now
        try:
            check_push_access(cfg.hub.repo_id, token)
        except HubError as exc:
            problems.append(str(exc) if str(exc).startswith("hub.") else f"hub.repo_id: {exc}")
    try:  # the first rows catch a missing file/ID/split, an unknown format, all-bad rows, or no room for replies
        if cfg.training.method == "grpo":  # prompts, and every column the rewards read
            return problems + grpo_data_problems(cfg, token)
        if cfg.training.method != "sft":  # DPO, KTO, ORPO: preferences the method can train on
            from trainer.data.preferences import prepare_preferences

            prepare_preferences(cfg.data, cfg.training.method, token=token, limit=CHECK_ROWS)
            return problems
        prepared = data.prepare(cfg.data, token=token, limit=CHECK_ROWS)
        tokenizer = data.preview_tokenizer(cfg.model.model_name_or_path)
        if problem := data.reply_room_problem(tokenizer, prepared.train["messages"], cfg.training.max_length):
            problems.append(problem)
    except (data.DataError, ConfigError) as exc:
        problems.append(str(exc))
    return problems


def grpo_data_problems(cfg: RunConfig, token: str | None = None) -> list[str]:
    """A GRPO run's data problems, from its first rows: no prompt column, a column a reward reads missing (each on
    its own line), malformed rows; and a local reward module that is not there. No model is loaded."""
    from pathlib import Path

    from trainer.data import DataError
    from trainer.data.prompts import prepare_prompts

    found = []
    module = cfg.grpo.reward_module.strip()
    if module and not Path(module).expanduser().is_file():
        found.append(f"grpo.reward_module: no file {module!r}. Name a Python file of reward_* functions.")
    try:
        prepare_prompts(cfg, token=token, limit=CHECK_ROWS)
    except DataError as exc:
        found += str(exc).split("\n")
    return found


def warm_up() -> None:
    """Run the checks at Start once on the demo preset, so that the libraries they import (torch, transformers'
    Phi-3 code, datasets, the tokenizer: several seconds on a small machine) are loaded before a person's first
    Start, which then answers at once. The app runs it in a background thread as it starts; it builds nothing."""
    import logging
    import time

    from trainer.config import preset_config

    started = time.time()
    try:
        check_before_queueing(preset_config(DEMO_PRESET), on_gpu=False)
    except Exception as exc:  # noqa: BLE001 - a warm-up only: the real Start reports any problem itself
        logging.getLogger(__name__).warning("warm-up of the checks failed: %s", exc)
        return
    logging.getLogger(__name__).info("checks warmed up in %.1f s", time.time() - started)
