"""Continue training and Download for TRL on a Space: only the caller's own runs, named by id, never by a path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import gradio as gr
import pytest

from trainer.config import preset_config
from trainer.runs.access import Caller
from trainer.runs.service import RunService
from trainer.ui.form import form_fields

from .conftest import ALICE_OAUTH, oauth, profile

ALICE, BOB = profile("alice"), profile("bob")
ADAPTER_FIELD = "model.adapter_name_or_path"


def _form_value(outputs: list, key: str):
    index = [spec.key for spec in form_fields()].index(key)
    return outputs[2 + index]["value"]


def test_continue_fills_the_train_form_from_the_callers_own_finished_run_only(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    outputs = space.fns["continue_training"](str(alice_run.id), ALICE)
    assert outputs[0].selected == "train" and outputs[1].open  # the Train tab opens, filled in, Advanced open
    assert _form_value(outputs, ADAPTER_FIELD) == f"run #{alice_run.id}"  # an id, never the server's path
    assert _form_value(outputs, "run.name") == "alice-run (continued)"
    assert _form_value(outputs, "model.model_name_or_path") == "tiny-phi3"
    with pytest.warns(UserWarning, match="no such run, or not yours"):
        refused = space.fns["continue_training"](str(bob_run.id), ALICE)
    assert refused == [gr.skip()] * len(refused)  # another user's run: nothing of it reaches the form
    with pytest.warns(UserWarning, match="Sign in"):
        space.fns["continue_training"](str(alice_run.id), None)  # a signed-out visitor
    space.manager.store.update(alice_run.id, status="running")
    with pytest.warns(UserWarning, match="it can be continued once it has trained and saved its adapter"):
        space.fns["continue_training"](str(alice_run.id), ALICE)


def test_continue_with_dpo_fills_a_dpo_stage_from_the_callers_own_finished_run_only(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    outputs = space.fns["continue_with_dpo"](str(alice_run.id), ALICE)
    assert outputs[0].selected == "train"
    assert _form_value(outputs, "training.method") == "dpo"
    assert _form_value(outputs, ADAPTER_FIELD) == f"run #{alice_run.id}"  # the parent: the start and the reference
    assert _form_value(outputs, "data.dataset_name") == "examples/pirate_pairs.jsonl"  # the tiny model's DPO preset
    assert _form_value(outputs, "run.name") == "alice-run (DPO)"
    with pytest.warns(UserWarning, match="no such run, or not yours"):
        refused = space.fns["continue_with_dpo"](str(bob_run.id), ALICE)
    assert refused == [gr.skip()] * len(refused)  # another user's run cannot be continued with DPO
    with pytest.warns(UserWarning, match="Sign in"):
        assert space.fns["continue_with_dpo"](str(alice_run.id), None)[0] == gr.skip()  # a signed-out visitor


def test_start_resolves_the_run_id_for_its_owner_only(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    outputs = space.fns["start"](space.form(**{ADAPTER_FIELD: f"run #{alice_run.id}"}), ALICE, oauth(ALICE_OAUTH))
    assert outputs[0] == "", outputs[0]
    job = space.manager.store.get(int(outputs[-1]["value"]))
    assert f"adapter_name_or_path: {alice_run.run_dir}" in (Path(job.run_dir) / "config.yaml").read_text()
    for typed in (f"run #{bob_run.id}", bob_run.run_dir, f"{bob_run.run_dir}/adapter", "../runs/bob-run"):
        refused = space.fns["start"](space.form(**{ADAPTER_FIELD: typed}), ALICE, oauth(ALICE_OAUTH))
        assert "Continue from adapter" in refused[0] and "queued" not in refused[0], typed
    assert len(space.manager.store.list("alice")) == 2  # alice-run and the one run from her own parent


def test_locally_the_person_at_the_machine_may_name_a_folder(space, tmp_path):
    local = Caller(name=None, token=None, admin=True, local=True)
    cfg = preset_config("tiny-demo")
    cfg.model.adapter_name_or_path = str(tmp_path)
    resolve_parent = RunService(space.manager).resolve_parent
    assert resolve_parent(local, cfg) is None and cfg.model.adapter_name_or_path == str(tmp_path)
    cfg.model.adapter_name_or_path = f"run #{space.run_of('bob').id}"  # locally every run is the user's
    assert resolve_parent(local, cfg) is None
    assert cfg.model.adapter_name_or_path == space.run_of("bob").run_dir


def test_download_for_trl_serves_a_copy_of_the_callers_own_run_only(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    for job in (alice_run, bob_run):
        (Path(job.run_dir) / "trl_data").mkdir()
        (Path(job.run_dir) / "trl_data" / "train.jsonl").write_text(f'{{"messages": "{job.name}"}}\n')
        (Path(job.run_dir) / "trl_sft.yaml").write_text("dataset_name: trl_data\n")
    with pytest.warns(UserWarning, match="not yours"):
        assert space.fns["download_trl"](str(bob_run.id), ALICE)["value"] is None
    path = Path(space.fns["download_trl"](str(alice_run.id), ALICE)["value"])
    assert space.data_dir not in path.parents  # made for this request, never a data-dir file
    with zipfile.ZipFile(path) as archive:
        assert archive.read("trl_data/train.jsonl") == b'{"messages": "alice-run"}\n'
        assert archive.read("trl_sft.yaml") == b"dataset_name: trl_data\n"
