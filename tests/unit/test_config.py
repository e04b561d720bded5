"""RunConfig: presets, YAML round trips, overrides, generated flags, and all-at-once validation."""

from __future__ import annotations

import copy
import pickle
import re
from pathlib import Path

import pytest
import yaml

from trainer.config import (
    PRESETS,
    ConfigError,
    HubConfig,
    RunConfig,
    diff_dict,
    find_field,
    from_dict,
    iter_fields,
    load_config,
    load_yaml,
    preset_config,
    save_yaml,
)
from trainer.paths import PROJECT_ROOT


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_validates(name):
    assert preset_config(name).problems() == []


@pytest.mark.parametrize("name", list(PRESETS))
def test_example_yaml_matches_preset(name):
    """examples/<preset>.yaml holds exactly the keys that differ from the defaults, and loads to the preset."""
    path = PROJECT_ROOT / "examples" / f"{name}.yaml"
    assert load_yaml(path) == preset_config(name)
    assert yaml.safe_load(path.read_text()) == diff_dict(preset_config(name))


def test_cookbook_presets_carry_the_cookbook_figures():
    lora = preset_config("cookbook-lora-notebook")
    assert (lora.training.learning_rate, lora.training.per_device_train_batch_size) == (1e-4, 8)
    assert (lora.training.gradient_accumulation_steps, lora.training.num_train_epochs) == (4, 3.0)
    assert (lora.training.max_length, lora.lora.r, lora.lora.lora_alpha, lora.lora.lora_dropout) == (512, 16, 16, 0.05)
    assert lora.lora.target_modules == ["o_proj", "down_proj"]  # what the notebook's code reaches on Phi-3
    qlora = preset_config("cookbook-qlora-notebook")
    assert qlora.model.load_in_4bit and qlora.model.bnb_4bit_quant_type == "nf4" and qlora.model.use_bnb_nested_quant
    assert (qlora.training.learning_rate, qlora.training.lr_scheduler_type, qlora.training.warmup_steps) == (
        5e-6,
        "cosine",
        0.2,
    )
    assert (qlora.training.per_device_train_batch_size, qlora.training.num_train_epochs) == (4, 1.0)
    sample = preset_config("cookbook-sample-finetune")
    assert (sample.training.learning_rate, sample.training.per_device_train_batch_size) == (5e-6, 4)
    assert (sample.training.gradient_accumulation_steps, sample.training.max_length) == (1, 2048)
    assert sample.training.packing and sample.lora.target_modules == ["all-linear"]
    assert (sample.lora.lora_alpha, sample.model.dtype, sample.model.pad_token) == (32, "bfloat16", "<unk>")


def test_yaml_round_trip(tmp_path):
    cfg = preset_config("cookbook-sample-finetune")
    path = save_yaml(cfg, tmp_path / "config.yaml")
    assert load_yaml(path) == cfg
    assert from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_copy_and_pickle_round_trip():
    cfg = preset_config("qlora")
    assert copy.deepcopy(cfg) == cfg and pickle.loads(pickle.dumps(cfg)) == cfg


def test_yaml_keys_are_named_as_in_trl_and_peft():
    from peft import LoraConfig
    from trl import DPOConfig, KTOConfig, ModelConfig, SFTConfig

    known = {f for cls in (SFTConfig, LoraConfig, ModelConfig) for f in cls.__dataclass_fields__}
    ours = {spec.name for spec in iter_fields() if spec.section in ("training", "lora", "model")}
    # settings that exist in TRL/PEFT use their exact names; the rest are ours (listed so the set stays deliberate)
    # (adapter_name_or_path: TRL's CLI has no setting to start from an adapter; trl_sft.yaml names it in a comment;
    # hub_kernels: whether libraries may fetch compute kernels from the Hub, which TRL leaves to the environment;
    # method: which TRL trainer runs, a choice TRL makes by command, `trl sft` or `trl dpo`)
    assert ours - known == {"sample_prompts", "sample_max_new_tokens", "adapter_name_or_path", "hub_kernels", "method"}
    preference = {spec.name for spec in iter_fields() if spec.section == "preference"}
    assert preference <= {f for cls in (DPOConfig, KTOConfig) for f in cls.__dataclass_fields__}


def test_set_overrides_win_over_file_and_preset(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  learning_rate: 1e-3\n  max_steps: 7\n")
    cfg = load_config(
        path, preset="tiny-demo", overrides=["learning_rate=5e-4", "lora.target_modules=qkv_proj,o_proj"]
    )
    assert cfg.training.learning_rate == 5e-4  # --set beats the file ("1e-3" is a string to YAML 1.1; coerced)
    assert cfg.training.max_steps == 7  # the file beats the preset (60)
    assert cfg.lora.target_modules == ["qkv_proj", "o_proj"]
    assert cfg.model.model_name_or_path == "tiny-phi3"  # the preset beats the defaults


def test_set_parses_types():
    cfg = load_config(
        preset="tiny-demo",
        overrides=["packing=true", "dataset_test_split=null", "column_mapping=q=user,a=assistant", "max_rows=100"],
    )
    assert cfg.training.packing is True and cfg.data.dataset_test_split is None
    assert cfg.data.column_mapping == {"q": "user", "a": "assistant"} and cfg.data.max_rows == 100


def test_invalid_values_are_all_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  learning_rate: 0\n  per_device_train_batch_size: 2.5\nlora:\n  r: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides=["lr_scheduler_type=sideways", "pad_token=<|end|>", "repo_id=not a repo"])
    problems = info.value.problems
    assert any(p.startswith("training.learning_rate: 0") and "minimum" in p for p in problems)
    assert any(p.startswith("training.per_device_train_batch_size: expected a whole number") for p in problems)
    assert any(p.startswith("lora.r: 0 is below the minimum 1") for p in problems)
    assert any(
        p.startswith("training.lr_scheduler_type: 'sideways' is not a choice. Use one of: linear") for p in problems
    )
    assert any(p.startswith("model.pad_token: <|end|> is a stop token") for p in problems)
    assert any(p.startswith("hub.repo_id: 'not a repo' has no namespace") for p in problems)
    assert any(p.startswith("data.dataset_name: empty") for p in problems)
    assert len(problems) == 7


def test_merged_push_needs_a_repo():
    cfg = preset_config("tiny-demo")
    cfg.hub.push_merged = True
    assert cfg.problems() == [
        "hub.push_merged: needs hub.repo_id (the merged model goes to <repo_id>-merged); set hub.repo_id."
    ]
    cfg.hub.repo_id = "alice/pirate"
    assert cfg.problems() == []


def test_unknown_keys_are_errors_naming_the_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("training:\n  lerning_rate: 1e-4\ntrainig:\n  seed: 1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert "training.lerning_rate: unknown setting. Did you mean training.learning_rate" in str(info.value)
    assert "trainig: unknown section. Did you mean training?" in str(info.value)


def test_unknown_preset_and_missing_file():
    presets = (
        "lora, qlora, dpo, qlora-dpo, grpo-gsm8k, phi3-medium-qlora, phi35-mini-lora, cookbook-lora-notebook, .*, "
        "tiny-demo, tiny-demo-dpo, tiny-demo-grpo"
    )
    with pytest.raises(ConfigError, match=f"unknown. Use one of: {presets}"):
        preset_config("lora-max")
    with pytest.raises(ConfigError, match="no such config file"):
        load_yaml(Path("/nonexistent/run.yaml"))


def test_a_name_two_sections_share_is_written_with_its_section():
    assert find_field("grpo.beta").key == "grpo.beta" and find_field("grpo_beta").key == "grpo.beta"
    assert find_field("preference.beta").flag == "--beta" and find_field("grpo.beta").flag == "--grpo-beta"
    with pytest.raises(ConfigError, match="preference.beta and grpo.beta share this name"):
        find_field("beta")
    assert find_field("num_generations").key == "grpo.num_generations"


def test_every_field_documents_itself():
    specs = iter_fields()
    assert len({s.unique_name for s in specs}) == len(specs), "flags and form IDs must be unique"
    assert len({s.key for s in specs}) == len(specs)
    for spec in specs:
        assert spec.meta["help"].strip(), spec.key
        assert spec.meta["label"], spec.key
        assert spec.get(RunConfig()) == spec.default


def test_find_field_by_leaf_or_dotted_key():
    assert find_field("learning_rate").key == "training.learning_rate"
    assert find_field("lora.r").name == "r"
    with pytest.raises(ConfigError, match="Did you mean"):
        find_field("learnig_rate")


@pytest.mark.parametrize(
    ("repo_id", "problem"),
    [
        ("alice/phi3-pirate", None),
        ("alice/modèle", "is not a valid repo ID (Repo id must use alphanumeric chars"),  # the Hub allows ASCII only
        ("alice/_draft", "is not a valid repo ID (Repo id must use alphanumeric chars"),  # our rule: starts alnum
        ("alice/bad--name", "is not a valid repo ID (Cannot have -- or .. in repo_id)"),
        ("phi3-lora", "has no namespace"),
    ],
)
def test_one_repo_id_rule_for_config_and_hub(repo_id, problem):
    from trainer.config import repo_id_problem
    from trainer.hub import HubError, check_repo_id

    found = repo_id_problem(repo_id)
    assert (found is None) if problem is None else (problem in found)
    if problem:
        with pytest.raises(HubError, match=re.escape(problem)):
            check_repo_id(repo_id)
        assert any(p == found for p in RunConfig(hub=HubConfig(repo_id=repo_id)).problems())


def test_bounds_are_inclusive_and_both_ends_are_checked():
    cfg = preset_config("tiny-demo")
    cfg.lora.r = 512  # the maximum itself is allowed
    assert cfg.problems() == []
    cfg.lora.r = 513
    assert cfg.problems() == ["lora.r: 513 is above the maximum 512. Use a value <= 512."]
    cfg.lora.r = None  # not optional: a value is required
    assert cfg.problems() == ["lora.r: a value is required. Set lora.r."]


def test_every_cross_field_rule_reports_its_problem():
    cfg = RunConfig()  # no dataset: the one thing the defaults leave open
    assert cfg.problems() == [
        "data.dataset_name: empty. Give a Hub dataset ID (user/name) or a local .jsonl/.csv file."
    ]
    cfg = preset_config("tiny-demo")
    cfg.lora.target_modules, cfg.training.max_steps, cfg.hub.push_checkpoints = [], 0, True
    cfg.data.format, cfg.model.model_name_or_path = "columns", " "
    assert [p.split(":")[0] for p in cfg.problems()] == [
        "model.model_name_or_path",
        "lora.target_modules",
        "training.max_steps",
        "data.format",
        "hub.push_checkpoints",
    ]
    assert "set data.column_mapping to `question=user,answer=assistant`" in cfg.problems()[3]
    cfg = preset_config("tiny-demo")
    cfg.data.column_mapping = {"q": "user", "a": "bot"}
    assert cfg.problems() == [
        "data.column_mapping: roles {'a': 'bot'} are not chat roles. Map each column to system, user or assistant "
        "(or a column holding a whole conversation to messages)."
    ]
    cfg.training.max_steps = 1  # one step is fine
    cfg.data.column_mapping = {}
    assert cfg.problems() == []


def test_an_unknown_key_far_from_any_setting_points_to_the_list():
    with pytest.raises(ConfigError) as info:
        find_field("zzzz")
    listing = "Run `python -m trainer config show lora --full` to list keys."
    assert info.value.problems == [f"zzzz: unknown setting. {listing}"]
    assert str(info.value) == f"Invalid config:\n  - zzzz: unknown setting. {listing}"


def test_yaml_keeps_the_section_order_and_unicode():
    cfg = preset_config("tiny-demo")
    cfg.data.system_prompt = "Réponds en français, moussaillon."
    text = cfg.to_yaml()
    assert [line[:-1] for line in text.splitlines() if not line.startswith(" ")] == [
        "model",
        "data",
        "lora",
        "training",
        "preference",
        "grpo",
        "hub",
        "run",
    ]
    assert "Réponds en français, moussaillon." in text  # readable, not \\u-escaped


def test_a_blank_repo_id_is_empty_not_a_missing_namespace():
    from trainer.config import repo_id_problem

    assert repo_id_problem("   ").startswith("hub.repo_id: empty.")


def test_problem_messages_in_full():
    from trainer.config import repo_id_problem

    assert repo_id_problem("alice/a b") == (
        "hub.repo_id: 'alice/a b' is not a valid repo ID (Repo id must use alphanumeric chars, '-', '_' or '.'. The "
        "name cannot start or end with '-' or '.' and the maximum length is 96). Use namespace/name with letters, "
        "digits, '-', '_' or '.' (e.g. alice/phi3-pirate-lora)."
    )
    cfg = preset_config("tiny-demo")
    cfg.hub.push_checkpoints, cfg.model.pad_token = True, "<|endoftext|>"
    cfg.data.column_mapping = {"q": "user"}
    assert cfg.problems() == [
        "model.pad_token: <|endoftext|> is a stop token, so the model would learn never to stop. Use <unk>.",
        "data.column_mapping: no column maps to assistant. Map the answer column to assistant.",
        "hub.push_checkpoints: needs hub.repo_id (where the checkpoints go); set hub.repo_id.",
    ]
    assert str(ConfigError(["a: one.", "b: two."])) == "Invalid config:\n  - a: one.\n  - b: two."


def test_every_text_mapping_and_list_setting_is_bounded_before_anything_reads_it():
    from trainer.config import RunConfig
    from trainer.config.rules import ENTRY_LIMIT, TEXT_LIMIT

    def problems(**changes) -> list[str]:
        cfg = load_config(preset="tiny-demo")
        for key, value in changes.items():
            section, name = key.split("__")
            setattr(getattr(cfg, section), name, value)
        return RunConfig.problems(cfg)

    assert problems() == []
    (long_name,) = problems(data__dataset_name="x" * 200_000)  # an OSError from the file system before
    assert long_name == f"data.dataset_name: 200,000 characters, more than the {TEXT_LIMIT} it takes. Shorten it."
    assert problems(data__dataset_name="x" * TEXT_LIMIT) == []
    assert "2,000 it takes" in problems(data__placeholders={"a": "v" * 100_000})[0]  # values: 2,000 characters
    assert problems(data__placeholders={"a": "v" * 2_000}) == []
    assert f"{ENTRY_LIMIT + 1} entries" in problems(data__placeholders={f"k{i}": "v" for i in range(101)})[0]
    assert "20,000 it takes" in problems(data__system_prompt="s" * 30_000_000)[0]
    assert "lora.target_modules" in problems(lora__target_modules=["o_proj"] * 500)[0]
