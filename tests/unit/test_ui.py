"""The web form is generated from RunConfig, and the Runs tab's readers turn run-folder files into what it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import PRESETS, iter_fields, preset_config
from trainer.preflight import demo_problems
from trainer.runs import folder as rf
from trainer.runs.access import Caller
from trainer.ui.form import (
    config_from_form,
    field_updates,
    form_fields,
    help_text,
    problems_markdown,
    widget_value,
)
from trainer.ui.runs_tab import loss_frame, metrics_markdown, progress_html


def _form(cfg) -> dict:
    return {spec.key: widget_value(spec, spec.get(cfg)) for spec in form_fields()}


def test_form_has_a_widget_for_every_setting():
    assert [spec.key for spec in form_fields()] == [s.key for s in iter_fields() if s.key != "grpo.reward_module"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_form_round_trips_every_preset(name):
    cfg, problems = config_from_form(_form(preset_config(name)))
    assert problems == [] and cfg == preset_config(name)


def test_form_reports_every_problem_with_its_field():
    values = _form(preset_config("tiny-demo"))
    values.update({"training.learning_rate": 0, "lora.r": 2.5, "data.dataset_name": ""})
    _, problems = config_from_form(values)
    keys = sorted(p.split(":", 1)[0] for p in problems)
    assert keys == ["data.dataset_name", "lora.r", "training.learning_rate"]
    text = problems_markdown(problems)
    assert "**Learning rate** (`training.learning_rate`)" in text and "**LoRA rank r** (`lora.r`)" in text
    updates = dict(zip([s.key for s in form_fields()], field_updates(problems), strict=True))
    assert updates["training.learning_rate"]["info"].startswith("⚠️ 0.0 is below the minimum")
    assert updates["lora.lora_alpha"]["info"] == help_text(next(s for s in form_fields() if s.name == "lora_alpha"))


def test_lists_and_mappings_are_edited_as_text():
    spec = next(s for s in form_fields() if s.name == "target_modules")
    assert widget_value(spec, ["qkv_proj", "o_proj"]) == "qkv_proj, o_proj"
    values = _form(preset_config("tiny-demo")) | {
        "data.column_mapping": "q=user, a=assistant",
        "lora.target_modules": "qkv_proj, o_proj",
    }
    cfg, problems = config_from_form(values)
    assert problems == [] and cfg.data.column_mapping == {"q": "user", "a": "assistant"}
    assert cfg.lora.target_modules == ["qkv_proj", "o_proj"]


def test_demo_mode_only_trains_the_tiny_model():
    assert demo_problems(preset_config("tiny-demo"), on_gpu=False) == []
    assert demo_problems(preset_config("lora"), on_gpu=True) == []
    assert "only train tiny-phi3" in demo_problems(preset_config("lora"), on_gpu=False)[0]


LOCAL = Caller(name=None, token=None, admin=True, local=True)


def _service(tmp_path):
    """A run service over an empty job table (no worker is ever started)."""
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService

    return RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false"))


def test_upload_keeps_supported_files_and_refuses_others(tmp_path, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path / "data"))
    good = tmp_path / "mine.csv"
    good.write_text("prompt,completion\nhi,hello\n")
    save_upload = _service(tmp_path).save_upload
    saved, error = save_upload(LOCAL, str(good))
    assert error == "" and Path(saved).name == "mine.csv"
    assert Path(saved).parent.parent == tmp_path / "data" / "uploads" / "local"
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    saved, error = save_upload(LOCAL, str(bad))
    assert saved is None and ".txt files are not supported" in error and ".jsonl" in error


EVENTS = [
    {"step": 0, "eval_loss": 4.8},
    {"step": 5, "total_steps": 20, "loss": 4.5, "lr": 0.003, "tokens_per_s": 512.0, "eta_s": 12.0},
    {"step": 10, "total_steps": 20, "loss": 2.5, "lr": 0.003, "tokens_per_s": 530.0, "eta_s": 6.0},
    {"step": 10, "eval_loss": 2.0},
    {"step": 10, "message": "hello"},
]


def test_loss_frames_are_numeric_even_when_empty():
    train, evals = loss_frame(EVENTS), loss_frame(EVENTS, "eval_loss")
    assert train.to_dict("list") == {"step": [5, 10], "loss": [4.5, 2.5]}
    assert evals.to_dict("list") == {"step": [0, 10], "eval_loss": [4.8, 2.0]}
    assert str(loss_frame([]).dtypes["loss"]) == "float64"


def test_progress_and_metrics():
    class Job:
        status = "running"

    html = progress_html(Job(), EVENTS, {"phase": "training"})
    assert "training · step 10 / 20 (50 %)" in html and "ETA 6 s" in html
    evaluation = {"step": 10, "total_steps": 20, "eval_loss": 2.0}
    evaluated = progress_html(Job(), [*EVENTS, evaluation], {"phase": "training"})
    assert "ETA 6 s" in evaluated  # an evaluation's event carries no ETA: the last one stays shown
    assert f"width:{100 * rf.progress('training', 10, 20):.1f}%" in html and 'class="bar live"' in html
    text = metrics_markdown(EVENTS, {"eval_loss_before": 4.8, "eval_loss_after": 2.4})
    assert "**tokens/s** 530 (non-padding)" in text and "4.8000 → 2.4000 (-50.0 %)" in text
    assert "**GPU memory** n/a" in text and "processes" not in text

    four_gpus = [*EVENTS, {"step": 12, "loss": 2.0, "gpu_mem_gb": 21.3, "mem_each_gb": [21.3, 20.9, 20.9, 21.0]}]
    text = metrics_markdown(four_gpus, {"world_size": 4})
    assert "**training processes** 4 (one per GPU)" in text
    assert "**GPU memory per GPU** 21.3 · 20.9 · 20.9 · 21.0 GB" in text and "**GPU memory** " not in text
    two_cpus = metrics_markdown([{"step": 1, "loss": 2.0, "mem_each_gb": [0.94, 0.88]}], {"world_size": 2})
    assert "**training processes** 2 · **memory per process** 0.9 · 0.9 GB" in two_cpus


def test_a_worker_error_is_shown_with_the_form_s_words(tmp_path, monkeypatch, capsys):
    """The worker is the CLI; in a worker it leaves hints neutral, and the Runs tab words them for the form."""
    from trainer.__main__ import main
    from trainer.runs.processes import failure_cause
    from trainer.runs.queue import Job
    from trainer.ui.runs_tab import status_markdown

    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer\nWhat is rain?,Water.\n")
    monkeypatch.setenv("PHI3_STUDIO_WORKER", "1")
    assert main(["data", "inspect", str(qa)]) == 2
    log = capsys.readouterr().err
    assert "set data.column_mapping to `question=user,answer=assistant`" in log and "--map" not in log
    job = Job(1, None, "qa", "failed", str(tmp_path), 0.0, error=failure_cause(log, 2))
    service = _service(tmp_path)
    shown = status_markdown(service, service.view(job))
    assert "set **Column mapping** to `question=user, answer=assistant`" in shown and "--map" not in shown
    assert "**Cause:** **Format:** cannot detect the format" in shown and "data.format" not in shown  # its label


def test_the_progress_bar_says_the_phase_and_moves_before_the_first_step():
    class Job:
        status = "running"

    shown = []
    for phase in ("starting", "preparing data", "loading the model", "evaluating before"):
        html = progress_html(Job(), [], {"phase": phase})
        assert f"{phase}…" in html and 'class="bar live"' in html  # stripes move while it is alive
        shown.append(float(html.split("width:")[1].split("%")[0]))
    assert 0 < shown[0] < shown[1] < shown[2] < shown[3]  # visible at once, and moving from phase to phase
    assert "pushing…" in progress_html(Job(), EVENTS, {"state": "succeeded", "push_state": "pushing"})
    assert "starting…" in progress_html(Job(), [], {})  # a worker that has not written its phase yet
    Job.status = "succeeded"
    done = progress_html(Job(), EVENTS, {"phase": "saving"})
    assert "width:100.0%" in done and "finished" in done and "live" not in done
    Job.status = "cancelled"
    stopped = progress_html(Job(), EVENTS, {"phase": "training"})
    assert "cancelled · step 10 / 20" in stopped and "live" not in stopped


def test_a_run_name_is_shown_as_text_never_as_a_link_image_or_heading(tmp_path):
    import re

    from trainer.runs.queue import Job
    from trainer.ui.run_overlay import diff_markdown
    from trainer.ui.runs_tab import status_markdown

    name = "# ![x](https://evil.example/x.png) [sign in again](https://phish.example) <img src=x>"
    service = _service(tmp_path)
    shown = status_markdown(service, service.view(Job(1, None, name, "succeeded", str(tmp_path), 0.0)))
    table = diff_markdown({name: preset_config("tiny-demo"), "b": preset_config("lora")}, {name: {}, "b": {}})
    for text in (shown.split("\n", 1)[1], table):  # (the headline's own "### Run #1" aside)
        assert not re.search(r"(?<!\\)[\[\]#]", text), text  # every [ ] # of the name escaped
        assert "<img" not in text and "&lt;img" in text


def test_the_runs_tab_log_leaves_out_library_noise_that_log_txt_keeps(tmp_path):
    from trainer.noise import for_people

    log = "\n".join(
        [
            "2026-12-07 03:44:27,101 INFO trainer.runs.folder: phase: loading the model",
            "/venv/lib/python3.11/site-packages/peft/peft_model.py:612: FutureWarning: `is_gradient_checkpointing` is "
            "deprecated and will be removed in v6.",
            "  warnings.warn(",
            "Loading weights: 100%|██████████| 15/15 [00:00<00:00, 831.69it/s]",
            "WARNING bitsandbytes.backends.cpu.ops: Failed to load CPU gemm_4bit_forward from kernels-community: x",
            "step 5/6  loss 4.3394  lr 2.40e-03  1267 tok/s  ETA 0 s",
            "error: data.allow_malformed: 1 of 7 rows (14.3 %) cannot be read (line 3: not JSON (Warning: x)).",
        ]
    )
    assert for_people(log).splitlines() == [
        "2026-12-07 03:44:27,101 INFO trainer.runs.folder: phase: loading the model",
        "step 5/6  loss 4.3394  lr 2.40e-03  1267 tok/s  ETA 0 s",
        "error: data.allow_malformed: 1 of 7 rows (14.3 %) cannot be read (line 3: not JSON (Warning: x)).",
    ]


PREFERENCE_EVENTS = [
    {"step": 0, "eval_loss": 0.693, "eval_rewards/margins": 0.0, "eval_rewards/accuracies": 0.0},
    {"step": 2, "loss": 0.69, "rewards/margins": 0.1, "rewards/accuracies": 0.5, "rewards/chosen": 0.06,
     "rewards/rejected": -0.04, "logps/chosen": -85.0, "logps/rejected": -0.5},
    {"step": 4, "loss": 0.3, "rewards/margins": 1.2, "rewards/accuracies": 1.0, "rewards/chosen": 0.9,
     "rewards/rejected": -0.3, "logps/chosen": -76.0, "logps/rejected": -3.5},
    {"step": 4, "eval_loss": 0.29, "eval_rewards/margins": 1.1, "eval_rewards/accuracies": 1.0},
]  # fmt: skip


def test_a_preference_run_charts_its_margin_accuracy_rewards_and_log_probabilities():
    from trainer.ui import preference_charts

    margin, accuracy, rewards, logps = preference_charts.updates(PREFERENCE_EVENTS)
    assert all(chart["visible"] for chart in (margin, accuracy, rewards, logps))
    first = margin["value"].head(2)  # each series' first row has no value: Gradio then knows it from the start
    assert first["series"].tolist() == ["train", "held out"] and first["value"].isna().all()
    rows = margin["value"].dropna().to_dict("records")  # train and held-out margins, by step
    assert rows == [
        {"step": 0, "value": 0.0, "series": "held out"},
        {"step": 2, "value": 0.1, "series": "train"},
        {"step": 4, "value": 1.2, "series": "train"},
        {"step": 4, "value": 1.1, "series": "held out"},
    ]

    def drawn(chart, series):
        return chart["value"].dropna().query(f"series == '{series}'")["value"].tolist()

    assert drawn(accuracy, "held out") == [0.0, 1.0]
    assert drawn(rewards, "chosen") == [0.06, 0.9] and drawn(rewards, "rejected") == [-0.04, -0.3]
    assert drawn(logps, "chosen") == [-85.0, -76.0]
    hidden = preference_charts.updates(EVENTS)  # an SFT run: the charts are hidden, and empty but numeric
    assert not any(chart["visible"] for chart in hidden)
    assert str(hidden[0]["value"].dtypes["value"]) == "float64" and hidden[0]["value"].dropna().empty


def test_a_preference_runs_metrics_give_the_held_out_accuracy_and_margin_before_and_after():
    status = {"preference_before": {"rewards/accuracies": 0.0, "rewards/margins": 0.0},
              "preference_after": {"rewards/accuracies": 1.0, "rewards/margins": 3.1}}  # fmt: skip
    text = metrics_markdown(PREFERENCE_EVENTS, status)
    assert "**held-out preference accuracy** 0.00 → 1.00" in text and "**reward margin** 0.00 → 3.10" in text
    assert "preference" not in metrics_markdown(EVENTS, {"eval_loss_before": 4.8})


def test_the_preference_and_grpo_settings_show_for_their_methods_only():
    from trainer.ui.train_tab import TrainTab

    shown = {
        m: [u["visible"] for u in TrainTab.show_method_sections(m)] for m in ("sft", "dpo", "kto", "orpo", "grpo")
    }
    assert shown == {  # [preference, grpo]
        "sft": [False, False],
        "dpo": [True, False],
        "kto": [True, False],
        "orpo": [True, False],
        "grpo": [False, True],
    }


def _grpo_event(step: int, reward: float, zero: float, **more) -> dict:
    return {"step": step, "loss": 0.01, "reward": reward, "reward_std": 0.1, "frac_reward_zero_std": zero,
            "rewards/length_target/mean": reward - 0.1, "rewards/length_target/std": 0.05,
            "rewards/words/mean": 0.2, "completions/mean_length": 10.0 + step, "completions/clipped_ratio": 0.0,
            **more}  # fmt: skip


GRPO_EVENTS = [
    _grpo_event(2, 0.4, 0.5),
    {"step": 2, "completions": [{"prompt": "What is rain?", "completion": "Rain is water.", "reward": 0.45,
                                 "rewards": {"length_target": 0.35, "words": 0.2}}]},
    _grpo_event(4, 0.6, 0.25, kl=0.01),
]  # fmt: skip


def test_a_grpo_run_charts_its_rewards_lengths_and_fractions_and_shows_its_completions():
    from trainer.ui import grpo_panel

    warning, reward, length, fractions, functions, table = grpo_panel.updates(GRPO_EVENTS)
    assert warning["visible"] is False and all(p["visible"] for p in (reward, length, fractions, functions, table))

    def drawn(chart, series):
        return chart["value"].dropna().query(f"series == '{series}'")["value"].tolist()

    assert drawn(reward, "mean") == [0.4, 0.6] and drawn(reward, "spread (std)") == [0.1, 0.1]
    assert drawn(functions, "length_target") == pytest.approx([0.3, 0.5]) and drawn(functions, "words") == [0.2, 0.2]
    assert set(functions["color_map"]) == {"length_target", "words"}
    assert drawn(length, "mean") == [12.0, 14.0] and drawn(fractions, "KL") == [0.01]
    assert drawn(fractions, "groups all equal") == [0.5, 0.25]
    assert table["value"] == [[2, "What is rain?", 0.45, "length_target 0.35, words 0.2", "Rain is water."]]
    hidden = grpo_panel.updates(EVENTS)  # an SFT run: nothing of it shows
    assert not any(p["visible"] for p in hidden)


def test_a_grpo_run_with_nothing_to_learn_from_shows_the_warning_and_its_held_out_reward():
    from trainer.ui import grpo_panel

    flat = [_grpo_event(2 * i, 0.0, 1.0) for i in range(1, 6)]
    warning = grpo_panel.updates(flat)[0]
    assert warning["visible"] and "every group of completions earned the same reward" in warning["value"]
    assert "raise num_generations or the temperature" in warning["value"]
    status = {"reward_before": {"reward": 0.483, "prompts": 24, "rewards/words": 0.1},
              "reward_after": {"reward": 0.742, "prompts": 24, "rewards/words": 0.3}}  # fmt: skip
    text = metrics_markdown(flat, status)
    assert "**mean reward on 24 held-out prompts** 0.483 → 0.742 (words 0.100 → 0.300)" in text
    assert "**held-out reward before** 0.483" in metrics_markdown(flat, {"reward_before": status["reward_before"]})
