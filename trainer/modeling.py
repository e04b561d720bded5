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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import distributed as dist
from trainer.config import ConfigError, LoraSettings, ModelConfig, hint
from trainer.phi3 import TINY_MODEL_NAME, stop_token_ids

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def resolve_model_path(name: str) -> str:
    """The path or Hub ID to load for a configured model name ('tiny-phi3' builds/caches the tiny model)."""
    if name == TINY_MODEL_NAME:
        from trainer.tools.tiny import ensure_tiny_model

        return str(ensure_tiny_model())
    return name


def read_model_config(name: str, token: str | bool | None = None):
    """The model's config, read without loading weights; the tiny model's comes from its recipe, never built here
    (building it takes a minute: that happens in the run's worker, as its first phase)."""
    from transformers import AutoConfig, Phi3Config

    if name == TINY_MODEL_NAME:
        from trainer.phi3 import TINY_CONFIG

        return Phi3Config(**TINY_CONFIG)
    return AutoConfig.from_pretrained(name, token=token, trust_remote_code=False)


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
    if cfg.load_in_4bit and dist.fsdp_launch():
        found.append(
            "model.load_in_4bit: QLoRA does not train under the FSDP config (its packed 4-bit weights are not "
            "sharded here). Launch with torchrun instead (each GPU holds the whole 4-bit model), or "
            f"{hint('model.load_in_4bit', False)} to train LoRA sharded over the GPUs."
        )
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
        gradient_checkpointing: for a QLoRA base, turn checkpointing on now (`training.gradient_checkpointing`; the
            Trainer turns it on for LoRA).

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
    elif cuda_available() and not dist.fsdp_launch():  # under FSDP accelerate puts each process's shard on its GPU
        kwargs["device_map"] = {"": own_device()}
    attention = pick_attention(cfg.attn_implementation, dtype, cuda_available())
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, **kwargs)
    logger.info("loaded %s (%s, attention %s, 4-bit %s)", path, dtype, model.config._attn_implementation, bool(quant))
    model.config.use_cache = not for_training
    if quant is not None and for_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)  # PEFT would use the old name
        set_checkpointing(model, gradient_checkpointing)
        keep_4bit_weights_trainable(model)
    return model


NON_REENTRANT = {"use_reentrant": False}
"""Checkpointing that needs no inputs requiring gradients (the frozen base's embeddings have none)."""


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Turn activation (gradient) checkpointing on, non-reentrant, or off, by the name this transformers has.

    transformers 5.25 renamed `gradient_checkpointing_enable/disable` to `activation_checkpointing_*` (the old names
    warn, and go in v6); older releases, such as the GPU machine's 5.17, only have the old ones.
    """
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=NON_REENTRANT)
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=NON_REENTRANT)
    else:
        model.gradient_checkpointing_disable()


def checkpointing_on(model: torch.nn.Module) -> bool:
    """Whether the model checkpoints activations (read by the name this transformers has; see `set_checkpointing`)."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


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


def model_problems(model: ModelConfig, lora: LoraSettings, token: str | bool | None = None) -> list[str]:
    """What is wrong with the base model and the LoRA targets, read from the model's config (no weights loaded).

    The base must be a Phi-3-family causal LM; every target module must be one of its linear layers (or all-linear).
    """
    import torch
    from transformers import AutoModelForCausalLM

    name = model.model_name_or_path
    try:
        config = read_model_config(name, token)
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


# --------------------------------------------------------------------------- continuing from an adapter

ADAPTER_KEY = "model.adapter_name_or_path"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class AdapterSource:
    """Where a run continues from (`model.adapter_name_or_path`, resolved; nothing loaded).

    Attributes:
        load_from: what `PeftModel.from_pretrained` loads: an adapter folder (a run folder's `adapter/`) or a Hub repo.
        base: the base model it was trained on (a run folder's config.yaml, else adapter_config.json).
        run_dir: the run folder it came from, if it came from one.
    """

    load_from: str
    base: str
    run_dir: Path | None = None


def adapter_source(name: str, token: str | bool | None = None) -> AdapterSource:
    """Resolve `model.adapter_name_or_path` by reading configs only: a run folder, an adapter folder or a Hub repo.

    Raises:
        ConfigError: missing, unfinished (no adapter saved yet), unreadable, or not a LoRA adapter; one problem.
    """
    import json

    import yaml

    from trainer.config import REPO_ID_RE
    from trainer.runs.folder import ADAPTER_DIR, CONFIG_FILE

    path = Path(name).expanduser()
    if path.name == ADAPTER_DIR and (path.parent / CONFIG_FILE).is_file():  # a run's adapter/: that run
        path = path.parent
    fix = "Give a finished run folder, an adapter folder or a Hub adapter repo (user/name)."

    def local(folder: Path, base: str | None = None, run_dir: Path | None = None) -> AdapterSource:
        try:
            found = json.loads((folder / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
            if not isinstance(found, dict):
                raise ValueError("not a JSON object")
            base = base or str(found.get("base_model_name_or_path") or "")
        except (OSError, ValueError) as exc:
            raise ConfigError([f"{ADAPTER_KEY}: cannot read {name}/{ADAPTER_FILES[0]} ({exc}). {fix}"]) from None
        return _lora_only(name, AdapterSource(str(folder), base, run_dir), found)

    if (path / CONFIG_FILE).is_file():  # a run folder: its adapter/, and the base its config.yaml names
        if missing := [f for f in ADAPTER_FILES if not (path / ADAPTER_DIR / f).is_file()]:
            raise ConfigError(
                [
                    f"{ADAPTER_KEY}: the run {name} has no saved adapter ({', '.join(missing)} missing): it has not "
                    "finished training. Continue from a finished run."
                ]
            )
        try:
            model = (yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}).get("model") or {}
        except (OSError, yaml.YAMLError, AttributeError):  # no readable config: the adapter's own base counts
            model = {}
        return local(path / ADAPTER_DIR, str(model.get("model_name_or_path") or ""), path)
    if path.is_dir():
        if not (path / ADAPTER_FILES[0]).is_file():
            raise ConfigError([f"{ADAPTER_KEY}: {name} has no {ADAPTER_FILES[0]}, so it is not an adapter. {fix}"])
        return local(path)
    if not REPO_ID_RE.match(name) or name.startswith((".", "/", "~")):
        raise ConfigError([f"{ADAPTER_KEY}: {name} is not a folder here, nor a Hub repo ID. {fix}"])
    from peft import PeftConfig

    from trainer.online import hub_unreachable

    try:
        if problem := hub_unreachable():
            raise OSError(problem)
        found = PeftConfig.from_pretrained(name, token=token).to_dict()
    except Exception as exc:  # noqa: BLE001 - missing, private, offline, not an adapter: one message with the cause
        detail = " ".join(str(exc).split())[:200]
        raise ConfigError([f"{ADAPTER_KEY}: cannot read the adapter {name} ({detail}). {fix}"]) from None
    return _lora_only(name, AdapterSource(name, str(found.get("base_model_name_or_path") or "")), found)


def _lora_only(name: str, source: AdapterSource, adapter_config: dict[str, Any]) -> AdapterSource:
    kind = adapter_config.get("peft_type") or "LORA"
    kind = str(getattr(kind, "value", kind)).upper()  # PEFT's PeftType enum (a Hub adapter's config) or a string
    if kind != "LORA":
        raise ConfigError([f"{ADAPTER_KEY}: {name} is a {kind} adapter; only LoRA adapters can be continued here."])
    return source


def same_base(a: str, b: str) -> bool:
    """True when two model names mean the same base: equal names, or the same folder (tiny-phi3: its cache folder)."""

    def where(name: str) -> str:
        name = name.strip().rstrip("/")
        if name == TINY_MODEL_NAME:  # the adapter of a tiny run names the cached folder it was trained on
            from trainer.tools.tiny import tiny_model_dir

            name = str(tiny_model_dir())
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else name

    return where(a) == where(b)


def adapter_problems(cfg: ModelConfig, token: str | bool | None = None) -> list[str]:
    """What stops a run from continuing from `cfg.adapter_name_or_path`, before any weights load (configs only).

    The adapter must exist, be a finished LoRA adapter, and have been trained on the chosen base model (a mismatch
    names both). Empty when the run starts a fresh adapter.
    """
    if not cfg.adapter_name_or_path:
        return []
    try:
        source = adapter_source(cfg.adapter_name_or_path, token)
    except ConfigError as exc:
        return exc.problems
    if not source.base:
        return [f"{ADAPTER_KEY}: {cfg.adapter_name_or_path} does not name the base model it was trained on."]
    if not same_base(source.base, cfg.model_name_or_path):
        return [
            f"{ADAPTER_KEY}: {cfg.adapter_name_or_path} was trained on {source.base}, but this run's base model is "
            f"{cfg.model_name_or_path}. Train on its base ({hint('model.model_name_or_path', source.base)}), or "
            f"continue from an adapter of {cfg.model_name_or_path}."
        ]
    return []


def adapter_lora_settings(source: AdapterSource, token: str | bool | None = None) -> LoraSettings:
    """The adapter's own LoRA settings (r, alpha, dropout, targets), read from its adapter_config.json."""
    from peft import PeftConfig

    found = PeftConfig.from_pretrained(source.load_from, token=token)
    targets = found.target_modules
    targets = [targets] if isinstance(targets, str) else sorted(targets or [])
    return LoraSettings(
        r=found.r, lora_alpha=found.lora_alpha, lora_dropout=found.lora_dropout, target_modules=targets
    )


def load_adapter_for_training(model: PreTrainedModel, source: AdapterSource, token: str | bool | None = None) -> Any:
    """The base (already k-bit prepared for QLoRA) with the adapter loaded TRAINABLE, as a PeftModel.

    `PeftModel.from_pretrained` defaults to is_trainable=False, which would train 0 parameters without a word.

    Raises:
        RuntimeError: nothing in the loaded adapter is trainable.
    """
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, source.load_from, is_trainable=True, token=token)
    if not any(p.requires_grad for p in model.parameters()):
        raise RuntimeError(f"the adapter {source.load_from} loaded with no trainable parameter")
    return model
