"""A tiny Phi-3 for the offline demo and the tests: the real architecture and tokenizer at toy width.

`Phi3ForCausalLM` with hidden 128, 2 layers, 4 heads and the full 32064-row embedding, plus the REAL Phi-3
tokenizer (vocabulary, special tokens, chat template) from `trainer/assets/phi3-tokenizer/`. It is saved as an
ordinary local model folder, so `from_pretrained`, PEFT and TRL treat it exactly like microsoft/Phi-3-mini.

A freshly random model has near-uniform logits, which makes a fine-tuning demo unconvincing (the loss barely moves
and the base answers gibberish). So the build gives the random model a short, seeded, full-parameter warm-up on
plain generic chat (`trainer/assets/warmup_chat.jsonl`): afterwards the base answers questions plainly, and LoRA
fine-tuning on the pirate persona produces a visible, measurable change. The warm-up is a dozen lines of plain
PyTorch on purpose: it builds a toy base model, it is not the fine-tuning path (that is TRL, in trainer.training).

The built model is cached under `$PHI3_STUDIO_CACHE` (default `~/.cache/phi3-studio`) in a folder named by a hash
of everything that determines it, so it is built once per machine (about a minute on 2 CPU cores).

Example:
    >>> from trainer.tiny import ensure_tiny_model
    >>> path = ensure_tiny_model()   # builds on first use, then returns the cached folder
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from trainer.paths import TOKENIZER_DIR, WARMUP_DATA
from trainer.phi3 import TINY_CONFIG, configure_generation

logger = logging.getLogger(__name__)

CACHE_ENV = "PHI3_STUDIO_CACHE"

# The warm-up that turns random weights into a plain chat model (seeded, full parameters, full-sequence loss).
WARMUP = {"seed": 0, "steps": 240, "batch_size": 16, "learning_rate": 3e-3, "max_length": 64}


def cache_root() -> Path:
    """Where built tiny models are cached."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "phi3-studio")


def recipe_hash() -> str:
    """A short hash of everything that determines the tiny model (config, warm-up, corpus, tokenizer)."""
    h = hashlib.sha256(json.dumps([TINY_CONFIG, WARMUP], sort_keys=True).encode())
    h.update(WARMUP_DATA.read_bytes())
    for name in sorted(p.name for p in TOKENIZER_DIR.glob("*.json")):
        h.update((TOKENIZER_DIR / name).read_bytes())
    return h.hexdigest()[:12]


def ensure_tiny_model() -> Path:
    """The folder of the tiny model, built and cached on first use (safe if several processes race)."""
    target = cache_root() / f"tiny-phi3-{recipe_hash()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
    try:
        build_tiny_model(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first; keep theirs
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_model(out_dir: Path, warmup: bool = True) -> Path:
    """Build the tiny Phi-3 (seeded random init, then the plain-chat warm-up) and save it with the real tokenizer.

    Args:
        out_dir: folder to write (config, safetensors weights, generation config, tokenizer files).
        warmup: run the plain-chat warm-up (False gives the raw random model).

    Returns:
        out_dir.
    """
    import torch
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    out_dir = Path(out_dir)
    torch.manual_seed(WARMUP["seed"])
    model = Phi3ForCausalLM(Phi3Config(**TINY_CONFIG))
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    if warmup:
        _warm_up(model, tokenizer)
    model.eval()
    tokenizer.pad_token = "<unk>"
    configure_generation(model, tokenizer)
    tokenizer.pad_token = tokenizer.eos_token  # ship the tokenizer exactly as the official one is configured
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tiny_recipe.json").write_text(json.dumps({"config": TINY_CONFIG, "warmup": WARMUP}, indent=2))
    return out_dir


def _warm_up(model, tokenizer) -> None:
    """Seeded full-parameter language-model training on the plain chat corpus (teaches the base to chat)."""
    import torch

    rows = [json.loads(line) for line in WARMUP_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"][: WARMUP["max_length"]] for t in texts]
    generator = torch.Generator().manual_seed(WARMUP["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=WARMUP["learning_rate"], weight_decay=0.0)
    model.train()
    start = time.time()
    for step in range(WARMUP["steps"]):
        batch = [ids[i] for i in torch.randint(len(ids), (WARMUP["batch_size"],), generator=generator).tolist()]
        width = max(map(len, batch))
        input_ids = torch.tensor([b + [0] * (width - len(b)) for b in batch])
        mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 40 == 0 or step == WARMUP["steps"] - 1:
            elapsed = time.time() - start
            logger.info("tiny warm-up step %d/%d loss %.3f (%.0f s)", step + 1, WARMUP["steps"], loss.item(), elapsed)
