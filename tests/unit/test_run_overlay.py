"""Runs side by side: loss curves of several runs on one chart, the settings that differ, owners checked."""

from __future__ import annotations

import pytest

from trainer.config import load_config, save_yaml
from trainer.runs import folder as rf
from trainer.runs.access import AccessError, Caller
from trainer.runs.queue import RunQueue
from trainer.runs.service import RunService
from trainer.runs.store import JobStore
from trainer.ui.run_overlay import compare, overlay_frame, settings_diff


def _run(store, tmp_path, folder, owner, overrides, losses):
    run_dir = tmp_path / "runs" / folder
    run_dir.mkdir(parents=True)
    save_yaml(load_config(preset="tiny-demo", overrides=overrides), run_dir / rf.CONFIG_FILE)
    for step, loss in enumerate(losses, start=1):
        rf.append_event(run_dir, {"step": step, "loss": loss})
    rf.append_event(run_dir, {"step": len(losses), "eval_loss": losses[-1]})
    rf.write_status(run_dir, "succeeded", eval_loss_before=4.0, eval_loss_after=losses[-1])
    job = store.create(run_dir, name=folder, owner=owner)
    store.update(job.id, status="succeeded")
    return str(job.id)


@pytest.fixture
def runs(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    ids = {
        "a": _run(store, tmp_path, "lr-high", "alice", ["learning_rate=0.003", "name=first try"], [3.0, 2.0]),
        "b": _run(store, tmp_path, "lr-low", "alice", ["learning_rate=0.0003", "r=8"], [3.5, 3.1, 2.9]),
        "bob": _run(store, tmp_path, "bobs", "bob", ["learning_rate=0.1"], [1.0]),
    }
    return RunService(RunQueue(store, python="/bin/false")), ids


def test_the_loss_curves_of_the_runs_share_one_chart(runs):
    manager, ids = runs
    train, evals, table = compare(manager, Caller("alice", None), [ids["a"], ids["b"]])
    labels = sorted(set(train["run"]))
    assert labels == [f"#{ids['a']} lr-high", f"#{ids['b']} lr-low"]
    assert train[train["run"] == labels[1]]["loss"].tolist() == [3.5, 3.1, 2.9]
    assert evals["eval_loss"].tolist() == [2.0, 2.9]
    assert "`training.learning_rate`" in table and "`lora.r`" in table
    assert "0.003" in table and "0.0003" in table and "4.0000 → 2.9000" in table
    assert "first try" not in table and "`run.name`" not in table  # a name is not a setting that shapes a run
    assert "`training.max_steps`" not in table  # shared settings are left out


def test_comparing_checks_every_run_s_owner(runs):
    manager, ids = runs
    with pytest.raises(AccessError, match="no such run"):
        compare(manager, Caller("alice", None), [ids["a"], ids["bob"]])  # bob's run: refused like a missing one
    with pytest.raises(AccessError, match="two or more"):
        compare(manager, Caller("alice", None), [ids["a"], ids["a"]])
    train, _, _ = compare(manager, Caller(None, None, local=True), [ids["a"], ids["bob"]])  # the local user sees all
    assert len(set(train["run"])) == 2


def test_settings_diff_hides_server_paths_and_keeps_config_order():
    a = load_config(preset="tiny-demo", overrides=["dataset_name=/data/uploads/alice/0123.jsonl", "r=4"])
    b = load_config(preset="tiny-demo", overrides=["r=8", "seed=7"])
    diff = dict(settings_diff({"a": a, "b": b}))
    assert list(diff) == ["data.dataset_name", "lora.r", "training.seed"]
    assert diff["data.dataset_name"] == ["0123.jsonl", "examples/pirate_chat.jsonl"]
    assert overlay_frame({}).dtypes["loss"] == "float64"


def test_compare_runs_adds_each_runs_evaluation_base_to_tuned(runs, tmp_path):
    manager, ids = runs
    _, _, table = compare(manager, Caller("alice", None), [ids["a"], ids["b"]])
    assert "(evaluation)" not in table  # neither run was evaluated: no row
    summary = {"prompts": 24, "base": {"chrf": 60.9, "bleu": 37.9}, "tuned": {"chrf": 92.1, "bleu": 90.9}}
    rf.write_json_atomic(tmp_path / "runs" / "lr-high" / rf.EVAL_DIR / rf.EVAL_SUMMARY_FILE, summary)
    _, _, table = compare(manager, Caller("alice", None), [ids["a"], ids["b"]])
    chrf = next(line for line in table.splitlines() if line.startswith("| **chrF** (evaluation)"))
    assert chrf == "| **chrF** (evaluation) | 60.9 → 92.1 (24 prompts) | — |"  # the second run has none
    assert "| **BLEU** (evaluation) | 37.9 → 90.9 (24 prompts) | — |" in table


def test_compare_runs_adds_the_judges_and_the_votes_win_rates(runs, tmp_path):
    manager, ids = runs
    judged = {
        "model": "acme/judge",
        "pairs": [],
        "summary": {"tuned": 8, "base": 2, "win_rate": 0.8, "interval": [0.49, 0.9433]},
    }
    rf.write_json_atomic(tmp_path / "runs" / "lr-low" / rf.EVAL_DIR / rf.EVAL_JUDGE_FILE, judged)
    manager.votes.store.record("lr-high", "ann", "hi", ("Ahoy", "hi"), "a", "a", "compare")
    _, _, table = compare(manager, Caller("alice", None), [ids["a"], ids["b"]])
    assert "| **judge**: tuned wins | — | 80 % (49–94 %, n=10) |" in table
    assert "| **blind votes**: tuned wins | 100 % (21–100 %, n=1) | — |" in table


def test_compare_runs_marks_the_best_run(runs):
    """A sweep's question: which run won, and by what (here the lowest eval loss after training: lr-high's 2.0)."""
    manager, ids = runs
    _, _, table = compare(manager, Caller("alice", None), [ids["a"], ids["b"]])
    assert "| **best** (lowest eval loss) | ★ |  |" in table
