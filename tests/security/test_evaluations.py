"""Evaluations on a Space: a user evaluates only their own trained run, with their own token, on prompts they may
use (an upload of theirs, never a path from the browser); nobody else sees, cancels or downloads it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from trainer.runs import folder as rf
from trainer.runs.state import RunState

from .conftest import ALICE_OAUTH, BOB_OAUTH, oauth, profile, wait_for

ALICE, BOB = profile("alice"), profile("bob")


def _evaluate(space, run_id, who=ALICE, token=ALICE_OAUTH, source="held-out", upload=None, dataset="", rows=10):
    """The Evaluate button's handler, as Gradio calls it."""
    return space.fns["evaluate"](str(run_id), source, upload, dataset, "test", rows, 32, who, token and oauth(token))


def _evaluations(space):
    return [job for job in space.manager.store.list() if job.evaluation]


def test_an_evaluation_is_queued_for_its_owner_with_their_own_token(space):
    run = space.run_of("alice")
    message = _evaluate(space, run.id)
    assert message.startswith("**Evaluation queued**"), message
    (job,) = _evaluations(space)
    assert job.owner == "alice" and job.name == "evaluation of alice-run"
    assert job.run_dir == str(Path(run.run_dir) / "eval")
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == ALICE_OAUTH  # alice's token, never the Space's
    request = json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())
    assert request == {
        "source": "held-out",
        "path": None,
        "split": "test",
        "rows": 10,
        "max_new_tokens": 32,
        "batch_size": 8,
    }


def test_without_an_oauth_token_an_evaluation_never_borrows_the_spaces(space):
    run = space.run_of("bob")
    _evaluate(space, run.id, who=BOB, token=None)
    (job,) = _evaluations(space)
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == "<none>"


@pytest.mark.parametrize("who", ["bob", "visitor"])
def test_nobody_evaluates_another_users_run(space, who):
    run = space.run_of("alice")
    message = _evaluate(space, run.id, who=BOB if who == "bob" else None, token=BOB_OAUTH if who == "bob" else None)
    assert "Evaluation not started" in message
    assert ("not yours" if who == "bob" else "Sign in") in message
    assert _evaluations(space) == [] and not (Path(run.run_dir) / "eval").exists()


def test_an_evaluation_is_no_run_of_the_picker_and_its_id_acts_on_nothing(space):
    run = space.run_of("alice")
    _evaluate(space, run.id)
    (job,) = _evaluations(space)
    ids = [value for _, value in space.fns["refresh_picker"](None, ALICE)["choices"]]
    assert ids == [str(run.id)]  # the evaluation is shown inside its run, not as a run of its own
    for action in ("delete", "resume", "retry_push"):
        with pytest.warns(UserWarning, match="no such run, or not yours"):
            space.action(action)(str(job.id), ALICE, oauth(ALICE_OAUTH))


def test_another_user_cannot_see_cancel_or_download_an_evaluation(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # it stays queued
    run = space.run_of("alice")
    _evaluate(space, run.id)
    (job,) = _evaluations(space)
    with pytest.warns(UserWarning, match="not yours"):
        space.fns["cancel_eval"](str(run.id), BOB, oauth(BOB_OAUTH))
    assert space.manager.store.get(job.id).status == RunState.QUEUED
    shown = space.fns["refresh_eval"](str(run.id), {}, BOB)
    assert shown[:2] == ["", ""] and all(update["value"] is None for update in shown[2:7])
    with pytest.warns(UserWarning, match="not yours"):
        assert space.fns["download_eval"](str(run.id), BOB)["value"] is None
    space.fns["cancel_eval"](str(run.id), ALICE, oauth(ALICE_OAUTH))  # its owner can
    assert space.manager.store.get(job.id).status == RunState.CANCELLED


def test_a_file_to_evaluate_is_the_users_upload_kept_in_their_folder(space, tmp_path):
    run = space.run_of("alice")
    upload = tmp_path / "my prompts.jsonl"
    upload.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Ahoy"}]}\n')
    assert _evaluate(space, run.id, source="file", upload=str(upload)).startswith("**Evaluation queued**")
    (job,) = _evaluations(space)
    path = Path(json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())["path"])
    assert path.parent.parent == space.data_dir / "uploads" / "alice" and path.name == "my_prompts.jsonl"
    assert path.read_text() == upload.read_text()


@pytest.mark.parametrize("dataset", ["/etc/passwd", "../runs/bob-run/config.yaml", "BOB'S RUN FOLDER"])
def test_a_hub_dataset_to_evaluate_is_never_a_path_on_the_server(space, dataset):
    run = space.run_of("alice")
    dataset = space.run_of("bob").run_dir if dataset == "BOB'S RUN FOLDER" else dataset
    message = _evaluate(space, run.id, source="dataset", dataset=dataset)
    assert "Evaluation not started" in message and "Hub dataset ID" in message
    assert _evaluations(space) == []


def test_a_file_source_without_an_upload_is_refused(space):
    message = _evaluate(space, space.run_of("alice").id, source="file", upload=None)
    assert "Evaluation not started" in message and "upload a file" in message


def test_a_real_model_is_not_evaluated_on_a_cpu_and_bad_settings_are_named(space):
    run = space.run_of("alice")
    (Path(run.run_dir) / rf.CONFIG_FILE).write_text("model:\n  model_name_or_path: microsoft/Phi-3-mini-4k-instruct\n")
    message = _evaluate(space, run.id)
    assert "only on a GPU, and this machine has none" in message
    assert "rows 0: a whole number from 1 to 1000" in _evaluate(space, run.id, rows=0)
    assert _evaluations(space) == []


def test_one_evaluation_of_a_run_at_a_time_and_they_count_against_the_job_limit(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    monkeypatch.setenv("PHI3_STUDIO_MAX_ACTIVE_RUNS", "1")
    from trainer.runs.access import Limits

    space.manager.limits = Limits.from_env()
    run = space.run_of("alice")
    assert _evaluate(space, run.id).startswith("**Evaluation queued**")
    assert "already has an evaluation queued or running" in _evaluate(space, run.id)
    outputs = space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))  # a training run is one job more
    assert "the most this Space allows per user" in outputs[0]


def test_deleting_a_run_takes_its_evaluations_but_not_one_under_way(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    run = space.run_of("alice")
    _evaluate(space, run.id)
    with pytest.warns(UserWarning, match="cancel it before deleting the run"):
        space.action("delete")(str(run.id), ALICE, oauth(ALICE_OAUTH))
    assert Path(run.run_dir).is_dir()
    space.fns["cancel_eval"](str(run.id), ALICE, oauth(ALICE_OAUTH))
    space.action("delete")(str(run.id), ALICE, oauth(ALICE_OAUTH))
    assert _evaluations(space) == [] and not Path(run.run_dir).exists()


def test_results_download_as_a_copy_of_the_results_only(space):
    run = space.run_of("alice")
    folder = Path(run.run_dir) / "eval"
    folder.mkdir()
    summary = {"prompts": 1, "base": {"chrf": 10.0}, "tuned": {"chrf": 50.0}}
    rf.write_json_atomic(folder / "summary.json", summary)
    rf.write_json_atomic(folder / "results.json", {"rows": []})
    (folder / "log.txt").write_text("a log line naming /data/runs/alice-run")
    path = Path(space.fns["download_eval"](str(run.id), ALICE)["value"])
    assert space.data_dir not in path.parents
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["results.json", "summary.json"]  # no log, no request, no status
        assert json.loads(archive.read("summary.json")) == summary


def test_a_run_is_evaluated_only_once_it_has_trained(space):
    run = space.run_of("alice")
    space.manager.store.update(run.id, status=RunState.RUNNING)
    message = _evaluate(space, run.id)
    assert "is running: it can be evaluated once it has trained and saved its adapter" in message
    assert _evaluations(space) == []


def test_judging_is_on_the_users_own_account_and_their_own_evaluated_run(space):
    run = space.run_of("alice")
    judge = space.fns["judge"]
    args = ("acme/judge-70b", "Be fair.", 10, None)
    assert "has no evaluation yet" in judge(str(run.id), *args, ALICE, oauth(ALICE_OAUTH))
    rows = [{"prompt": "hi", "reference": "Ahoy", "base": {"text": "hi"}, "tuned": {"text": "Ahoy"}}]
    rf.write_json_atomic(Path(run.run_dir) / rf.EVAL_DIR / rf.EVAL_RESULTS_FILE, {"rows": rows})
    assert "not yours" in judge(str(run.id), *args, BOB, oauth(BOB_OAUTH))
    assert "sign in again to give the app your token" in judge(str(run.id), *args, ALICE, None)  # never the Space's
    assert _evaluations(space) == []
    assert judge(str(run.id), *args, ALICE, oauth(ALICE_OAUTH)).startswith("**Judging queued**")
    (job,) = _evaluations(space)
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == ALICE_OAUTH
    request = json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())
    assert request["judge"]["model"] == "acme/judge-70b" and request["judge"]["rubric"] == "Be fair."


def test_benchmarks_from_the_web_are_the_offered_tasks_on_ones_own_run(space):
    run = space.run_of("alice")
    start = space.fns["run_benchmarks"]
    assert "not yours" in start(str(run.id), ["arc_easy"], 10, BOB, oauth(BOB_OAUTH))
    assert "mytask not offered here" in start(str(run.id), ["mytask"], 10, ALICE, oauth(ALICE_OAUTH))
    assert "limit 0" in start(str(run.id), ["arc_easy"], 0, ALICE, oauth(ALICE_OAUTH))
    assert _evaluations(space) == []
    assert start(str(run.id), ["arc_easy", "gsm8k"], 10, ALICE, oauth(ALICE_OAUTH)).startswith("**Benchmarks queued**")
    (job,) = _evaluations(space)
    request = json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())
    assert request["benchmarks"]["tasks"] == ["arc_easy", "gsm8k"] and request["benchmarks"]["include_path"] is None
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == ALICE_OAUTH


def test_the_service_never_takes_a_task_folder_from_a_caller(space):
    from trainer.runs.service import BenchmarkSettings, RefusedRun

    run = space.run_of("alice")
    service = space.fns["run_benchmarks"].__self__.service
    alice = service.caller("alice", ALICE_OAUTH)
    sneaky = BenchmarkSettings(tasks=["mytask"], limit=5, include_path=str(space.data_dir))
    with pytest.raises(RefusedRun, match="mytask not offered here"):  # a folder of one's own tasks is not honoured
        service.evals.benchmarks(alice, str(run.id), sneaky)
    service.evals.benchmarks(alice, str(run.id), BenchmarkSettings(["arc_easy"], 5, include_path=str(space.data_dir)))
    (job,) = _evaluations(space)
    assert json.loads((Path(job.run_dir) / rf.REQUEST_FILE).read_text())["benchmarks"]["include_path"] is None
