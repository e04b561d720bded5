"""trl_sft.yaml: the run's settings as flat keys that stock `trl sft` knows, with TRL 1.16's pitfalls handled."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import yaml

from trainer.config import load_config
from trainer.trl_export import TRL_FILE, header, trl_settings, unknown_keys, write_trl_export


def _settings(*overrides: str, on_gpu: bool = False, dtype: str = "float32", has_eval: bool = True) -> dict:
    cfg = load_config(preset="tiny-demo", overrides=list(overrides))
    return trl_settings(cfg, model_path="/models/tiny", dtype=dtype, on_gpu=on_gpu, has_eval=has_eval)


def test_every_key_is_a_field_trl_sft_knows_and_peft_is_on():
    s = _settings()
    assert unknown_keys(s) == []  # an unknown key would be handed to accelerate launch as an argument
    assert unknown_keys({**s, "model": {}}) == ["model"]  # config.yaml's nested sections are refused, as by TRL
    assert s["use_peft"] is True  # without it TRL fine-tunes every weight, silently
    assert (s["lora_r"], s["lora_alpha"], s["lora_dropout"]) == (16, 32, 0.0)
    assert s["lora_target_modules"] == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert s["model_name_or_path"] == "/models/tiny" and s["dtype"] == "float32"  # TRL's dtype default is float32
    assert s["dataset_name"] == "trl_data" and (s["dataset_train_split"], s["dataset_test_split"]) == ("train", "test")
    assert s["pad_token"] == "<unk>" and s["report_to"] == "none" and s["output_dir"] == "trl-output"


def test_the_pitfalls_of_trl_1_16():
    assert "attn_implementation" not in _settings()  # "auto" is not a value TRL accepts
    assert _settings("attn_implementation=sdpa")["attn_implementation"] == "sdpa"
    free = _settings()  # the demo is padding-free: TRL refuses padding_free together with max_length
    assert free["padding_free"] is True and free["max_length"] is None
    padded = _settings("padding_free=false")
    assert padded["padding_free"] is False and padded["max_length"] == 128
    packed = _settings("packing=true")  # packing already avoids padding: as the run does, padding_free is off
    assert packed["packing"] is True and packed["padding_free"] is False and packed["max_length"] == 128
    cpu = _settings()
    assert cpu["use_cpu"] is True and cpu["bf16"] is False and cpu["fp16"] is False  # TRL's bf16 default is True
    gpu = _settings(on_gpu=True, dtype="bfloat16")
    assert gpu["use_cpu"] is False and gpu["bf16"] is True and gpu["dtype"] == "bfloat16"
    assert _settings(has_eval=False)["eval_strategy"] == "no" and _settings()["eval_strategy"] == "steps"
    assert "bnb_4bit_quant_type" not in _settings()
    q = _settings("load_in_4bit=true")
    assert (q["load_in_4bit"], q["bnb_4bit_quant_type"], q["use_bnb_nested_quant"]) == (True, "nf4", True)


def test_the_training_values_are_the_ones_the_run_hands_sftconfig(tmp_path):
    """The export and the run's own SFTConfig agree on every SFTConfig field both set."""
    from trl import SFTConfig

    from trainer.methods import sft_config

    overrides = ["learning_rate=1.5e-4", "max_steps=33", "warmup_steps=0.25", "gradient_checkpointing=true", "seed=7"]
    for padding_free in (True, False):
        cfg = load_config(preset="tiny-demo", overrides=[*overrides, f"padding_free={padding_free}"])
        exported = trl_settings(cfg, model_path="m", dtype="float32", on_gpu=False, has_eval=True)
        args = sft_config(cfg, tmp_path, has_eval=True, padding_free=padding_free)
        # (the run pads with <unk> through its tokenizer, trl sft through SFTConfig.pad_token: checked above)
        fields = {f.name for f in dataclasses.fields(SFTConfig)} - {"output_dir", "report_to", "pad_token"}
        differ = {k: (v, getattr(args, k)) for k, v in exported.items() if k in fields and getattr(args, k) != v}
        assert differ == {}


def test_trl_sft_reads_the_file_with_nothing_left_for_accelerate(tmp_path):
    """TRL's own parser (the one `trl sft` uses) takes every key; none is passed on to accelerate."""
    from trl.scripts.sft import make_parser

    path = tmp_path / TRL_FILE
    path.write_text(yaml.safe_dump(_settings("load_in_4bit=true", "attn_implementation=eager")), encoding="utf-8")
    script, training, model, _, to_accelerate, _ = make_parser().parse_args_and_config(
        ["--config", str(path)], return_remaining_strings=True, separate_remaining_strings=True
    )
    assert to_accelerate == []
    assert model.use_peft and model.lora_r == 16 and model.load_in_4bit and model.attn_implementation == "eager"
    assert script.dataset_name == "trl_data" and training.use_cpu and training.max_length is None
    assert training.padding_free and training.assistant_only_loss and training.learning_rate == 0.003


def test_text_a_user_wrote_cannot_leave_the_comment_block():
    cfg = load_config(preset="tiny-demo", overrides=["system_prompt=Be a pirate.\nmax_steps: 999"])
    cfg.run.name = "x\nuse_peft: false"
    text = header(cfg, "messages", {"train": 3, "test": 1}, on_gpu=False)
    assert all(line.startswith("# ") for line in text.splitlines())
    assert yaml.safe_load(text + "use_peft: true\n") == {"use_peft": True}
    assert '"Be a pirate.\\nmax_steps: 999"' in text


def test_the_prepared_rows_are_written_as_messages_beside_the_file(tmp_path, tiny_model_path):
    import datasets

    row = [{"role": "user", "content": "Hi", "name": None}, {"role": "assistant", "content": "Ahoy!", "name": None}]
    prepared = SimpleNamespace(train=datasets.Dataset.from_list([{"messages": row}] * 3), eval=None, format="alpaca")
    cfg = load_config(preset="tiny-demo", overrides=["system_prompt=Be a pirate."])
    path = write_trl_export(cfg, tmp_path, prepared, on_gpu=False)
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert settings["model_name_or_path"] == str(tiny_model_path)  # tiny-phi3 is no Hub ID: its built folder
    assert settings["eval_strategy"] == "no" and not (tmp_path / "trl_data" / "test.jsonl").exists()
    lines = (tmp_path / "trl_data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    clean = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy!"}]  # no empty keys
    assert len(lines) == 3 and yaml.safe_load(lines[0]) == {"messages": clean}
    text = path.read_text(encoding="utf-8")
    assert 'system prompt "Be a pirate."' in text and "format auto (read as alpaca)" in text


@pytest.mark.parametrize("key", ["use_peft", "lora_r", "use_cpu", "dataset_name"])
def test_a_setting_the_run_depends_on_is_never_left_to_trl_defaults(key):
    assert key in _settings()


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_a_preference_run_writes_what_trl_dpo_or_kto_reads(method, tmp_path):
    """TRL's own parser for `trl dpo` / `trl kto` takes every key; the values are the ones the run's trainer got."""
    import importlib

    from trainer.methods import preference_config

    cfg = load_config(preset="tiny-demo-dpo", overrides=[f"training.method={method}", "preference.beta=0.25"])
    settings = trl_settings(cfg, model_path="m", dtype="float32", on_gpu=False, has_eval=True)
    assert unknown_keys(settings, method) == [] and unknown_keys(settings) != []  # not SFTConfig's keys
    path = tmp_path / f"trl_{method}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    parser = importlib.import_module(f"trl.scripts.{method}").make_parser()
    script, training, model, _, to_accelerate, _ = parser.parse_args_and_config(
        ["--config", str(path)], return_remaining_strings=True, separate_remaining_strings=True
    )
    assert to_accelerate == [] and model.use_peft and script.dataset_name == "trl_data"
    ran = preference_config(cfg, tmp_path, has_eval=True)  # what the run handed TRL's trainer
    for key in ("beta", "learning_rate", "max_length", "per_device_train_batch_size", "lr_scheduler_type"):
        assert getattr(training, key) == getattr(ran, key) and key in settings, key
    assert training.beta == 0.25 and ("padding_free" not in settings) and ("packing" not in settings)
    if method == "dpo":
        assert training.loss_type == ["sigmoid"] and training.pad_token == "<unk>"
    else:
        assert (training.desirable_weight, training.undesirable_weight) == (1.0, 1.0) and "pad_token" not in settings


def test_orpo_writes_no_file_for_a_command_trl_does_not_have(tmp_path):
    import datasets

    cfg = load_config(preset="tiny-demo-dpo", overrides=["training.method=orpo"])
    rows = datasets.Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    prepared = SimpleNamespace(train=rows, eval=None, format="prompt_pairs")
    assert write_trl_export(cfg, tmp_path, prepared, on_gpu=False) is None
    assert not list(tmp_path.iterdir())
