"""Each `cookbook-*` preset trains as its recipe's own code does: both run on the tiny Phi-3 for a few steps, and the
training loss at every logged step (within 1e-3), the held-out loss, the trainable parameters and the adapter's
tensors agree. The recipes' steps are in tests/parity/recipes.py; what a run changes for the tiny model and the CPU
is marked there (``CHANGED``)."""

from __future__ import annotations

import json

import pytest

from tests.parity import recipes
from trainer.config import load_config
from trainer.runs import folder as rf

pytestmark = pytest.mark.slow
STEPS = 4


@pytest.fixture(scope="module")
def alpaca_file(tmp_path_factory):
    """The bundled Alpaca pirate rows, every third one with an input (the Cookbook's template puts it after
    "\\n Input: ", the studio's after a blank line)."""
    rows = json.loads((recipes.Path(__file__).parents[2] / "examples" / "pirate_alpaca.json").read_text())
    for i, row in enumerate(rows):
        row["input"] = "in one sentence" if i % 3 == 0 else ""
    path = tmp_path_factory.mktemp("alpaca") / "alpaca.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _studio(preset: str, overrides: list[str], run_dir) -> recipes.Trained:
    """The preset, as `python -m trainer train --preset` runs it, made as short as the recipe's run."""
    from safetensors import safe_open

    from trainer.training import run

    config = load_config(
        preset=preset,
        overrides=[
            "model.model_name_or_path=tiny-phi3",
            "model.dtype=float32",
            f"training.max_steps={STEPS}",
            "training.logging_steps=1",
            f"training.eval_steps={STEPS}",
            "training.sample_prompts=0",
            *overrides,
        ],
    )
    result = run(config, run_dir=run_dir, return_model=True)
    events = rf.read_events(result.run_dir)
    losses = {e["step"]: e["loss"] for e in events if "loss" in e}
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    with safe_open(str(result.adapter_dir / "adapter_model.safetensors"), "pt") as f:
        adapter = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 - a handle
    return recipes.Trained(losses, result.eval_loss_after, trainable, adapter)


def _assert_same(preset: recipes.Trained, recipe: recipes.Trained) -> None:
    assert sorted(preset.losses) == sorted(recipe.losses) == list(range(1, STEPS + 1))
    for step, loss in recipe.losses.items():
        assert preset.losses[step] == pytest.approx(loss, abs=1e-3), (step, preset.losses, recipe.losses)
    assert preset.eval_loss == pytest.approx(recipe.eval_loss, abs=1e-3)
    assert preset.trainable == recipe.trainable
    assert preset.adapter == recipe.adapter


def test_the_lora_notebook_preset_trains_as_the_notebook(tiny_model_path, alpaca_file, tmp_path):
    recipe = recipes.lora_notebook(str(tiny_model_path), alpaca_file, tmp_path / "recipe", STEPS)
    preset = _studio("cookbook-lora-notebook", [f"data.dataset_name={alpaca_file}"], tmp_path / "preset")
    _assert_same(preset, recipe)
    assert {name.split(".")[-3] for name in recipe.adapter} == {"o_proj", "down_proj"}  # what the notebook trains


def test_the_qlora_notebook_preset_trains_as_the_notebook(tiny_model_path, alpaca_file, tmp_path):
    recipe = recipes.qlora_notebook(str(tiny_model_path), alpaca_file, tmp_path / "recipe", STEPS)
    preset = _studio("cookbook-qlora-notebook", [f"data.dataset_name={alpaca_file}"], tmp_path / "preset")
    _assert_same(preset, recipe)


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """Pirate chat rows as a folder of train and test files (the script's train_sft and test_sft): few enough that a
    packed sequence holds them all (the script packs up to 2,048 tokens, whose logits are slow on a CPU)."""
    lines = (recipes.Path(__file__).parents[2] / "examples" / "pirate_chat.jsonl").read_text().splitlines()
    folder = tmp_path_factory.mktemp("chat")
    (folder / "train.jsonl").write_text("\n".join(lines[:24]) + "\n")
    (folder / "test.jsonl").write_text("\n".join(lines[200:208]) + "\n")
    return str(folder)


def test_the_sample_finetune_preset_trains_as_the_script(tiny_model_path, chat_folder, tmp_path):
    recipe = recipes.sample_finetune(str(tiny_model_path), chat_folder, tmp_path / "recipe", STEPS)
    overrides = [f"data.dataset_name={chat_folder}", "data.dataset_train_split=train", "data.dataset_test_split=test"]
    preset = _studio("cookbook-sample-finetune", overrides, tmp_path / "preset")
    _assert_same(preset, recipe)
