"""The command line: help for every command, exit code 2 with a clear message on bad input, config show."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from trainer.__main__ import EXIT_BAD_INPUT, main
from trainer.config import preset_config
from trainer.paths import PROJECT_ROOT


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", [[], ["train"], ["data", "inspect"], ["demo"], ["config", "show"]])
def test_help_is_useful_for_every_command(command):
    out = _cli(*command, "--help")
    assert out.returncode == 0 and "usage: python -m trainer" in out.stdout
    assert len(out.stdout.splitlines()) > 5


def test_train_help_lists_a_flag_per_setting():
    out = _cli("train", "--help").stdout
    for flag in ("--learning-rate", "--lora-alpha", "--target-modules", "--dataset-name", "--load-in-4bit"):
        assert flag in out
    assert "Peak learning rate" in out and "min 1e-07" in out  # help and bounds come from RunConfig metadata


def test_config_show_prints_the_preset_yaml(capsys):
    assert main(["config", "show", "cookbook-qlora-notebook"]) == 0
    out = capsys.readouterr().out
    file = (PROJECT_ROOT / "examples" / "cookbook-qlora-notebook.yaml").read_text()
    assert yaml.safe_load(out) == yaml.safe_load(file)  # what the preset file says, key for key
    assert out.splitlines()[0] == file.splitlines()[0]  # "# preset cookbook-qlora-notebook: <description>"
    assert main(["config", "show", "tiny-demo", "--full"]) == 0
    full = yaml.safe_load(capsys.readouterr().out)
    assert full["training"]["max_steps"] == 80 and full["model"]["model_name_or_path"] == "tiny-phi3"
    assert full["lora"]["r"] == 16 and full["hub"]["private"] is True  # the defaults the file leaves out
    assert full == preset_config("tiny-demo").to_dict()


def test_config_list_names_every_preset(capsys):
    assert main(["config", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("lora", "qlora", "cookbook-sample-finetune", "tiny-demo"))


def test_train_with_bad_settings_exits_2_listing_every_problem(capsys):
    code = main(["train", "--preset", "tiny-demo", "--learning-rate", "0", "--set", "r=0", "--set", "nope=1"])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "training.learning_rate: 0.0 is below the minimum" in err
    assert "lora.r: 0 is below the minimum 1" in err
    assert "nope: unknown setting" in err


def test_data_inspect_previews_a_dataset(capsys):
    assert main(["data", "inspect", "examples/pirate_sharegpt.jsonl", "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "sharegpt" in out and "240" in out and "<|assistant|>" in out


@pytest.mark.slow  # a CLI process (seconds): the full suite, not the edit loop
def test_data_inspect_bad_file_exits_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    out = _cli("data", "inspect", str(bad))
    assert out.returncode == EXIT_BAD_INPUT
    assert out.stderr.startswith("error: ") and ".jsonl" in out.stderr and "Traceback" not in out.stderr


def test_data_inspect_unknown_columns_exits_2(tmp_path, capsys):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is rain?,Water.\n")
    assert main(["data", "inspect", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "question" in err and "answer" in err and "--map" in err
    assert main(["data", "inspect", str(path), "--map", "question=user", "--map", "answer=assistant"]) == 0
