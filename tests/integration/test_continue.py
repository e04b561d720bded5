"""Continue training: a new run starts from the demo run's adapter (loaded trainable), with its LoRA settings."""

from __future__ import annotations

import pytest

from trainer.config import load_config, load_yaml
from trainer.runs import folder as rf
from trainer.training import count_parameters, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def continued(demo, tmp_path_factory):
    """Two more steps on top of the demo's adapter; the config asks for r=4, which the adapter (r=16) overrules."""
    parent_result, _ = demo
    overrides = [
        f"model.adapter_name_or_path={parent_result.run_dir}",
        "max_steps=2",
        "logging_steps=1",
        "eval_steps=2",
        "save_steps=2",
        "sample_prompts=0",
        "r=4",
        "run.name=pirates (continued)",
    ]
    events: list = []
    run_dir = tmp_path_factory.mktemp("continued") / "run"
    result = run(load_config(preset="tiny-demo", overrides=overrides), events.append, run_dir, return_model=True)
    return result, events


def test_the_continued_run_starts_where_its_parent_ended(demo, continued):
    (parent, parent_events), (child, events) = demo, continued
    first = next(e["loss"] for e in events if "loss" in e)
    fresh_first = next(e["loss"] for e in parent_events if "loss" in e)
    assert first < 0.5 * fresh_first, (first, fresh_first)  # the adapter's weights were loaded, not a fresh one
    assert child.eval_loss_before == pytest.approx(parent.eval_loss_after, abs=1e-4)  # the same adapter, same rows
    trainable, _ = count_parameters(child.model)
    assert trainable == 57344  # loaded trainable (is_trainable=True), at the parent's r=16 (as test_training counts)


def test_the_adapters_own_lora_settings_rule_and_the_parent_is_recorded(demo, continued):
    (parent, _), (child, events) = demo, continued
    assert load_yaml(child.run_dir / rf.CONFIG_FILE).lora == load_yaml(parent.run_dir / rf.CONFIG_FILE).lora
    said = [e["message"] for e in events if "continuing from" in e.get("message", "")]
    assert said == ["continuing from tiny-phi3: pirate_chat; its own LoRA settings: r=16, alpha=32, dropout=0.0, "
                    "targets qkv_proj, o_proj, gate_up_proj, down_proj"]  # fmt: skip
    assert "they replace the config's r=4" in (child.run_dir / rf.LOG_FILE).read_text(encoding="utf-8")
    status = rf.read_json(child.run_dir / rf.STATUS_FILE)
    assert status["parent_run"] == {"name": "tiny-phi3: pirate_chat", "repo_id": None}
    assert status["state"] == "succeeded" and status["name"] == "pirates (continued)"


def test_the_card_names_the_parent(continued):
    from trainer.hub import model_card

    child, _ = continued
    card = model_card(child.run_dir, repo_id="alice/pirates-more")
    assert "Continued from the run `tiny-phi3: pirate_chat`: this run started from that adapter" in card
    assert "| the parent adapter (before this run) |" in card
    parent = rf.read_json(child.run_dir / rf.STATUS_FILE)["parent_run"]
    rf.write_status(child.run_dir, "succeeded", parent_run={**parent, "repo_id": "alice/p"})  # the parent was pushed
    try:
        assert "Continued from [alice/p](https://huggingface.co/alice/p)" in model_card(child.run_dir)
    finally:
        rf.write_status(child.run_dir, "succeeded", parent_run=parent)


def test_the_trl_file_of_a_continued_run_says_trl_starts_a_fresh_adapter(continued):
    child, _ = continued
    text = (child.run_dir / "trl_sft.yaml").read_text(encoding="utf-8")
    assert "continued from the adapter" in text and "lora_r: 16" in text
