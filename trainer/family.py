"""The Phi-3 family and its successors, all `model_type: phi3` in transformers: one table of what differs.

Each member's architecture is its `config.json` (the keys that shape the model: sizes, grouped-query attention, head
size, partial rotary factor, positions, tied embeddings); with it the estimate, the LoRA targets and the parameter
counts need no download. The figures were read from the model repos' config.json as quoted by the sources named
beside each entry (2026-12-08; no Hub access here): `tests/unit/test_family.py` builds every member on the meta device
and checks the counts. What the table does not hold (a tokenizer's special tokens, its chat template) is read from
the model's own tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.phi3 import PHI3_MINI_CONFIG

LONGROPE_128K = {"max_position_embeddings": 131072, "original_max_position_embeddings": 4096}
"""Phi-3-mini-128k and Phi-3.5-mini: LongRoPE (long and short factors) over 128k positions, the 4k model's shape."""

PHI3_MEDIUM_CONFIG: dict[str, Any] = {
    **PHI3_MINI_CONFIG,
    "hidden_size": 5120,
    "intermediate_size": 17920,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 10,
    "sliding_window": 2047,
}
"""microsoft/Phi-3-medium-4k-instruct: 14 B, grouped-query attention (40 heads, 10 key/value heads), Phi-3's
tokenizer (32,064 rows). Source: its config.json on the Hub (figures also in apxml.com/models/phi-3-medium)."""

PHI4_MINI_CONFIG: dict[str, Any] = {
    "vocab_size": 200064,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "original_max_position_embeddings": 4096,
    "partial_rotary_factor": 0.75,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "bos_token_id": 199999,
    "eos_token_id": 199999,
    "pad_token_id": 199999,
}
"""microsoft/Phi-4-mini-instruct: 3.8 B, 24 heads of 128 with 8 key/value heads, rotary on 0.75 of each head (96
dimensions), LongRoPE, a 200,064-row vocabulary tied to the LM head. Source: its config.json as quoted in public
test fixtures of two projects (one says "verified against the HF repo")."""

PHI4_CONFIG: dict[str, Any] = {
    "vocab_size": 100352,
    "hidden_size": 5120,
    "intermediate_size": 17920,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 10,
    "hidden_act": "silu",
    "max_position_embeddings": 16384,
    "original_max_position_embeddings": 16384,
    "rope_theta": 250000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 100257,
    "eos_token_id": 100257,
    "pad_token_id": 100257,
}
"""microsoft/phi-4: 14 B, grouped-query attention (40/10), a GPT-2-style vocabulary of 100,352 rows, 16k positions.
Source: its config.json as quoted in a public write-up (`_name_or_path: microsoft/phi-4`, transformers 4.47.0)."""


@dataclass(frozen=True)
class FamilyMember:
    """What a member of the family is: its config (architecture), its tokenizer kind, and how it is best tuned."""

    model_id: str
    config: dict[str, Any]
    tokenizer: str  # "phi3" (Phi-3's SentencePiece vocabulary), "phi4-mini" (o200k-like), "phi4" (GPT-2-like)
    method: str  # the preset's method on an A10G-large (24 GB): "lora" (16-bit base) or "qlora" (4-bit base)
    hardware: str  # the Space hardware its preset is sized for


FAMILY: dict[str, FamilyMember] = {
    member.model_id: member
    for member in (
        FamilyMember("microsoft/Phi-3-mini-4k-instruct", PHI3_MINI_CONFIG, "phi3", "lora", "a10g-large"),
        FamilyMember(
            "microsoft/Phi-3-mini-128k-instruct", {**PHI3_MINI_CONFIG, **LONGROPE_128K}, "phi3", "lora", "a10g-large"
        ),
        FamilyMember(
            "microsoft/Phi-3.5-mini-instruct", {**PHI3_MINI_CONFIG, **LONGROPE_128K}, "phi3", "lora", "a10g-large"
        ),
        FamilyMember("microsoft/Phi-3-medium-4k-instruct", PHI3_MEDIUM_CONFIG, "phi3", "qlora", "a10g-large"),
        FamilyMember(
            "microsoft/Phi-3-medium-128k-instruct",
            {**PHI3_MEDIUM_CONFIG, **LONGROPE_128K},
            "phi3",
            "qlora",
            "a10g-large",
        ),
        FamilyMember("microsoft/Phi-4-mini-instruct", PHI4_MINI_CONFIG, "phi4-mini", "lora", "a10g-large"),
        FamilyMember("microsoft/phi-4", PHI4_CONFIG, "phi4", "qlora", "a10g-large"),
    )
}
"""The known members by Hub ID (a `phi3` model not here is read from its own config.json)."""


def family_member(model_id: str) -> FamilyMember | None:
    """The table's entry for a base model, None for any other (a local folder, an unknown `phi3` repo)."""
    return FAMILY.get(model_id)
