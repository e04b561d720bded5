"""Loading Phi-3 for training and generation: tokenizer, base model, quantisation, attention, LoRA config.

The Phi-3 details that bite live here as named constants and small functions: generation must stop at `<|end|>`
as well as `<|endoftext|>`, the padding token must not be a stop token (the Cookbook pads with `<unk>`), the
embedding keeps its 32064 rows (never resized to the tokenizer's 32011), and `trust_remote_code` stays off.

Example:
    >>> from trainer.config import preset_config
    >>> from trainer.modeling import load_tokenizer, load_base_model
    >>> cfg = preset_config("tiny-demo")
    >>> tok = load_tokenizer(cfg.model)
    >>> model = load_base_model(cfg.model)
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

from trainer.config import PACKAGE_DIR, STOP_TOKENS, ConfigError, LoraSettings, ModelConfig

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TOKENIZER_DIR = PACKAGE_DIR / "assets" / "phi3-tokenizer"
TINY_MODEL_NAME = "tiny-phi3"  # resolved to the locally built tiny model (see trainer.tiny)

UNK_ID = 0
ENDOFTEXT_ID = 32000
ASSISTANT_ID = 32001
SYSTEM_ID = 32006
END_ID = 32007
USER_ID = 32010
EMBEDDING_ROWS = 32064  # Phi-3's embedding/lm_head rows; the tokenizer has 32011 tokens. Never resize.

ATTENTION_ORDER = ("flash_attention_2", "sdpa", "eager")


def resolve_model_path(name: str) -> str:
    """The path or Hub ID to load for a configured model name ('tiny-phi3' builds/caches the tiny model)."""
    if name == TINY_MODEL_NAME:
        from trainer.tiny import ensure_tiny_model

        return str(ensure_tiny_model())
    return name


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids generation must stop at: `<|end|>` (end of turn) and `<|endoftext|>`, those the tokenizer has."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in STOP_TOKENS if t in vocab]


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """Load the model's tokenizer with a padding token that is not a stop token.

    Raises:
        ConfigError: the configured pad token is missing from the vocabulary or is a stop token.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.model_name_or_path), trust_remote_code=False)
    if cfg.pad_token not in tokenizer.get_vocab():
        raise ConfigError([f"model.pad_token: {cfg.pad_token!r} is not in the tokenizer's vocabulary. Use <unk>."])
    tokenizer.pad_token = cfg.pad_token
    if tokenizer.pad_token_id in stop_token_ids(tokenizer):
        raise ConfigError([f"model.pad_token: {cfg.pad_token} is a stop token. Use <unk>."])
    return tokenizer


def cuda_available() -> bool:
    """True when a CUDA GPU can be used."""
    import torch

    return torch.cuda.is_available()


def pick_dtype(cfg: ModelConfig) -> torch.dtype:
    """The compute dtype: the configured one, or bf16 / fp16 / fp32 by what the machine supports."""
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def attention_candidates(requested: str, dtype: torch.dtype, on_gpu: bool) -> list[str]:
    """Attention implementations to try, best first: flash_attention_2 -> sdpa -> eager."""
    import torch

    start = 0 if requested == "auto" else ATTENTION_ORDER.index(requested)
    candidates = list(ATTENTION_ORDER[start:])
    flash_ok = on_gpu and dtype in (torch.bfloat16, torch.float16) and importlib.util.find_spec("flash_attn")
    if "flash_attention_2" in candidates and not flash_ok:
        if requested == "flash_attention_2":
            logger.warning("flash_attention_2 needs the flash-attn package and a bf16/fp16 GPU; falling back to sdpa")
        candidates.remove("flash_attention_2")
    return candidates


def bnb_config(cfg: ModelConfig) -> BitsAndBytesConfig | None:
    """The bitsandbytes 4-bit config for QLoRA (NF4, double quantisation, bf16 compute), or None for LoRA."""
    if not cfg.load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute = pick_dtype(cfg)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=cfg.use_bnb_nested_quant,
        bnb_4bit_compute_dtype=compute if compute != torch.float32 else torch.bfloat16,
    )


def environment_problems(cfg: ModelConfig) -> list[str]:
    """What this machine lacks for the config (checked before any download or GPU time), as user messages."""
    found = []
    if cfg.load_in_4bit:
        if not cuda_available():
            found.append(
                "model.load_in_4bit: QLoRA needs a CUDA GPU and none was found. Use LoRA (load_in_4bit=false) "
                "or run on a GPU machine."
            )
        elif importlib.util.find_spec("bitsandbytes") is None:
            found.append("model.load_in_4bit: QLoRA needs bitsandbytes. Run `pip install bitsandbytes`.")
    if cfg.dtype in ("bfloat16", "float16") and not cuda_available() and cfg.model_name_or_path != TINY_MODEL_NAME:
        logger.info("training %s on a CPU will be very slow", cfg.dtype)
    return found


def load_base_model(cfg: ModelConfig, for_training: bool = True) -> PreTrainedModel:
    """Load the frozen base model: chosen dtype, 4-bit for QLoRA (k-bit prepared), best attention available.

    Args:
        cfg: the model section of the run config.
        for_training: turn the KV cache off (training) or keep it on (generation).

    Raises:
        ConfigError: the machine cannot run the config (e.g. QLoRA without a GPU).
    """
    if found := environment_problems(cfg):
        raise ConfigError(found)
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(cfg.model_name_or_path)
    dtype = pick_dtype(cfg)
    quant = bnb_config(cfg)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": 0})
    elif cuda_available():
        kwargs["device_map"] = {"": 0}
    model = None
    errors = []
    for attn in attention_candidates(cfg.attn_implementation, dtype, cuda_available()):
        try:
            model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn, **kwargs)
            break
        except (ValueError, ImportError) as exc:
            if "attn" not in str(exc).lower() and "attention" not in str(exc).lower():
                raise
            errors.append(f"{attn}: {exc}")
            logger.warning("attention %s unavailable (%s); trying the next one", attn, exc)
    if model is None:
        raise ValueError("model.attn_implementation: no attention implementation loaded: " + "; ".join(errors))
    logger.info("loaded %s (%s, attention %s, 4-bit %s)", path, dtype, model.config._attn_implementation, bool(quant))
    model.config.use_cache = not for_training
    if quant is not None and for_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return model


def configure_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make `generate()` stop at `<|end|>` and `<|endoftext|>` and pad with the (non-stop) pad token."""
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def lora_config(cfg: LoraSettings) -> LoraConfig:
    """The PEFT LoraConfig for Phi-3's fused projections (or all-linear)."""
    from peft import LoraConfig

    targets: str | list[str] = "all-linear" if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
