"""The preference methods' own settings (DPO, KTO, ORPO), under TRL's names: the `preference` section of RunConfig.

`training.method` picks the method; these settings are read only by the method that has them (TRL's `DPOConfig`,
`KTOConfig` and `trl.experimental.orpo.ORPOConfig`), and a supervised run ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainer.config.fields import setting

METHODS: tuple[str, ...] = ("sft", "dpo", "kto", "orpo")
"""Training methods: supervised fine-tuning, and the preference methods TRL trains with a LoRA adapter."""

TRL_CLASSES: dict[str, tuple[str, str]] = {
    "sft": ("trl", "SFT"),
    "dpo": ("trl", "DPO"),
    "kto": ("trl", "KTO"),
    "orpo": ("trl.experimental.orpo", "ORPO"),
}
"""Where TRL keeps each method's classes (`<prefix>Config`, `<prefix>Trainer`): ORPO is in trl.experimental in 1.x."""

PAIRED_METHODS: tuple[str, ...] = ("dpo", "orpo")
"""Methods that need a chosen and a rejected reply for every prompt."""

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
