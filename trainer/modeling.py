"""Loading Phi-3 for training and generation: tokenizer, base model, quantisation, attention, LoRA config.

The Phi-3 facts it relies on (stop tokens, token ids, the tiny model's name) live in `trainer.phi3`; here they are
applied: the padding token must not be a stop token (the Cookbook pads with `<unk>`), the embedding keeps its 32064
rows (never resized to the tokenizer's 32011), `trust_remote_code` stays off.

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
import os
from typing import TYPE_CHECKING, Any

from trainer.config import ConfigError, LoraSettings, ModelConfig
from trainer.phi3 import TINY_MODEL_NAME, stop_token_ids

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def resolve_model_path(name: str) -> str:
    """The path or Hub ID to load for a configured model name ('tiny-phi3' builds/caches the tiny model)."""
    if name == TINY_MODEL_NAME:
        from trainer.tiny import ensure_tiny_model

        return str(ensure_tiny_model())
    return name


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


def own_device() -> str:
    """This process's device: `cuda:<LOCAL_RANK>` on a GPU (0 when not launched by torchrun/accelerate), else cpu."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda_available() else "cpu"


def pick_dtype(cfg: ModelConfig) -> torch.dtype:
    """The compute dtype: the configured one, or bf16 / fp16 / fp32 by what the machine supports."""
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def pick_attention(requested: str, dtype: torch.dtype, on_gpu: bool) -> str | None:
    """The attention implementation to load: flash_attention_2 where it can run, else transformers' default.

    flash_attention_2 needs the flash-attn package (`is_flash_attn_2_available()`: installed, on a CUDA GPU) and a
    bf16/fp16 model. None lets transformers pick its default, sdpa, falling back to eager where sdpa cannot run
    (also when sdpa was asked for); "eager" is passed as asked.
    """
    import torch
    from transformers.utils import is_flash_attn_2_available

    if requested == "eager":
        return requested
    if requested == "sdpa":
        return None
    if on_gpu and dtype in (torch.bfloat16, torch.float16) and is_flash_attn_2_available():
        return "flash_attention_2"
    if requested == "flash_attention_2":
        logger.warning("flash_attention_2 needs the flash-attn package and a bf16/fp16 GPU; using sdpa")
    return None


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
    if cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:  # CUDA or its CPU backend
        found.append("model.load_in_4bit: QLoRA needs bitsandbytes. Run `pip install bitsandbytes`.")
    if cfg.dtype in ("bfloat16", "float16") and not cuda_available() and cfg.model_name_or_path != TINY_MODEL_NAME:
        logger.info("training %s on a CPU will be very slow", cfg.dtype)
    return found


def load_base_model(
    cfg: ModelConfig, for_training: bool = True, gradient_checkpointing: bool = False
) -> PreTrainedModel:
    """Load the frozen base model: chosen dtype, 4-bit for QLoRA (k-bit prepared), best attention available.

    Args:
        cfg: the model section of the run config.
        for_training: turn the KV cache off (training) or keep it on (generation).
        gradient_checkpointing: for a QLoRA base, let `prepare_model_for_kbit_training` turn checkpointing on
            (`training.gradient_checkpointing`; the Trainer turns it on for LoRA).

    Raises:
        ConfigError: the machine cannot run the config (e.g. QLoRA without bitsandbytes).
    """
    if found := environment_problems(cfg):
        raise ConfigError(found)
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(cfg.model_name_or_path)
    dtype = pick_dtype(cfg)
    quant = bnb_config(cfg)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": own_device()})
    elif cuda_available():
        kwargs["device_map"] = {"": own_device()}
    attention = pick_attention(cfg.attn_implementation, dtype, cuda_available())
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, **kwargs)
    logger.info("loaded %s (%s, attention %s, 4-bit %s)", path, dtype, model.config._attn_implementation, bool(quant))
    model.config.use_cache = not for_training
    if quant is not None and for_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        keep_4bit_weights_trainable(model)
    return model


def keep_4bit_weights_trainable(model: torch.nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference in a model that will train.

    On a CPU with AVX512-BF16, a bnb `Linear4bit` that runs in eval mode without gradients (the evaluation before
    training) repacks its weight for the inference kernel, and every later pass goes through `gemv_4bit`, which has
    no backward: the LoRA gradients come out wrong without an error (layer 0's off by 91 % in our measurement).
    Turning the repacking off on every 4-bit layer keeps training and evaluation on the differentiable path, on any
    CPU; on a GPU the flag is not read.

    Returns:
        How many 4-bit layers were set.
    """
    layers = [m for m in model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


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


PHI3_FAMILY = ("phi3",)
"""`model_type` of the bases this studio trains: Phi-3, Phi-3.5-mini and Phi-4-mini all say "phi3"."""


def model_problems(model: ModelConfig, lora: LoraSettings, token: str | None = None) -> list[str]:
    """What is wrong with the base model and the LoRA targets, read from the model's config (no weights loaded).

    The base must be a Phi-3-family causal LM; every target module must be one of its linear layers (or all-linear).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    name = model.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(name), token=token, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - missing, private, offline, not a model: one message with the cause
        detail = " ".join(str(exc).split())[:200]
        return [f"model.model_name_or_path: cannot read the config of {name!r} ({detail}). Check the ID or the path."]
    if getattr(config, "model_type", None) not in PHI3_FAMILY:
        return [
            f"model.model_name_or_path: {name!r} is a {config.model_type!r} model; this studio trains Phi-3-family "
            "causal LMs (Phi-3, Phi-3.5-mini, Phi-4-mini). Use e.g. microsoft/Phi-3-mini-4k-instruct."
        ]
    if lora.target_modules == ["all-linear"]:
        return []
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear)})
    unknown = [t for t in lora.target_modules if t not in linear]
    if unknown:
        return [
            f"lora.target_modules: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a linear layer of "
            f"{name}. Use some of {', '.join(linear)}, or all-linear."
        ]
    return []
