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


def _evaluated(run_dir: Path, complete: bool = True) -> Path:
    """The run folder with an evaluation's summary and chart in eval/ (as `python -m trainer eval` writes them)."""
    summary = {
        "prompts": 24,
        "source": "the run's held-out rows",
        "max_new_tokens": 40,
        "complete": complete,
        "base": {"chrf": 60.9, "bleu": 37.9, "rouge_l": 77.4, "perplexity": 122.25, "reply_tokens": 9.8},
        "tuned": {"chrf": 92.1, "bleu": 90.9, "rouge_l": 95.2, "perplexity": 1.05, "reply_tokens": 16.6},
    }
    summary["base"]["stopped"], summary["tuned"]["stopped"] = 100.0, 50.0
    rf.write_json_atomic(run_dir / rf.EVAL_DIR / rf.EVAL_SUMMARY_FILE, summary)
    rf.write_json_atomic(run_dir / rf.EVAL_DIR / rf.EVAL_RESULTS_FILE, {"rows": []})
    rf.write_bytes_atomic(run_dir / rf.EVAL_DIR / rf.EVAL_CHART_FILE, b"\x89PNG")
    return run_dir


def test_the_card_shows_the_runs_evaluation_base_vs_tuned(run_dir):
    assert "## Evaluation" not in model_card(run_dir)  # no evaluation yet: no section
    card = model_card(_evaluated(run_dir), repo_id="alice/phi3-pirate")
    section = card.split("## Evaluation", 1)[1].split("## Sample", 1)[0]
    assert "answered the same 24 prompts (the run's held-out rows)" in section
    assert "| chrF | 60.9 | 92.1 | +31.2 ▲ |" in section  # base in the base column, tuned in the tuned one
    assert "| perplexity of the references | 122.25 | 1.05 | -121.20 ▲ |" in section  # lower is better
    assert "| stopped at `<|end|>` (%) | 100.0 | 50.0 | -50.0 ▼ |" in section  # never a bare tag the Hub hides
    assert "![Base vs tuned](eval/chart.png)" in section
    assert "## Evaluation" not in merged_card(run_dir, "alice/phi3-pirate-merged", "alice/phi3-pirate")


def test_a_stopped_evaluation_says_so_in_the_card(run_dir):
    assert "stopped early" in model_card(_evaluated(run_dir, complete=False))


def test_a_push_uploads_the_evaluation_beside_the_adapter(run_dir):
    from trainer.hub.push import files_to_push

    (run_dir / rf.ADAPTER_DIR).mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run_dir / rf.ADAPTER_DIR / name).write_text("{}")
    assert not [name for name, _ in files_to_push(run_dir) if name.startswith("eval/")]
    _evaluated(run_dir)
    (run_dir / rf.EVAL_DIR / rf.LOG_FILE).write_text("a log naming /data/runs")
    pushed = [name for name, _ in files_to_push(run_dir) if name.startswith("eval/")]
    assert pushed == ["eval/summary.json", "eval/results.json", "eval/chart.png"]  # results, never its log


def test_the_card_gives_the_judges_and_the_blind_votes_win_rates(run_dir):
    folder = run_dir / rf.EVAL_DIR
    judged = {
        "model": "acme/judge-70b",
        "pairs": [],
        "summary": {
            "pairs": 3,
            "judgments": 6,
            "tuned": 5,
            "base": 1,
            "tie": 0,
            "agreed": 2,
            "win_rate": 0.8333,
            "interval": [0.4365, 0.9699],
            "tokens": 900,
        },
    }
    rf.write_json_atomic(folder / rf.EVAL_JUDGE_FILE, judged)
    votes = {
        "tuned": 7,
        "base": 2,
        "tie": 1,
        "both_bad": 0,
        "votes": 10,
        "voters": 3,
        "win_rate": 0.7778,
        "interval": [0.453, 0.9368],
    }
    rf.write_json_atomic(folder / rf.EVAL_VOTES_FILE, votes)
    section = model_card(run_dir).split("## Evaluation", 1)[1].split("## Sample", 1)[0]
    assert "judge acme/judge-70b: tuned preferred in 5 of 6 decisive judgments (83 %, 95 % CI 44–97 %)" in section
    assert (
        "Blind A/B votes" in section and "tuned preferred in 7 of 9 decisive votes (78 %, 95 % CI 45–94 %)" in section
    )
    assert "| chrF |" not in section  # no batch evaluation: no table
