"""Standard benchmarks (pure parts): lm-eval's results read, the table base vs tuned, the card's model-index."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from trainer.config import preset_config
from trainer.evaluation.benchmarks import BenchmarkSettings, benchmark_table, headline_metrics
from trainer.hub import model_card
from trainer.runs import folder as rf

LM_EVAL_RESULTS = {  # the shape of simple_evaluate(...)["results"]
    "arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.05, "acc_norm,none": 0.4},
    "gsm8k": {"exact_match,strict-match": 0.25, "exact_match,flexible-extract": 0.3, "sample_len": 40},
}


def test_lm_evals_results_keep_their_metrics_without_standard_errors():
    assert headline_metrics(LM_EVAL_RESULTS) == {
        "arc_easy": {"acc": 0.5, "acc_norm": 0.4},
        "gsm8k": {"exact_match (strict-match)": 0.25, "exact_match (flexible-extract)": 0.3},
    }


def test_the_table_puts_each_sides_result_in_its_column():
    data = {"base": {"arc_easy": {"acc": 0.5}}, "tuned": {"arc_easy": {"acc": 0.45}}}
    assert benchmark_table(data) == [["arc_easy", "acc", 0.5, 0.45, "-0.0500"]]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (BenchmarkSettings(tasks=[]), "tasks: pick one or more"),
        (BenchmarkSettings(tasks=["my_secret_task"]), "my_secret_task not offered here"),
        (BenchmarkSettings(limit=0), "limit 0"),
    ],
)
def test_benchmark_settings_name_what_is_wrong(settings, problem):
    assert any(problem in p for p in settings.problems())


def test_a_local_task_folder_allows_any_task_name():
    assert BenchmarkSettings(tasks=["pirate_choice"], include_path="/tasks").problems() == []


def test_the_card_carries_the_tuned_models_results_as_model_index(tmp_path: Path):
    rf.write_text_atomic(tmp_path / rf.CONFIG_FILE, preset_config("tiny-demo").to_yaml())
    rf.write_json_atomic(tmp_path / rf.STATUS_FILE, {"state": "succeeded"})
    data = {"limit": 50, "lm_eval": "0.4.13", "base": {"arc_easy": {"acc": 0.5}}, "tuned": {"arc_easy": {"acc": 0.45}}}
    rf.write_json_atomic(tmp_path / rf.EVAL_DIR / rf.EVAL_BENCHMARKS_FILE, data)
    path = tmp_path / "README.md"
    path.write_text(model_card(tmp_path, repo_id="alice/phi3-pirate"), encoding="utf-8")
    card = ModelCard.load(path)
    (result,) = card.data.eval_results
    assert (result.dataset_name, result.metric_type, result.metric_value) == ("arc_easy", "acc", 0.45)  # the tuned
    assert card.data.model_name == "phi3-pirate" and "lm-evaluation-harness 0.4.13" in result.source_name
    assert "| arc_easy | acc | 0.5 | 0.45 |" in card.text


class _FakeTaskManager:
    """lm-eval's TaskManager as task_index sees it: the folder's tasks, plus the built-in ones unless left out."""

    def __init__(self, include_path=None, include_defaults=True):
        self.include_defaults = include_defaults
        self.all_tasks = ["pirate_choice"] + (["arc_easy", "mmlu"] if include_defaults else [])


@pytest.mark.parametrize(("tasks", "defaults"), [(["pirate_choice"], False), (["pirate_choice", "arc_easy"], True)])
def test_the_task_index_leaves_out_the_built_ins_only_when_the_folder_has_every_task(monkeypatch, tasks, defaults):
    import lm_eval.tasks

    from trainer.evaluation.benchmarks import task_index

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", _FakeTaskManager)
    assert task_index(BenchmarkSettings(tasks, include_path="/tasks")).include_defaults is defaults
    assert task_index(BenchmarkSettings(["arc_easy"])).include_defaults  # no folder: the built-in tasks
