"""The methods' own settings, under TRL's names: the `preference` section (DPO, KTO, ORPO) and the `grpo` section
of RunConfig.

`training.method` picks the method; these settings are read only by the method that has them (TRL's `DPOConfig`,
`KTOConfig`, `trl.experimental.orpo.ORPOConfig` and `GRPOConfig`), and a supervised run ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainer.config.fields import setting

METHODS: tuple[str, ...] = ("sft", "dpo", "kto", "orpo", "grpo")
"""Training methods: supervised fine-tuning, the preference methods, and GRPO (rewards), each TRL's with LoRA."""

TRL_CLASSES: dict[str, tuple[str, str]] = {
    "sft": ("trl", "SFT"),
    "dpo": ("trl", "DPO"),
    "kto": ("trl", "KTO"),
    "orpo": ("trl.experimental.orpo", "ORPO"),
    "grpo": ("trl", "GRPO"),
}
"""Where TRL keeps each method's classes (`<prefix>Config`, `<prefix>Trainer`): ORPO is in trl.experimental in 1.x."""

PAIRED_METHODS: tuple[str, ...] = ("dpo", "orpo")
"""Methods that need a chosen and a rejected reply for every prompt."""

PREFERENCE_METHODS: tuple[str, ...] = ("dpo", "kto", "orpo")
"""Methods that train on preferences (pairs, or labelled replies): the `preference` section's."""

DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")


@dataclass
class PreferenceSettings:
    """DPO, KTO and ORPO settings (named as in TRL's configs)."""

    beta: float = setting(
        0.1,
        label="Beta",
        min=0.0,
        max=10.0,
        help="How far the tuned model may move from the reference (DPO, KTO) or the weight of the preference term "
        "(ORPO's lambda). Lower lets it move further.",
    )
    loss_type: Literal[DPO_LOSSES] = setting(  # type: ignore[valid-type]
        "sigmoid",
        label="DPO loss",
        advanced=True,
        help="DPO's loss: sigmoid (the DPO paper), ipo, hinge, robust (noisy labels), bco_pair, sppo_hard, nca_pair, "
        "apo_zero, apo_down.",
    )
    desirable_weight: float = setting(
        1.0, label="Desirable weight", min=0.0, max=100.0, advanced=True, help="KTO: weight of the desirable replies."
    )
    undesirable_weight: float = setting(
        1.0,
        label="Undesirable weight",
        min=0.0,
        max=100.0,
        advanced=True,
        help="KTO: weight of the undesirable replies (raise it when they are fewer than the desirable ones).",
    )


GRPO_LOSSES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class GRPOSettings:
    """GRPO's settings: TRL's `GRPOConfig` fields under their names, then the rewards (the studio's built-in menu,
    `trainer.rewards`) and the columns they read."""

    num_generations: int = setting(
        8,
        label="Completions per prompt",
        min=2,
        max=64,
        step=1,
        help="Completions sampled for each prompt (the group GRPO compares). The batch size x gradient accumulation "
        "(x GPUs) must be a multiple of it.",
    )
    max_completion_length: int = setting(
        256,
        label="Completion length",
        min=8,
        max=32768,
        step=8,
        help="New tokens per completion at most (TRL's default is 512). Generation is most of a GRPO step's time.",
    )
    temperature: float = setting(
        1.0,
        label="Temperature",
        min=0.05,
        max=2.0,
        step=0.05,
        help="Sampling temperature of the completions: higher gives the group more variety to learn from.",
    )
    beta: float = setting(
        0.0,
        label="KL weight (beta)",
        min=0.0,
        max=1.0,
        advanced=True,
        help="Weight of the KL penalty to the starting model; 0 (TRL's default) skips the reference pass. "
        "DeepSeek-R1 used 0.001.",
    )
    loss_type: Literal[GRPO_LOSSES] = setting(  # type: ignore[valid-type]
        "dapo",
        label="GRPO loss",
        advanced=True,
        help="How token losses are aggregated: dapo (TRL's default: over all tokens of the batch), grpo (per "
        "sequence; biased to short answers), dr_grpo, bnpo, cispo, sapo, luspo, vespo.",
    )
    num_iterations: int = setting(
        1,
        label="Iterations per batch",
        min=1,
        max=16,
        step=1,
        advanced=True,
        help="Optimiser passes over each batch of completions (GRPO's mu); above 1 the clipping takes effect.",
    )
    epsilon: float = setting(
        0.2, label="Clip range", min=0.0, max=1.0, advanced=True, help="Clipping of the policy ratio (epsilon)."
    )
    generation_batch_size: int | None = setting(
        None,
        label="Generation batch",
        min=2,
        max=4096,
        advanced=True,
        help="Completions generated at once (a multiple of the completions per prompt); empty: batch size x "
        "gradient accumulation (x GPUs), TRL's default.",
    )
    rewards: str = setting(
        "answer_match:1.0, think_format:0.5",
        label="Rewards",
        help="Built-in rewards and their weights, e.g. answer_match:1.0, think_format:0.5. answer_match (the final "
        "answer equals the answer column's), format_regex (the format pattern), think_format (<think>...</think> "
        "then the answer), valid_json, tool_call (a call of a tool in the tools column), length_target (the "
        "target words), words (the required / forbidden words).",
    )
    prompt_column: str = setting(
        "prompt",
        label="Prompt column",
        help="The column holding the prompt (text, or chat messages); GSM8K's is question. A 'messages' column "
        "works too: its turns before the last reply.",
    )
    answer_column: str = setting(
        "answer", label="Answer column", help="The column answer_match compares with (GSM8K's answer: '... #### 72')."
    )
    tools_column: str = setting(
        "tools", label="Tools column", advanced=True, help="The column with each row's tools (JSON), for tool_call."
    )
    format_pattern: str = setting(
        "",
        label="Format pattern",
        advanced=True,
        help="format_regex: a Python regular expression the whole completion must match, e.g. (?s).*Answer: \\d+",
    )
    length_target: int = setting(
        100, label="Target words", min=1, max=100_000, advanced=True, help="length_target: the words to aim at."
    )
    required_words: list[str] = setting(
        default_factory=list, label="Required words", advanced=True, help="words: words the completion should use."
    )
    forbidden_words: list[str] = setting(
        default_factory=list, label="Forbidden words", advanced=True, help="words: words that cost a whole point."
    )
    reward_module: str = setting(
        "",
        label="Reward module",
        advanced=True,
        help="Local runs only (never on a Space): a Python file whose functions named reward_* are added to the "
        "rewards (called as TRL calls them: prompts=, completions=, and the dataset's columns).",
    )
