"""Measure the GGUF export's rates on this machine (trainer/gguf/export.py's MERGE/CONVERT/QUANTIZE_PARAMS_PER_S).

A random Phi-3-shaped model of about 0.37 B parameters (hidden 1024, 24 layers, Phi-3's vocabulary) and a LoRA
adapter on it are written into a scratch run folder; `export_merged` then makes q4_K_M, each phase timed:

    python scripts/gguf_rates.py [--layers 24] [--hidden 1024]

Prints parameters per second for merging, converting (f16) and quantizing, and the tiny model's whole export time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=1024)
    args = parser.parse_args()

    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    from trainer.config import preset_config, save_yaml
    from trainer.gguf.export import export_merged
    from trainer.paths import TOKENIZER_DIR
    from trainer.runs import folder as rf

    work = Path(tempfile.mkdtemp(prefix="gguf-rates-"))
    base = work / "base"
    config = Phi3Config(
        vocab_size=32064,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 64,
        pad_token_id=32000,
    )
    torch.manual_seed(0)
    model = Phi3ForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    tokenizer.save_pretrained(base)
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.model", base / "tokenizer.model")
    run_dir = work / "run"
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
    get_peft_model(model, lora).save_pretrained(run_dir / rf.ADAPTER_DIR)
    tokenizer.save_pretrained(run_dir / rf.ADAPTER_DIR)
    cfg = preset_config("tiny-demo")
    cfg.model.model_name_or_path = str(base)
    save_yaml(cfg, run_dir / rf.CONFIG_FILE)

    marks: list[tuple[str, float]] = []
    start = time.time()
    export_merged(run_dir, "q4_K_M", on_phase=lambda phase: marks.append((phase, time.time())))
    marks.append(("end", time.time()))
    spans = {name: later - at for (name, at), (_, later) in zip(marks, marks[1:], strict=False)}
    print(f"{params / 1e9:.3f} B parameters, {time.time() - start:.1f} s in all")
    for name, seconds in spans.items():
        print(f"{name:>10}: {seconds:6.1f} s  {params / seconds / 1e6:6.1f} M parameters/s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
