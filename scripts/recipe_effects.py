"""Measure what the Cookbook parity table in the README says, on the tiny Phi-3 and this machine's CPU.

1. Parity: each `cookbook-*` preset and its recipe (tests/parity/recipes.py) trained side by side for a few steps:
   the largest difference of the training loss over the logged steps, and of the held-out loss.
2. Effects: the tiny demo (the `tiny-demo` preset on the pirate persona) as the studio trains it, and with one of its
   departures from the Cookbook's recipe undone at a time (loss on every token, LoRA on o_proj and down_proj only,
   padded batches): trainable parameters, held-out loss before -> after, training time, the first held-out reply.

Writes benchmarks/cookbook-parity/<date>.md and prints it.

    python scripts/recipe_effects.py
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.parity import recipes  # noqa: E402
from tests.parity.test_cookbook_parity import STEPS, _studio  # noqa: E402

EFFECTS = {
    "the studio (tiny-demo)": [],
    "loss on every token (the Cookbook's)": ["training.assistant_only_loss=false"],
    "LoRA on o_proj, down_proj only (the notebooks' code)": ["lora.target_modules=o_proj,down_proj"],
    "padded batches (not padding-free)": ["training.padding_free=false"],
}


def parity(tmp: Path, model_dir: str) -> list[str]:
    rows = json.loads((ROOT / "examples" / "pirate_alpaca.json").read_text())
    for i, row in enumerate(rows):
        row["input"] = "in one sentence" if i % 3 == 0 else ""
    alpaca = tmp / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps(row) + "\n" for row in rows))
    chat = tmp / "chat"
    chat.mkdir()
    lines = (ROOT / "examples" / "pirate_chat.jsonl").read_text().splitlines()
    (chat / "train.jsonl").write_text("\n".join(lines[:24]) + "\n")
    (chat / "test.jsonl").write_text("\n".join(lines[200:208]) + "\n")
    split = ["data.dataset_train_split=train", "data.dataset_test_split=test"]
    cases = [
        ("cookbook-lora-notebook", recipes.lora_notebook, str(alpaca), [f"data.dataset_name={alpaca}"]),
        ("cookbook-qlora-notebook", recipes.qlora_notebook, str(alpaca), [f"data.dataset_name={alpaca}"]),
        ("cookbook-sample-finetune", recipes.sample_finetune, str(chat), [f"data.dataset_name={chat}", *split]),
    ]
    out = ["| preset | trainable (tiny) | largest training-loss difference | held-out loss difference |"]
    out.append("| --- | ---: | ---: | ---: |")
    for preset, recipe, data, overrides in cases:
        theirs = recipe(model_dir, data, tmp / f"{preset}-recipe", STEPS)
        ours = _studio(preset, overrides, tmp / f"{preset}-preset")
        gap = max(abs(ours.losses[step] - loss) for step, loss in theirs.losses.items())
        out.append(f"| {preset} | {ours.trainable:,} | {gap:.1e} | {abs(ours.eval_loss - theirs.eval_loss):.1e} |")
    return out


def effects(tmp: Path) -> list[str]:
    from trainer.config import load_config
    from trainer.training import run

    out = ["| variant | trainable | held-out loss before -> after | training s | first held-out reply |"]
    out.append("| --- | ---: | --- | ---: | --- |")
    for name, overrides in EFFECTS.items():
        config = load_config(preset="tiny-demo", overrides=overrides)
        started = time.time()
        result = run(config, run_dir=tmp / name.split(" ")[0], return_model=True)
        seconds = time.time() - started
        trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
        reply = (result.samples[0]["after"] if result.samples else "").replace("|", "/")
        loss = f"{result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}"
        out.append(f"| {name} | {trainable:,} | {loss} | {seconds:.0f} | {reply} |")
    return out


def main() -> int:
    import torch
    import transformers
    import trl

    from trainer.tools.tiny import ensure_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = parity(tmp, str(ensure_tiny_model()))
        effect = effects(tmp)
    date = dt.date.today().isoformat()
    text = "\n".join(
        [
            f"# The Cookbook presets against their recipes, {date}",
            "",
            f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; the tiny "
            f"Phi-3 on the CPU. Made by `python scripts/recipe_effects.py`.",
            "",
            f"## Parity: each preset and its recipe's own steps, {STEPS} steps each (tests/parity)",
            "",
            *table,
            "",
            "## The studio's departures from the recipe, one undone at a time (the tiny demo, 80 steps)",
            "",
            *effect,
            "",
        ]
    )
    folder = ROOT / "benchmarks" / "cookbook-parity"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{date}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
