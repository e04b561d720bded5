"""The training method's TRL trainer: SFT's settings shared with the preference methods (DPO, KTO, ORPO).

`trainer.training` runs every method the same way (data, model, eval before, train, eval after, save the adapter);
this module holds what differs: which TRL trainer and config, the settings each takes, the rows the samples are
answered from, and the metrics a preference method reports.

The reference model of DPO and KTO is never a second copy of the model: for a fresh adapter it is the base with the
adapter disabled (TRL does this when it is handed a PEFT config); when a run continues from an adapter (SFT, then
DPO), TRL adds a frozen copy of that adapter named ``ref`` and the reference is the parent adapter. ORPO needs none.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.config.methods import TRL_CLASSES
from trainer.rewards import parse_rewards, reward_change
from trainer.runs import folder as rf

PROJECT_ONLY_SETTINGS = ("method", "sample_prompts", "sample_max_new_tokens")
"""Training settings that are this project's own (the method, samples before/after); the rest are SFTConfig fields."""

TRL_SETTINGS = (
    "num_generations",
    "max_completion_length",
    "temperature",
    "beta",
    "loss_type",
    "num_iterations",
    "epsilon",
    "generation_batch_size",
)
"""The grpo section's settings that are GRPOConfig fields of the same name (the rest pick and feed the rewards)."""

SFT_ONLY = ("packing", "padding_free", "assistant_only_loss", "gradient_checkpointing")
"""Training settings a preference method does not take as they are (gradient checkpointing: by this transformers'
name, see `checkpointing_settings`)."""

REFERENCE_ADAPTER = "ref"
"""The frozen copy of the parent adapter TRL's DPO and KTO trainers add to a PeftModel they are handed (the reference
of a run that continues from an adapter); not part of the tuned adapter."""

PREFERENCE_METRICS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
"""What a preference method's evaluation reports, kept before and after training (without the ``eval_`` prefix)."""


@functools.cache
def _has_activation_checkpointing() -> bool:
    from transformers import TrainingArguments

    return "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}


def checkpointing_settings(on: bool) -> dict[str, Any]:
    """`training.gradient_checkpointing` (non-reentrant) under the names this transformers' TrainingArguments has.

    transformers 5.25 renamed `gradient_checkpointing(_kwargs)` to `activation_checkpointing(_kwargs)` (the old names
    warn, and go in v6); older releases, such as the GPU machine's 5.17, know only the old ones. TRL's configs
    inherit them.
    """
    from trainer.modeling import NON_REENTRANT

    kwargs = dict(NON_REENTRANT) if on else None
    if _has_activation_checkpointing():
        return {"activation_checkpointing": on, "activation_checkpointing_kwargs": kwargs}
    return {"gradient_checkpointing": on, "gradient_checkpointing_kwargs": kwargs}


def _trl_class(method: str, kind: str):
    import importlib

    module, prefix = TRL_CLASSES[method]
    if module.startswith("trl.experimental"):
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO's home in TRL 1.x, used knowingly
    return getattr(importlib.import_module(module), prefix + kind)


def config_class(method: str):
    """TRL's config class for the method."""
    return _trl_class(method, "Config")


def trainer_class(method: str):
    """TRL's trainer class for the method."""
    return _trl_class(method, "Trainer")


def machine_settings(config: RunConfig, run_dir: Path, has_eval: bool) -> dict[str, Any]:
    """The settings every method's config gets from the machine, the run folder and the data (not from the form)."""
    import torch

    from trainer.modeling import pick_dtype
    from trainer.trackers import tracker_settings

    on_gpu = torch.cuda.is_available()
    dtype = pick_dtype(config.model)
    return dict(
        output_dir=str(run_dir / rf.CHECKPOINTS_DIR),
        data_seed=config.training.seed,
        eval_strategy="steps" if has_eval else "no",
        save_strategy="steps",
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        use_cpu=not on_gpu,
        dataloader_pin_memory=on_gpu,
        ddp_find_unused_parameters=False,  # every LoRA weight takes part in every step: no search for unused ones
        disable_tqdm=True,
        **tracker_settings(config, run_dir),  # report_to, run and project names (trainer.trackers)
    )


def sft_settings(config: RunConfig, padding_free: bool = False) -> dict[str, Any]:
    """The SFTConfig settings the form gives (pure): the training section's fields, named as SFTConfig's, with
    gradient checkpointing under this transformers' name; `max_length` off for padding-free batches (the run cuts
    those rows itself, see `fit_to_max_length`)."""
    t = config.training
    settings = {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.name not in PROJECT_ONLY_SETTINGS}
    settings.update(checkpointing_settings(settings.pop("gradient_checkpointing")))
    settings.update(max_length=None if padding_free else t.max_length, padding_free=padding_free)
    return settings


def sft_config(config: RunConfig, run_dir: Path, has_eval: bool, padding_free: bool = False):
    """Translate RunConfig into TRL's SFTConfig (the only place the two meet): `sft_settings` and the values derived
    from the machine, the run folder and the data."""
    from trl import SFTConfig

    settings = sft_settings(config, padding_free)
    if unknown := sorted(set(settings) - {f.name for f in dataclasses.fields(SFTConfig)}):
        raise TypeError(f"training settings {unknown} are not SFTConfig fields; add them to PROJECT_ONLY_SETTINGS")
    settings.update(machine_settings(config, run_dir, has_eval))
    return SFTConfig(**settings)


def training_settings(config: RunConfig, trl_fields: Sequence[str]) -> dict[str, Any]:
    """The training section's settings that a method's TRL config has (`trl_fields`), SFT's own left out, with
    gradient checkpointing under this transformers' name (pure)."""
    t = config.training
    settings = {
        f.name: getattr(t, f.name)
        for f in dataclasses.fields(t)
        if f.name in trl_fields and f.name not in PROJECT_ONLY_SETTINGS + SFT_ONLY
    }
    settings.update(checkpointing_settings(t.gradient_checkpointing))
    return settings


def preference_settings(config: RunConfig) -> dict[str, Any]:
    """The DPOConfig, KTOConfig or ORPOConfig settings the form gives (pure): the training section's that the
    method's config has, and the preference section's that the method takes, under TRL's names."""
    method, p = config.training.method, config.preference
    settings = training_settings(config, [f.name for f in dataclasses.fields(config_class(method))])
    settings["beta"] = p.beta
    if method == "dpo":
        settings["loss_type"] = [p.loss_type]
    if method == "kto":
        settings.update(desirable_weight=p.desirable_weight, undesirable_weight=p.undesirable_weight)
    return settings


def grpo_settings(config: RunConfig, trl_fields: Sequence[str]) -> dict[str, Any]:
    """The GRPOConfig settings the form gives (pure): the training section's that GRPOConfig has, the grpo section's
    under TRL's names, and the built-in rewards' weights (`reward_weights`, in the menu's order).

    Args:
        trl_fields: GRPOConfig's field names (the training settings it lacks are left out).
    """
    g = config.grpo
    settings = training_settings(config, trl_fields)
    settings.update({name: getattr(g, name) for name in TRL_SETTINGS})
    settings["reward_weights"] = [w for _, w in parse_rewards(g.rewards)] if g.rewards.strip() else None
    return settings


def preference_config(config: RunConfig, run_dir: Path, has_eval: bool):
    """TRL's DPOConfig, KTOConfig or ORPOConfig for the run: `preference_settings` and the machine's."""
    settings = preference_settings(config)
    settings.update(machine_settings(config, run_dir, has_eval))
    return config_class(config.training.method)(**settings)


def preference_trainer(config: RunConfig, run_dir: Path, model, tokenizer, train_dataset, eval_dataset, callbacks=()):
    """TRL's trainer for a preference method, with the PEFT LoRA config (or the PeftModel being continued)."""
    from peft import PeftModel
    from transformers import PrinterCallback

    from trainer.modeling import lora_config

    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    method = config.training.method
    # None: the reference is the model itself with its adapter disabled (or TRL's frozen copy of the parent adapter)
    reference = {} if method == "orpo" else {"ref_model": None}
    trainer = trainer_class(method)(
        model=model,
        **reference,
        args=preference_config(config, run_dir, has_eval),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if has_eval else None,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else lora_config(config.lora),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def drop_reference_copy(adapter_dir: Path) -> None:
    """Remove the reference adapter TRL saved beside the tuned one (``adapter/ref/``): the parent's adapter, unchanged,
    which the tuned adapter must not carry (stock PEFT would see two adapters)."""
    import shutil

    shutil.rmtree(Path(adapter_dir) / REFERENCE_ADAPTER, ignore_errors=True)


def sample_conversations(dataset, n: int, answer_column: str = "answer") -> list[list[dict]]:
    """Up to n conversations to answer before and after training: a ``messages`` row as it is; a preference row as
    its prompt and its chosen (or desirable) reply, the reply the run is meant to move towards; a GRPO prompt with
    the reference answer its rewards compare with, if any (`answer_column`)."""
    rows = dataset.select(range(min(n, len(dataset))))
    if "messages" in dataset.column_names:
        return list(rows["messages"])
    if "chosen" in dataset.column_names:
        return [row["prompt"] + row["chosen"] for row in rows]
    if "label" in dataset.column_names:
        return [row["prompt"] + row["completion"] for row in rows if row["label"]]
    return [row["prompt"] + [{"role": "assistant", "content": str(row.get(answer_column) or "")}] for row in rows]


def preference_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """A preference evaluation's accuracy, margin and rewards, named without the ``eval_`` prefix."""
    return {name: round(float(metrics[f"eval_{name}"]), 4) for name in PREFERENCE_METRICS if f"eval_{name}" in metrics}


def result_summary(run_dir: Path) -> list[str]:
    """What a finished run prints: the eval loss before -> after, for DPO, KTO or ORPO the held-out preference
    accuracy and reward margin before -> after, and for GRPO the held-out prompts' mean reward (a line each)."""
    status = rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}
    lines = []
    first, last = status.get("eval_loss_before"), status.get("eval_loss_after")
    if (drop := rf.loss_drop(first, last)) is not None:
        lines.append(f"eval loss {first:.4f} -> {last:.4f} ({rf.loss_change(drop)})")
    before, after = status.get("preference_before") or {}, status.get("preference_after") or {}
    for name, label in (("rewards/accuracies", "preference accuracy"), ("rewards/margins", "reward margin")):
        if name in before and name in after:
            lines.append(f"held-out {label}: {before[name]:.3f} -> {after[name]:.3f}")
    if line := reward_change(status.get("reward_before"), status.get("reward_after")):
        lines.append(line)
    return lines
