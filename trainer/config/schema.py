"""RunConfig: the one description of a fine-tuning run, with its fields' metadata and its validation.

Every setting of a run lives in one tree of dataclasses (model, data, lora, training, hub). Each field carries its
help text, label and bounds in `metadata`; the CLI flags, the YAML files and the web form are generated from these
fields, so defaults and ranges are written here and nowhere else. Keys are named as in TRL's `SFTConfig`, PEFT's
`LoraConfig` and TRL's `ModelConfig`/`ScriptArguments` wherever one exists.

Problems are strings of the form ``"<section>.<key>: <problem>. <fix>"``; a fix that names a setting uses `hint`
(``set data.format to `alpaca```), which each front end renders its own way (a form label, a CLI flag; see
`trainer.config.hints`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from trainer.config.fields import INT_LIMIT
from trainer.config.fields import setting as _field
from trainer.config.methods import GRPOSettings, PreferenceSettings
from trainer.config.outputs import HubConfig, RunSettings
from trainer.config.rules import RUN_NAME_MAX, TEXT_LIMIT, cross_field_problems, size_problem
from trainer.phi3 import DEFAULT_BASE_MODEL, PHI3_PROJECTIONS


@dataclass
class ModelConfig:
    """The base model and how it is loaded."""

    model_name_or_path: str = _field(
        DEFAULT_BASE_MODEL,
        label="Base model",
        help="Hub ID or local folder of a Phi-3 / Phi-3.5 / Phi-4-mini causal LM (e.g. "
        "microsoft/Phi-3-mini-128k-instruct).",
    )
    load_in_4bit: bool = _field(
        False,
        label="QLoRA (4-bit base)",
        help="Load the frozen base in 4-bit (bitsandbytes) and train LoRA on top: QLoRA. Runs where "
        "bitsandbytes does (a CUDA GPU, or its CPU backend in the demo); uses about a third of the "
        "memory of LoRA on a bf16 base.",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = _field(
        "nf4", label="4-bit type", advanced=True, help="4-bit data type for QLoRA; NF4 is the QLoRA paper's choice."
    )
    use_bnb_nested_quant: bool = _field(
        True,
        label="Double quantisation",
        advanced=True,
        help="Quantise the 4-bit quantisation constants too (saves about 0.4 bits per parameter).",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = _field(
        "auto",
        label="Compute dtype",
        advanced=True,
        help="auto = bfloat16 on a GPU that supports it, float16 on older GPUs, float32 on a CPU.",
    )
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = _field(
        "auto",
        label="Attention",
        advanced=True,
        help="auto = flash_attention_2 when installed on a supporting GPU, else sdpa, else eager.",
    )
    hub_kernels: bool = _field(
        False,
        label="Hub kernels",
        advanced=True,
        help="Let bitsandbytes and transformers download compute kernels from the Hugging Face Hub "
        "(kernels-community) when the run starts, e.g. bitsandbytes' fused 4-bit matmul for CPUs with AVX512-BF16. "
        "Third-party code fetched at run time, so off by default; on a Space only where its owner allows it "
        "(USE_HUB_KERNELS=YES).",
    )
    pad_token: str = _field(
        "<unk>",
        label="Padding token",
        advanced=True,
        help="Token used to pad batches. Must not be a stop token (<|end|>, <|endoftext|>), or the model learns "
        "to never stop; the Cookbook pads with <unk>.",
    )
    adapter_name_or_path: str | None = _field(
        None,
        label="Continue from adapter",
        advanced=True,
        help="Start from this LoRA adapter instead of a fresh one: a run folder, an adapter folder or a Hub adapter "
        "repo (user/name) trained on this base; its own r, alpha and target modules are used. Continue training "
        "in the Runs tab fills it in (run #<id>).",
    )


@dataclass
class DataConfig:
    """Where the training data comes from and how its rows become chat messages."""

    dataset_name: str = _field(
        "",
        label="Dataset",
        help="Hub dataset ID (user/name) or a local .jsonl/.json/.csv/.parquet file.",
    )
    dataset_config: str | None = _field(None, label="Dataset config", advanced=True, help="Hub dataset config name.")
    dataset_train_split: str = _field("train", label="Train split", help="Split to train on.")
    dataset_test_split: str | None = _field(
        None,
        label="Eval split",
        advanced=True,
        help="Held-out split for evaluation; when empty, eval_fraction of the train rows is held out.",
    )
    eval_fraction: float = _field(
        0.1,
        label="Eval fraction",
        min=0.0,
        max=0.5,
        step=0.01,
        advanced=True,
        help="Share of train rows held out for evaluation when there is no eval split (0 = no evaluation).",
    )
    eval_seed: int | None = _field(
        None, label="Hold-out seed", min=0, advanced=True, help="Seed of the held-out rows (empty: training seed)."
    )
    eval_holdout: Literal["studio", "train_test_split"] = _field(
        "studio",
        label="Hold-out method",
        advanced=True,
        help="How the eval fraction is held out: studio (a seeded sample; both parts keep the input order) or "
        "train_test_split (as datasets' train_test_split: its shuffled order; the Cookbook notebooks' split).",
    )
    format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "preference", "text", "columns"] = (
        _field(
            "auto",
            label="Format",
            advanced=True,
            help="Row format; auto detects messages, ShareGPT, Alpaca, prompt/completion, preference pairs "
            "(SFT on chosen) or text from the columns.",
        )
    )
    alpaca_template: Literal["studio", "cookbook"] = _field(
        "studio",
        label="Alpaca prompt",
        advanced=True,
        help="An Alpaca row's user turn: studio (the instruction, a blank line and the input if any) or cookbook "
        '("{instruction}\\n Input: {input}", even for an empty input, as the Cookbook notebooks build it).',
    )
    column_mapping: dict[str, str] = _field(
        default_factory=dict,
        label="Column mapping",
        advanced=True,
        help="For any other layout: dataset column -> chat role, e.g. question=user,answer=assistant; a column "
        "holding a whole conversation maps to messages (dialog=messages).",
    )
    allow_malformed: bool = _field(
        False,
        label="Train on the usable rows",
        help="When more than 5 % of the rows cannot be read, Start stops and the preview lists why; tick this to "
        "train on the rows that can.",
    )
    placeholders: dict[str, str] = _field(
        default_factory=dict,
        label="Placeholder values",
        advanced=True,
        max_chars=2_000,
        help="Fill template slots in the data, e.g. name=Nova,author=Ana turns {{name}} and {name} into Nova.",
    )
    system_prompt: str = _field(
        "",
        label="System prompt",
        advanced=True,
        max_chars=20_000,
        help="Added as a system message to every row that has none.",
    )
    empty_system_turn: bool = _field(
        False,
        label="Empty system turn",
        advanced=True,
        help="Begin every row that has no system message with an empty one, as the sample_finetune.py of "
        "microsoft/Phi-3-mini-4k-instruct does (the Phi-3 template renders it as <|system|><|end|>).",
    )
    max_rows: int | None = _field(
        None, label="Max rows", min=1, advanced=True, help="Use only the first N rows (empty = all rows)."
    )


@dataclass
class LoraSettings:
    """The LoRA adapter (PEFT LoraConfig)."""

    r: int = _field(
        16, label="LoRA rank r", min=1, max=512, step=1, help="Adapter rank; higher learns more, costs more memory."
    )
    lora_alpha: int = _field(
        32, label="LoRA alpha", min=1, max=1024, step=1, help="Scaling of the adapter update (alpha / r)."
    )
    lora_dropout: float = _field(
        0.05, label="LoRA dropout", min=0.0, max=0.5, step=0.01, advanced=True, help="Dropout on the adapter input."
    )
    target_modules: list[str] = _field(
        default_factory=lambda: list(PHI3_PROJECTIONS),
        label="Target modules",
        advanced=True,
        help="Modules that get adapters. Phi-3 fuses its projections: qkv_proj, o_proj, gate_up_proj, "
        "down_proj; or all-linear.",
    )


@dataclass
class TrainingSettings:
    """The training loop (TRL SFTConfig)."""

    method: Literal["sft", "dpo", "kto", "orpo", "grpo"] = _field(
        "sft",
        label="Method",
        help="sft: supervised fine-tuning on the replies; dpo, orpo: preference pairs (chosen/rejected); kto: replies "
        "labelled desirable or not (or pairs), the preference section holding their settings; grpo: prompts, and "
        "rewards the model's own completions earn (the grpo section).",
    )
    learning_rate: float = _field(2e-4, label="Learning rate", min=1e-7, max=1e-1, help="Peak learning rate (AdamW).")
    num_train_epochs: float = _field(
        1.0, label="Epochs", min=0.01, max=100, step=0.5, help="Passes over the data (ignored when max_steps > 0)."
    )
    max_steps: int = _field(
        -1, label="Max steps", min=-1, step=1, help="Stop after this many optimiser steps (-1 = use epochs)."
    )
    per_device_train_batch_size: int = _field(4, label="Batch size", min=1, max=512, step=1, help="Rows per step.")
    per_device_eval_batch_size: int = _field(
        8, label="Eval batch size", min=1, max=512, step=1, advanced=True, help="Rows per evaluation step."
    )
    gradient_accumulation_steps: int = _field(
        4, label="Gradient accumulation", min=1, max=1024, step=1, help="Steps summed per optimiser update."
    )
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _field(
        "cosine", label="LR schedule", advanced=True, help="How the learning rate changes over training."
    )
    warmup_steps: float = _field(
        0.03,
        label="Warm-up",
        min=0.0,
        advanced=True,
        help="Linear warm-up: a value below 1 is a ratio of total steps, 1 or more is a step count.",
    )
    weight_decay: float = _field(0.0, label="Weight decay", min=0.0, max=1.0, advanced=True, help="AdamW decay.")
    max_grad_norm: float = _field(
        1.0, label="Gradient clip", min=0.0, advanced=True, help="Clip gradients to this norm (0 = off)."
    )
    max_length: int = _field(
        1024, label="Max length", min=16, max=131072, step=16, help="Tokens per row; longer rows are truncated."
    )
    packing: bool = _field(
        False,
        label="Packing",
        advanced=True,
        help="Pack several rows into each max_length sequence (no attention across rows).",
    )
    padding_free: bool = _field(
        True,
        label="Padding-free batches",
        advanced=True,
        help="Flatten each batch into one sequence with per-row positions (no padding, no attention across rows); "
        "same loss, less compute. Rows longer than max_length are cut to it, as padded batches would be.",
    )
    assistant_only_loss: bool = _field(
        True,
        label="Assistant-only loss",
        advanced=True,
        help="Learn only the assistant replies, not the prompts (chat data).",
    )
    gradient_checkpointing: bool = _field(
        True, label="Gradient checkpointing", advanced=True, help="Recompute activations to save memory (slower)."
    )
    seed: int = _field(42, label="Seed", min=0, advanced=True, help="Random seed for data order and init.")
    logging_steps: int = _field(10, label="Log every", min=1, advanced=True, help="Log metrics every N steps.")
    eval_steps: int = _field(50, label="Eval every", min=1, advanced=True, help="Evaluate every N steps.")
    save_steps: int = _field(100, label="Checkpoint every", min=1, advanced=True, help="Checkpoint every N steps.")
    save_total_limit: int = _field(
        2, label="Checkpoints kept", min=1, max=100, advanced=True, help="Keep at most N checkpoints."
    )
    sample_prompts: int = _field(
        3,
        label="Sample prompts",
        min=0,
        max=20,
        advanced=True,
        help="Held-out prompts answered before and after training (saved to samples.json).",
    )
    sample_max_new_tokens: int = _field(
        64, label="Sample length", min=1, max=2048, advanced=True, help="New tokens per sample answer."
    )


@dataclass
class RunConfig:
    """The whole run: one tree, one source of truth."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    preference: PreferenceSettings = field(default_factory=PreferenceSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    hub: HubConfig = field(default_factory=HubConfig)
    run: RunSettings = field(default_factory=RunSettings)

    def display_name(self, preset: str | None = None) -> str:
        """The run's name: the one a person chose, else '<preset or base model>: <dataset>'."""
        if self.run.name.strip():
            return self.run.name.strip()
        dataset = self.data.dataset_name.rstrip("/").replace("\\", "/").split("/")[-1]
        stem, _, suffix = dataset.rpartition(".")
        dataset = stem if suffix.lower() in ("jsonl", "json", "csv", "parquet", "txt") else dataset
        name = f"{preset or self.model.model_name_or_path.rstrip('/').split('/')[-1]}: {dataset or '?'}"
        return name[:RUN_NAME_MAX]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (YAML-ready)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The full config as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def problems(self) -> list[str]:
        """Every problem with this config, each as '<key>: <problem>. <fix>' (empty when valid)."""
        found = [p for spec in iter_fields() if (p := _check_bounds(spec, spec.get(self)))]
        return found + cross_field_problems(self)

    def validate(self) -> RunConfig:
        """Raise ConfigError listing all problems; return self when valid."""
        if found := self.problems():
            raise ConfigError(found)
        return self


class ConfigError(ValueError):
    """One or more config problems, all reported at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid config:\n" + "\n".join(f"  - {p}" for p in self.problems))


# --------------------------------------------------------------------------- field introspection


@dataclass(frozen=True)
class FieldSpec:
    """One leaf setting: its dotted key, type and metadata (what a form or a flag needs)."""

    section: str
    name: str
    type: Any
    default: Any
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def flag(self) -> str:
        """The command-line flag of this setting (`--learning-rate`); a name an earlier section already has takes its
        section's name first (`grpo.beta` is `--grpo-beta`, `preference.beta` is `--beta`)."""
        return "--" + self.unique_name.replace("_", "-")

    @property
    def unique_name(self) -> str:
        """The setting's name, or `<section>_<name>` when an earlier section has a setting of that name (for flags
        and the form's element IDs, which must not collide)."""
        return self.name if _first_key_of(self.name) == self.key else f"{self.section}_{self.name}"

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return typing.get_args(self.type) if typing.get_origin(self.type) is Literal else None

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.type)

    def get(self, cfg: RunConfig) -> Any:
        return getattr(getattr(cfg, self.section), self.name)

    def set(self, cfg: RunConfig, value: Any) -> None:
        setattr(getattr(cfg, self.section), self.name, value)


@functools.cache
def _first_key_of(name: str) -> str:
    """The key of the first setting (in declaration order) with this name."""
    return next(s.key for s in iter_fields() if s.name == name)


def iter_fields() -> list[FieldSpec]:
    """All leaf settings of RunConfig, in declaration order."""
    return list(_all_fields())


@functools.cache
def _all_fields() -> tuple[FieldSpec, ...]:
    """The leaf settings, read from the dataclasses once (RunConfig's fields never change at run time)."""
    specs = []
    for section in dataclasses.fields(RunConfig):
        section_cls = section.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(section_cls)
        for f in dataclasses.fields(section_cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            specs.append(FieldSpec(section.name, f.name, hints[f.name], default, dict(f.metadata)))
    return tuple(specs)


def find_field(key: str) -> FieldSpec:
    """Look a setting up by dotted key ('training.learning_rate'), by its leaf name ('learning_rate') where no other
    section has that name, or by its flag's name ('grpo_beta').

    Raises:
        ConfigError: the key is unknown (with the closest known keys as a hint), or a name two sections share.
    """
    specs = iter_fields()
    found = [s for s in specs if key == s.key] or [s for s in specs if key in (s.name, s.unique_name)]
    if len(found) > 1:
        raise ConfigError([f"{key}: {' and '.join(s.key for s in found)} share this name. Write the one you mean."])
    if found:
        return found[0]
    known = [s.key for s in specs] + [s.name for s in specs]
    close = difflib.get_close_matches(key, known, n=3)
    every = "Run `python -m trainer config show lora --full` to list keys."  # --full: all of them, not the preset's
    fix = f"Did you mean {', '.join(close)}?" if close else every
    raise ConfigError([f"{key}: unknown setting. {fix}"])


# --------------------------------------------------------------------------- validation


def _check_bounds(spec: FieldSpec, value: Any) -> str | None:
    """The problem with one value against its field's choices and bounds, or None."""
    if value is None:
        return None if spec.optional else f"{spec.key}: a value is required. Set {spec.key}."
    if spec.choices is not None and value not in spec.choices:
        return f"{spec.key}: {value!r} is not a choice. Use one of: {', '.join(map(str, spec.choices))}."
    if problem := size_problem(spec.key, value, spec.meta.get("max_chars") or TEXT_LIMIT):
        return problem
    low, high = spec.meta.get("min"), spec.meta.get("max")
    if isinstance(value, float) and not math.isfinite(value):
        return f"{spec.key}: {value} is not a finite number. Use a number such as {spec.default}."
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        return f"{spec.key}: {value} is more than this setting can hold. Use a value <= {INT_LIMIT}."
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            return f"{spec.key}: {value} is below the minimum {low}. Use a value >= {low}."
        if high is not None and value > high:
            return f"{spec.key}: {value} is above the maximum {high}. Use a value <= {high}."
    return None
