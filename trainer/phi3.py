"""The Phi-3 details that bite, named once: special tokens, stop ids, fused projections, the architecture.

- Chat format: ``<|user|>\\n...<|end|>\\n<|assistant|>\\n...<|end|>\\n``. Generation must stop at ``<|end|>`` (32007)
  as well as ``<|endoftext|>`` (32000), or replies never end.
- The padding token must not be a token the model learns to stop on; the Cookbook pads with ``<unk>``.
- The embedding has 32064 rows, the tokenizer 32011 tokens: never resize.
- Phi-3 fuses its projections: ``qkv_proj``, ``o_proj``, ``gate_up_proj``, ``down_proj``.
- `trust_remote_code` is never needed (Phi-3 is native in transformers).

Imports nothing heavy and nothing from `trainer` but `trainer.paths`, so every module may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BASE_MODEL = "microsoft/Phi-3-mini-4k-instruct"
TINY_MODEL_NAME = "tiny-phi3"
"""The configured name of the offline tiny Phi-3 (built and cached locally by trainer.tools.tiny)."""
BUNDLED_TOKENIZER_MODELS = (DEFAULT_BASE_MODEL, "microsoft/Phi-3-mini-128k-instruct", TINY_MODEL_NAME)
"""Models whose tokenizer is exactly the one shipped in trainer/assets/phi3-tokenizer (no download needed)."""

PHI3_PROJECTIONS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]

# Chat markup, as the tokenizer's chat template writes it.
BOS = "<s>"
END = "<|end|>"
ENDOFTEXT = "<|endoftext|>"
ROLE_TAGS = ("<|system|>", "<|user|>", "<|assistant|>")
STOP_TOKENS = (END, ENDOFTEXT)

UNK_ID = 0
ENDOFTEXT_ID = 32000
ASSISTANT_ID = 32001
SYSTEM_ID = 32006
END_ID = 32007
USER_ID = 32010
EMBEDDING_ROWS = 32064  # Phi-3's embedding/lm_head rows; the tokenizer has 32011 tokens. Never resize.

PHI3_MINI_CONFIG: dict[str, Any] = {
    "vocab_size": EMBEDDING_ROWS,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": ENDOFTEXT_ID,
    "pad_token_id": ENDOFTEXT_ID,
    "sliding_window": 2047,
}
"""microsoft/Phi-3-mini-4k-instruct's config.json (the architecture; `Phi3Config(**PHI3_MINI_CONFIG)`)."""

TINY_CONFIG: dict[str, Any] = {
    **PHI3_MINI_CONFIG,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "initializer_range": 0.02,
    "attention_dropout": 0.0,
}
"""Phi-3-mini at toy width: the same vocabulary, activation, positions and special ids (the offline tiny model)."""


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids generation must stop at: `<|end|>` (end of turn) and `<|endoftext|>`, those the tokenizer has."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in STOP_TOKENS if t in vocab]


def configure_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make `generate()` stop at `<|end|>` and `<|endoftext|>` and pad with the (non-stop) pad token."""
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
