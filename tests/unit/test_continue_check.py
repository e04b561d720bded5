"""Continuing from an adapter is checked from configs alone, before weights load: there, finished, LoRA, same base."""

from __future__ import annotations

import json

import pytest

from trainer.config import ConfigError, ModelConfig, load_config
from trainer.modeling import adapter_problems, adapter_source
from trainer.runs import folder as rf

PHI3 = "microsoft/Phi-3-mini-4k-instruct"


def _run_folder(path, base: str = PHI3, adapter: dict | None = None, finished: bool = True):
    """A run folder as training leaves it (config.yaml, adapter/), without real weights."""
    (path / rf.ADAPTER_DIR).mkdir(parents=True)
    (path / rf.CONFIG_FILE).write_text(f"model:\n  model_name_or_path: {base}\n")
    config = adapter or {"peft_type": "LORA", "base_model_name_or_path": "/somewhere/else", "r": 8}
    (path / rf.ADAPTER_DIR / "adapter_config.json").write_text(json.dumps(config))
    if finished:
        (path / rf.ADAPTER_DIR / "adapter_model.safetensors").write_bytes(b"weights")
    return path


def test_an_adapter_of_another_base_is_refused_with_both_names(tmp_path):
    run = _run_folder(tmp_path / "run")
    (problem,) = adapter_problems(ModelConfig(model_name_or_path="tiny-phi3", adapter_name_or_path=str(run)))
    assert problem.startswith("model.adapter_name_or_path: ")
    assert f"was trained on {PHI3}, but this run's base model is tiny-phi3" in problem
    assert f"set model.model_name_or_path to `{PHI3}`" in problem
    assert adapter_problems(ModelConfig(model_name_or_path=PHI3, adapter_name_or_path=str(run))) == []
    assert adapter_problems(ModelConfig(model_name_or_path=PHI3)) == []  # a fresh adapter: nothing to check


def test_run_refuses_a_mismatch_before_loading_anything_or_making_a_folder(tmp_path, monkeypatch):
    import trainer.modeling
    from trainer.training import run

    def never(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(trainer.modeling, "load_base_model", never)
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", never)
    monkeypatch.setattr("peft.PeftModel.from_pretrained", never)
    cfg = load_config(preset="tiny-demo", overrides=[f"model.adapter_name_or_path={_run_folder(tmp_path / 'run')}"])
    before = set((rf.data_dir() / "runs").glob("*"))
    with pytest.raises(ConfigError, match=f"trained on {PHI3}, but this run's base model is tiny-phi3"):
        run(cfg)
    assert set((rf.data_dir() / "runs").glob("*")) == before


def test_check_before_queueing_refuses_it_too(tmp_path):
    from trainer.preflight import check_before_queueing

    cfg = load_config(preset="tiny-demo", overrides=[f"model.adapter_name_or_path={_run_folder(tmp_path / 'r')}"])
    assert any("this run's base model is tiny-phi3" in p for p in check_before_queueing(cfg, on_gpu=False))


def _broken(run):
    (run / rf.ADAPTER_DIR / "adapter_config.json").write_text("{not json")
    return run


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "nowhere", "is not a folder here, nor a Hub repo ID"),
        (lambda p: _run_folder(p / "r", base="tiny-phi3", finished=False), "has no saved adapter"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "has no adapter_config.json, so it is not an adapter"),
        (lambda p: _run_folder(p / "r", "tiny-phi3", {"peft_type": "IA3"}), "is a IA3 adapter; only LoRA"),
        (lambda p: _broken(_run_folder(p / "r", "tiny-phi3")), "cannot read"),
        (lambda p: "alice/pirate-adapter", "cannot read the adapter alice/pirate-adapter (Hugging Face Hub: offline"),
    ],
)
def test_a_missing_unfinished_or_unreadable_adapter_is_refused(tmp_path, make, expected):
    name = str(make(tmp_path))
    (problem,) = adapter_problems(ModelConfig(model_name_or_path="tiny-phi3", adapter_name_or_path=name))
    assert problem.startswith("model.adapter_name_or_path: ") and expected in problem, problem


def test_a_run_folder_resolves_to_its_adapter_and_a_tiny_adapter_to_its_base(tmp_path):
    from trainer.tools.tiny import cache_root, recipe_hash

    run = _run_folder(tmp_path / "run", base="tiny-phi3")
    for name in (run, run / rf.ADAPTER_DIR):  # the run folder, or its adapter/ folder: the same run
        source = adapter_source(str(name))
        assert (source.load_from, source.base, source.run_dir) == (str(run / rf.ADAPTER_DIR), "tiny-phi3", run)
    folder = tmp_path / "adapter-only"  # an adapter folder names the folder the tiny model was built in
    folder.mkdir()
    tiny = str(cache_root() / f"tiny-phi3-{recipe_hash()}")
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": tiny}))
    assert adapter_problems(ModelConfig(model_name_or_path="tiny-phi3", adapter_name_or_path=str(folder))) == []


def test_the_card_names_a_parent_by_its_repo_or_its_name():
    from trainer.hub.card import continued_from

    assert continued_from({}) == ""
    assert continued_from({"parent_run": {"name": "v1", "repo_id": "alice/v1"}}) == (
        "[alice/v1](https://huggingface.co/alice/v1)"
    )
    assert continued_from({"parent_run": {"name": "pirates", "repo_id": None}}) == "the run `pirates`"
    assert continued_from({"parent_run": {"name": "a `b`\nc"}}) == "the run `` a `b` c ``"  # code stays code
