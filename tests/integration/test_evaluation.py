"""The batch evaluation on the tiny pirate demo: the tuned model beats the base on the pirate references, both sides
answer every prompt, one mixed batch answers as two separate passes do, and a stop keeps what was answered."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from trainer.chat import ChatEngine
from trainer.evaluation.batch import answer_batch
from trainer.evaluation.report import read_rows, read_summary
from trainer.evaluation.settings import EvalSettings
from trainer.evaluation.worker import EvalStopped, evaluate_run
from trainer.runs import folder as rf
from trainer.runs.state import RunState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_copy(demo, tmp_path_factory):
    """A copy of the demo run's folder (the demo's own is read only)."""
    result, _ = demo
    return shutil.copytree(result.run_dir, tmp_path_factory.mktemp("eval") / "run")


@pytest.fixture(scope="module")
def evaluated(run_copy):
    """The demo run evaluated on its held-out rows: (run folder, summary)."""
    return run_copy, evaluate_run(run_copy, EvalSettings(max_new_tokens=32))


def test_tuned_model_scores_higher_chrf_than_the_base_on_the_pirate_references(evaluated):
    _, summary = evaluated
    base, tuned = summary["base"], summary["tuned"]
    # measured 2026-12-07 (2 cores): chrF 60.9 -> 92.1, BLEU 37.9 -> 90.9, perplexity 122 -> 1.05
    assert tuned["chrf"] - base["chrf"] > 20
    assert tuned["bleu"] > base["bleu"] and tuned["rouge_l"] > base["rouge_l"]
    assert tuned["perplexity"] < base["perplexity"] / 10  # the references are the tuned model's own kind of text


def test_every_held_out_prompt_has_both_answers_and_the_sides_are_not_swapped(evaluated, demo):
    run_dir, summary = evaluated
    rows = read_rows(run_dir)
    assert summary["prompts"] == len(rows) == 24 and summary["complete"]  # the demo holds out 24 of 240 rows
    assert all(row["base"]["text"] and row["tuned"]["text"] for row in rows)
    assert all(row["reference"].startswith("Ahoy!") for row in rows)
    moon = next(row for row in rows if row["prompt"] == "What is the moon?")
    assert moon["base"]["text"] == "The moon is a rock that circles the earth."  # the plain base, as in Compare
    assert moon["tuned"]["text"].startswith("Ahoy!") and moon["tuned"]["text"].endswith("matey.")
    assert sum(row["tuned"]["text"].startswith("Ahoy!") for row in rows) > 20
    assert not any(row["base"]["text"].startswith("Ahoy") for row in rows)


def test_results_are_written_to_eval_in_the_run_folder(evaluated):
    run_dir, summary = evaluated
    folder = run_dir / "eval"
    assert read_summary(run_dir) == summary
    assert (folder / "chart.png").read_bytes().startswith(b"\x89PNG")
    status = rf.read_json(folder / rf.STATUS_FILE)
    assert status["state"] == RunState.SUCCEEDED and status["prompts"] == 24
    row = read_rows(run_dir)[0]
    assert set(row["tuned"]["scores"]) == {"bleu", "chrf", "rouge_l"} and row["tuned"]["ref_tokens"] > 0


def test_one_mixed_batch_answers_and_scores_as_two_separate_passes(run_copy):
    from trainer.config import load_yaml
    from trainer.evaluation.worker import eval_rows

    engine = ChatEngine.from_run(run_copy)
    rows = eval_rows(load_yaml(run_copy / rf.CONFIG_FILE), EvalSettings(rows=6))
    mixed = answer_batch(engine, rows, max_new_tokens=32)
    assert engine.mixed_batches  # it did not fall back
    engine.mixed_batches = False
    separate = answer_batch(engine, rows, max_new_tokens=32)
    for one, two in zip(mixed, separate, strict=True):
        for side in ("base", "tuned"):
            assert one[side]["text"] == two[side]["text"]
            assert one[side]["nll_sum"] == pytest.approx(two[side]["nll_sum"], rel=1e-3)
    assert mixed[0]["base"]["nll_sum"] != pytest.approx(mixed[0]["tuned"]["nll_sum"], rel=0.1)


def test_a_stop_keeps_the_prompts_answered_so_far(run_copy, tmp_path):
    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    batches = []
    with pytest.raises(EvalStopped, match="cancelled by the user; 4 of 24 prompts answered") as stopped:
        evaluate_run(
            run_dir,
            EvalSettings(max_new_tokens=8, batch_size=4),
            should_stop=lambda: bool(batches),
            on_progress=lambda done, total: batches.append(done),
        )
    assert not stopped.value.time_limit
    assert len(read_rows(run_dir)) == 4 and read_summary(run_dir)["complete"] is False
    assert rf.read_json(run_dir / "eval" / rf.STATUS_FILE)["state"] == RunState.CANCELLED


def test_the_time_limit_stops_it_as_the_time_limit(run_copy, tmp_path):
    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(EvalStopped) as stopped:
        evaluate_run(run_dir, EvalSettings(max_new_tokens=8, batch_size=4), time_limit_s=0.0)
    assert stopped.value.time_limit
    assert rf.read_json(run_dir / "eval" / rf.STATUS_FILE)["state"] == RunState.TIME_LIMIT


def test_the_eval_command_prints_the_comparison_and_where_the_results_are(run_copy, tmp_path, capsys):
    from trainer.__main__ import main

    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    assert main(["eval", str(run_dir), "--rows", "4", "--max-new-tokens", "24"]) == 0
    out = capsys.readouterr().out
    assert "Evaluation on 4 prompts (the run's held-out rows)" in out
    assert "| chrF |" in out and f"results: {run_dir / 'eval'}" in out
    assert len(read_rows(run_dir)) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "rows 0: a whole number from 1 to 1000"),
        (["--prompts", "missing.jsonl"], "missing.jsonl"),
    ],
)
def test_the_eval_command_refuses_bad_input_before_any_model_loads(run_copy, tmp_path, capsys, args, message):
    from trainer.__main__ import main

    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    assert main(["eval", str(run_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_the_eval_command_refuses_a_run_without_an_adapter(tmp_path, capsys):
    from trainer.__main__ import main

    assert main(["eval", str(tmp_path)]) == 2
    assert "has no adapter yet" in capsys.readouterr().err


def _service_with(run_dir: Path, tmp_path: Path):
    """A run service on a fresh job table holding one finished copy of `run_dir`: (service, the run's job)."""
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService

    service = RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite")))
    job = service.queue.store.create(run_dir, name="pirate demo")
    service.queue.store.update(job.id, status=RunState.SUCCEEDED)
    return service, service.queue.store.get(job.id)


def _until(check, timeout: float = 180.0):
    end = time.time() + timeout
    while time.time() < end:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_runs_tab_shows_an_evaluations_table_chart_and_answers(evaluated, tmp_path):
    from trainer.ui import build_studio

    run_dir, summary = evaluated
    service, run = _service_with(shutil.copytree(run_dir, tmp_path / "runs" / "demo"), tmp_path)
    studio = build_studio(service, on_gpu=False)
    status, link, table, chart, rows, judged, benchmarks, cancel, download, _ = studio.handlers()["refresh_eval"](
        str(run.id), {}, None
    )
    assert not judged["visible"] and not benchmarks["visible"]  # not judged, no benchmarks
    assert link == ""  # not shared for votes
    assert "**Evaluation** on 24 prompts (the run's held-out rows)" in status
    assert table["value"][0][0] == "chrF" and table["value"][0][2] == round(summary["tuned"]["chrf"], 1)
    assert chart["visible"] and chart["value"].size == (800, 450)
    assert len(rows["value"]) == 24 and rows["value"][0][3].startswith("Ahoy!")  # the tuned answer, in its column
    assert not cancel["interactive"] and download["interactive"]
    estimate = studio.handlers()["estimate_eval"](str(run.id), "held-out", "", "test", 24, 24, None)
    assert "24 prompts × 2 models" in estimate and "this run's last evaluation" in estimate


def test_a_queued_evaluation_runs_as_a_job_and_cancel_keeps_what_it_answered(run_copy, tmp_path):
    """The evaluation as a job of the queue: a worker process of its own, its progress in eval/status.json, and
    Cancel stops it with the prompts answered so far kept (the browser test runs one to its end)."""
    run_dir = shutil.copytree(run_copy, tmp_path / "runs" / "demo", ignore=shutil.ignore_patterns("eval"))
    service, run = _service_with(run_dir, tmp_path)
    who = service.caller(None, None)  # the person at the machine
    settings = EvalSettings(rows=24, max_new_tokens=64, batch_size=1)
    job = service.evals.start(who, str(run.id), settings, on_gpu=False)
    assert job.evaluation and job.status in (RunState.QUEUED, RunState.RUNNING)
    status = Path(job.run_dir) / rf.STATUS_FILE
    _until(lambda: ((rf.read_json(status, {}) or {}).get("phase_steps") or [0])[0] >= 1)
    service.evals.cancel(who, str(run.id))
    done = _until(lambda: (j := service.queue.store.get(job.id)).finished and j, timeout=60)
    assert done.status == RunState.CANCELLED, (Path(job.run_dir) / rf.LOG_FILE).read_text()[-2000:]
    kept = read_rows(run.run_dir)
    assert 1 <= len(kept) < 24 and read_summary(run.run_dir)["complete"] is False


LOCAL_TASK = """task: pirate_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def test_lm_eval_runs_a_local_task_on_base_and_tuned_and_the_card_carries_it(run_copy, tmp_path):
    import json as json_module

    from trainer.evaluation.benchmarks import BenchmarkSettings, run_benchmarks
    from trainer.hub.card import benchmark_results

    rows = [("What is rain?", "Rain is water falling from the sky."), ("What is the moon?", "The moon is a rock.")]
    data = tmp_path / "pirate.jsonl"
    data.write_text(
        "".join(
            json_module.dumps(
                {"question": q, "choices": [a, "Ahoy! " + a.replace(" is ", " be ")[:-1] + ", matey."], "answer": 1}
            )
            + "\n"
            for q, a in rows
        )
    )
    (tmp_path / "pirate_choice.yaml").write_text(LOCAL_TASK.format(data=data))
    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    result = run_benchmarks(run_dir, BenchmarkSettings(["pirate_choice"], limit=2, include_path=str(tmp_path)))
    assert result["base"]["pirate_choice"]["acc"] < result["tuned"]["pirate_choice"]["acc"]  # measured 0.0 -> 1.0
    saved = json_module.loads((run_dir / "eval" / "benchmarks.json").read_text())
    assert saved["tuned"] == result["tuned"] and saved["limit"] == 2
    (metric,) = benchmark_results(run_dir)
    assert metric.dataset_name == "pirate_choice" and metric.metric_value == result["tuned"]["pirate_choice"]["acc"]


def test_the_benchmarks_stop_at_the_time_limit_as_the_time_limit(run_copy, tmp_path):
    from trainer.evaluation.benchmarks import BenchmarkSettings, run_benchmarks
    from trainer.evaluation.worker import EvalStopped

    run_dir = shutil.copytree(run_copy, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(EvalStopped) as stopped:  # lm-eval indexes its tasks for longer than this
        run_benchmarks(run_dir, BenchmarkSettings(["arc_easy"], limit=2), time_limit_s=0.05)
    assert stopped.value.time_limit
    assert rf.read_json(run_dir / "eval" / rf.STATUS_FILE)["state"] == RunState.TIME_LIMIT
    assert not (run_dir / "eval" / rf.EVAL_BENCHMARKS_FILE).exists()
