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
of everything that determines it, so it is built once per machine (about a minute on 2 CPU cores). Nothing that
answers a user builds it: the app starts the build in the background when it starts on a CPU, and a run's worker
builds it (or waits for that build) as the run's first phase, with its progress. One process builds at a time,
under a lock file; the others wait and read its progress.

Example:
    >>> from trainer.tools.tiny import ensure_tiny_model
    >>> path = ensure_tiny_model()   # builds on first use, then returns the cached folder
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from trainer.paths import PROJECT_ROOT, TOKENIZER_DIR, WARMUP_DATA
from trainer.phi3 import TINY_CONFIG, configure_generation

logger = logging.getLogger(__name__)

CACHE_ENV = "PHI3_STUDIO_CACHE"

# The warm-up that turns random weights into a plain chat model (seeded, full parameters, full-sequence loss).
WARMUP = {"seed": 0, "steps": 240, "batch_size": 16, "learning_rate": 3e-3, "max_length": 64}

Progress = Callable[[int, int], None]
"""Told (warm-up steps done, steps in all) as a build goes; it may raise to give up (a Cancel)."""


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


def tiny_model_dir() -> Path:
    """Where the tiny model of this recipe is (or will be) cached."""
    return cache_root() / f"tiny-phi3-{recipe_hash()}"


def tiny_model_built() -> bool:
    """Whether the tiny model is built on this machine (so a run using it starts without the build phase)."""
    return (tiny_model_dir() / "config.json").exists()


def ensure_tiny_model(on_progress: Progress | None = None) -> Path:
    """The folder of the tiny model, built and cached on first use.

    Several processes may ask at once (the app's start-up build, a run's worker, the tests): one builds, holding a
    lock file, and each other waits for it, told the builder's progress.

    Args:
        on_progress: called with (warm-up steps done, steps in all) while the model is built or awaited; it may
            raise (a Cancel) to give up, leaving no half-built model behind.
    """
    target = tiny_model_dir()
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    progress_file = target.parent / f"{target.name}.progress"
    with _build_lock(target.parent / f"{target.name}.lock", progress_file, on_progress):
        if (target / "config.json").exists():  # built by another process while this one waited
            return target
        for stale in target.parent.glob(f".building-{target.name}-*"):  # a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".building-{target.name}-"))

        def report(done: int, total: int) -> None:
            progress_file.write_text(json.dumps([done, total]))
            if on_progress:
                on_progress(done, total)

        try:
            build_tiny_model(tmp, on_progress=report)
            try:
                os.rename(tmp, target)
            except OSError:  # another process finished first (a machine without file locks); keep theirs
                if not (target / "config.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            progress_file.unlink(missing_ok=True)
    return target


def start_background_build() -> subprocess.Popen | None:
    """Start building the tiny model in a low-priority process of its own (the app does, when it starts on a CPU,
    so the model is ready by the first Start); None when it is built already. The process ends with the app."""
    if tiny_model_built():
        return None
    return subprocess.Popen([sys.executable, "-m", "trainer.tools.tiny"], cwd=PROJECT_ROOT)


def _end_with(parent: int) -> Progress:
    """A progress callback that gives the build up once the process that started it is gone."""

    def check(done: int, total: int) -> None:
        if os.getppid() != parent:
            raise SystemExit(f"the app that started the demo model's build has ended ({done}/{total} steps)")

    return check


@contextlib.contextmanager
def _build_lock(path: Path, progress_file: Path, on_progress: Progress | None) -> Iterator[None]:
    """Hold the build lock; while another process holds it, pass its progress on every half second."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; builds may overlap, and the rename keeps the cache whole
        yield
        return
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_progress:
                    on_progress(*_read_progress(progress_file))
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_progress(progress_file: Path) -> tuple[int, int]:
    """The builder's (steps done, steps in all); (0, steps) before it wrote any."""
    try:
        done, total = json.loads(progress_file.read_text())
        return int(done), int(total)
    except (OSError, ValueError, TypeError):
        return 0, WARMUP["steps"]


def build_tiny_model(out_dir: Path, warmup: bool = True, on_progress: Progress | None = None) -> Path:
    """Build the tiny Phi-3 (seeded random init, then the plain-chat warm-up) and save it with the real tokenizer.

    Args:
        out_dir: folder to write (config, safetensors weights, generation config, tokenizer files).
        warmup: run the plain-chat warm-up (False gives the raw random model).
        on_progress: told (steps done, steps in all) every few warm-up steps.

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
        _warm_up(model, tokenizer, on_progress)
    model.eval()
    tokenizer.pad_token = "<unk>"
    configure_generation(model, tokenizer)
    tokenizer.pad_token = tokenizer.eos_token  # ship the tokenizer exactly as the official one is configured
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tiny_recipe.json").write_text(json.dumps({"config": TINY_CONFIG, "warmup": WARMUP}, indent=2))
    return out_dir


def _warm_up(model, tokenizer, on_progress: Progress | None = None) -> None:
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
        if on_progress and step % 10 == 0:
            on_progress(step, WARMUP["steps"])
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
    if on_progress:
        on_progress(WARMUP["steps"], WARMUP["steps"])


if __name__ == "__main__":  # the app's background build (`start_background_build`)
    if hasattr(os, "nice"):
        os.nice(10)  # the app answering its users comes first on the CPU
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("building the demo model in the background: %s", ensure_tiny_model(_end_with(os.getppid())))
