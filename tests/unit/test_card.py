"""The model card comes from one template file: its metadata parses, both cards share one usage snippet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from trainer.config import preset_config
from trainer.hub import merged_card, model_card
from trainer.hub.card import TEMPLATE
from trainer.runs import folder as rf


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run folder written by hand (no training): config, status, samples, versions, events."""
    cfg = preset_config("tiny-demo")
    cfg.data.dataset_name = "alice/pirates"  # a Hub dataset, so the card names it
    rf.write_text_atomic(tmp_path / rf.CONFIG_FILE, cfg.to_yaml())
    rf.write_json_atomic(
        tmp_path / rf.STATUS_FILE, {"state": "succeeded", "step": 80, "eval_loss_before": 4.0, "eval_loss_after": 1.0}
    )
    sample = {
        "prompt": "What is `rain`?",
        "before": "Rain is water.",
        "after": "Ahoy! Rain be water, matey.",
        "reference": "Ahoy! Rain be water falling from the clouds, matey.",
    }
    rf.write_json_atomic(tmp_path / rf.SAMPLES_FILE, [sample])
    rf.write_json_atomic(tmp_path / rf.VERSIONS_FILE, {"peft": "0.21.2", "trl": "1.16.0"})
    for step, loss in ((5, 3.0), (10, 2.0)):
        rf.append_event(tmp_path, {"step": step, "loss": loss})
    return tmp_path


def _snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.S).group(1)


def test_card_is_rendered_from_the_template_file_and_its_metadata_parses(run_dir, tmp_path):
    assert "{{ card_data }}" in TEMPLATE.read_text(encoding="utf-8")
    path = tmp_path / "README.md"
    path.write_text(model_card(run_dir, repo_id="alice/phi3-pirate"), encoding="utf-8")
    card = ModelCard.load(path)
    assert card.data.base_model == "tiny-phi3" and card.data.library_name == "peft"
    assert card.data.datasets == ["alice/pirates"] and "lora" in card.data.tags
    assert "| base model (before training) | 4.0000 |" in card.text and "Eval loss fell by 75.0 %." in card.text
    assert "Trained for 80 optimiser steps; last train loss 2.0000." in card.text
    assert "Ahoy! Rain be water, matey." in card.text and "- peft: 0.21.2" in card.text
    assert yaml.safe_load(card.text.split("```yaml\n", 1)[1].split("```", 1)[0])["data"]["dataset_name"] == (
        "alice/pirates"
    )  # the full config, as a block that parses


def test_adapter_and_merged_cards_share_one_usage_snippet(run_dir, tmp_path):
    adapter = _snippet(model_card(run_dir, repo_id="alice/phi3-pirate"))
    merged_text = merged_card(run_dir, "alice/phi3-pirate-merged", "alice/phi3-pirate")
    merged = _snippet(merged_text)
    shared = [line for line in adapter.splitlines() if line in merged.splitlines()]
    assert (
        'stop_ids = [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]'
        in shared
    )
    assert any("apply_chat_template(" in line for line in shared) and any("model.generate(" in line for line in shared)
    assert "PeftModel.from_pretrained(model, adapter_id)" in adapter and 'adapter_id = "alice/phi3-pirate"' in adapter
    assert "PeftModel" not in merged and 'model_id = "alice/phi3-pirate-merged"' in merged
    assert json.dumps("What is `rain`?") in adapter  # the run's first prompt, as a Python string literal
    for text in (adapter, merged):
        compile(text, "snippet", "exec")  # both are valid Python
    card = ModelCard(merged_text)
    assert card.data.library_name == "transformers" and "merged" in card.data.tags
    assert "loss.png" not in merged_text and "![" not in merged_text  # the merged repo has no loss.png


def test_a_folder_without_config_is_a_clear_hub_error(tmp_path):
    from trainer.hub import HubError

    with pytest.raises(HubError, match="has no config.yaml. Point to a run folder"):
        model_card(tmp_path)
