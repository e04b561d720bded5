"""Bad values are refused before any work, naming the field, in the web form and on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import LoraSettings, ModelConfig, load_config, preset_config
from trainer.ui.form import config_from_form, form_fields, widget_value


def _form(**changes) -> dict:
    cfg = preset_config("tiny-demo")
    values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()}
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("training.learning_rate", float("nan"), "training.learning_rate: nan is not a finite number"),
        ("training.learning_rate", float("inf"), "training.learning_rate: inf is not a finite number"),
        ("training.warmup_steps", "-inf", "training.warmup_steps: -inf is not a finite number"),
        ("training.seed", 2**40, "training.seed: 1099511627776 is more than this setting can hold"),
        ("training.max_steps", "1e400", "training.max_steps: expected a whole number, got '1e400'"),
        ("hub.repo_id", "alice/x..y", "hub.repo_id: 'alice/x..y' is not a valid repo ID (Cannot have -- or .."),
    ],
)
def test_the_form_refuses_values_no_run_can_use(key, value, problem):
    _, problems = config_from_form(_form(**{key: value}))
    assert any(p.startswith(problem) for p in problems), problems


def test_the_cli_refuses_them_too(capsys):
    from trainer.__main__ import main

    assert main(["train", "--preset", "tiny-demo", "--learning-rate", "nan", "--set", "seed=1e12"]) == 2
    err = capsys.readouterr().err
    assert "training.learning_rate: nan is not a finite number" in err and "training.seed:" in err


def test_target_modules_the_base_does_not_have_are_refused(tiny_model_path):
    from trainer.modeling import model_problems

    problems = model_problems(ModelConfig(model_name_or_path="tiny-phi3"), LoraSettings(target_modules=["q_proj"]))
    assert problems == [
        "lora.target_modules: q_proj is not a linear layer of tiny-phi3. Use some of down_proj, gate_up_proj, "
        "lm_head, o_proj, qkv_proj, or all-linear."
    ]


def test_a_base_that_is_missing_or_not_phi3_is_refused_from_its_config(tmp_path):
    from trainer.modeling import model_problems

    llama = tmp_path / "llama"
    llama.mkdir()
    llama_config = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}
    (llama / "config.json").write_text(json.dumps(llama_config))
    (problem,) = model_problems(ModelConfig(model_name_or_path=str(llama)), LoraSettings())
    assert problem.startswith(f"model.model_name_or_path: '{llama}' is a 'llama' model; this studio trains Phi-3")
    (problem,) = model_problems(ModelConfig(model_name_or_path=str(tmp_path / "nothing")), LoraSettings())
    assert problem.startswith(f"model.model_name_or_path: cannot read the config of '{tmp_path / 'nothing'}'")


def _long_prompts(tmp_path: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}] * 10
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prompts_that_fill_max_length_are_refused_before_queueing(tiny_model_path, tmp_path):
    from trainer.preflight import check_before_queueing

    cfg = load_config(preset="tiny-demo", overrides=[f"dataset_name={_long_prompts(tmp_path)}", "max_length=64"])
    problems = check_before_queueing(cfg, on_gpu=False)
    assert len(problems) == 1 and problems[0].startswith("training.max_length: every row's prompt is 20")


def test_prompts_that_fill_max_length_stop_a_run_before_its_model_loads(tiny_model_path, tmp_path, monkeypatch):
    import trainer.modeling
    from trainer.data import DataError
    from trainer.training import run

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(trainer.modeling, "load_base_model", no_model)
    cfg = load_config(preset="tiny-demo", overrides=[f"dataset_name={_long_prompts(tmp_path)}", "max_length=64"])
    with pytest.raises(DataError, match="so no reply fits in 64 tokens"):
        run(cfg, run_dir=tmp_path / "run")


def test_what_is_pushed_names_no_server_path(tmp_path, monkeypatch):
    from trainer.hub import model_card
    from trainer.hub import push as push_module
    from trainer.runs import folder as rf

    upload = tmp_path / "data" / "uploads" / "alice" / "0123456789abcdef.jsonl"
    cfg = preset_config("tiny-demo")
    cfg.data.dataset_name = str(upload)
    run_dir = tmp_path / "data" / "runs" / "r"
    (run_dir / rf.ADAPTER_DIR).mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run_dir / rf.ADAPTER_DIR / name).write_text("{}")
    rf.write_text_atomic(run_dir / rf.CONFIG_FILE, cfg.to_yaml())
    rf.write_status(run_dir, "succeeded")
    sent = {}
    monkeypatch.setattr(push_module, "check_push_access", lambda *a, **k: "alice")
    monkeypatch.setattr(push_module, "create_and_commit", lambda repo, files, *a: sent.update(files) or ("url", None))
    push_module.push_run(run_dir, "alice/pirate", "hf_token")
    published = sent[rf.CONFIG_FILE].decode() + model_card(run_dir, "alice/pirate")
    assert str(tmp_path) not in published and "dataset_name: 0123456789abcdef.jsonl" in published
