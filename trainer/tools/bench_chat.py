"""Compare-chat benchmark: the side-by-side chat as one mixed batch against two sequential generates.

python -m trainer bench-chat --tiny      # CPU, tiny Phi-3 (what the tests run)
python -m trainer bench-chat             # GPU, Phi-3-mini architecture (random weights, real tokenizer)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trainer.phi3 import PHI3_PROJECTIONS
from trainer.tools.bench import environment, random_phi3_mini

CHAT_PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def run_chat_bench(tiny: bool, out_dir: Path, max_new_tokens: int = 128, repeats: int = 3) -> dict[str, Any]:
    """The side-by-side chat on one base + one adapter: time to first token of both panes and generated tokens/s,
    one mixed batch (base row + adapter row) against two sequential generates. Writes chat.json and chat.md.

    The base is the tiny Phi-3 (CPU) or a random Phi-3-mini in bf16 (GPU), saved with the real tokenizer and
    loaded as the app loads it (`ChatEngine`); the adapter is LoRA r 16 on the four projections with random
    non-zero weights, so the tuned row really differs from the base row. Random weights never stop at `<|end|>`, so
    both rows generate all `max_new_tokens` (the worst case for the batch: no early finish).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from trainer.chat import ChatEngine, GenerationSettings, measure_speed
    from trainer.config import ModelConfig
    from trainer.modeling import resolve_model_path
    from trainer.phi3 import TINY_MODEL_NAME

    on_gpu = torch.cuda.is_available()
    if not tiny and not on_gpu:
        raise ValueError("bench-chat: the Phi-3-mini chat benchmark needs a CUDA GPU; use --tiny on a CPU.")
    base_path = Path(resolve_model_path(TINY_MODEL_NAME)) if tiny else random_phi3_mini()
    adapter_dir = out_dir / "random-adapter"
    torch.manual_seed(0)
    model_cfg = ModelConfig(model_name_or_path=str(base_path), dtype="auto" if on_gpu else "float32")
    engine = ChatEngine(model_cfg)
    peft = get_peft_model(engine.base, LoraConfig(r=16, lora_alpha=32, target_modules=list(PHI3_PROJECTIONS)))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    peft.save_pretrained(adapter_dir)
    engine.base = peft.unload()
    engine.add_adapter(adapter_dir)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, greedy=True)
    measure_speed(engine, CHAT_PROMPT, GenerationSettings(max_new_tokens=8), repeats=1)  # warm-up
    figures = measure_speed(engine, CHAT_PROMPT, settings, repeats)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "environment": environment(),
        "tiny": tiny,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        **figures,
        "speedup": round(figures["batched"]["tokens_per_s"] / figures["sequential"]["tokens_per_s"], 3),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "chat.json").write_text(json.dumps(report, indent=2))
    b, s = report["batched"], report["sequential"]
    (out_dir / "chat.md").write_text(
        f"Compare chat, {report['environment']['device']}, {max_new_tokens} new tokens per pane, median of "
        f"{repeats}:\n\n| mode | time to first token (both panes) | tokens/s (both panes) |\n| --- | ---: | ---: |\n"
        f"| one mixed batch | {b['ttft_s']:.3f} s | {b['tokens_per_s']:.1f} |\n"
        f"| two sequential generates | {s['ttft_s']:.3f} s | {s['tokens_per_s']:.1f} |\n\n"
        f"Batched / sequential tokens/s: {report['speedup']:.2f}x\n"
    )
    return report
