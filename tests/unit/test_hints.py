"""Fixes are written for where the user is: flags on the command line, field labels in the web form."""

from __future__ import annotations

import pytest

from trainer.__main__ import EXIT_BAD_INPUT, _config_from_args, main, make_parser
from trainer.config import hint
from trainer.config.hints import render_hints
from trainer.data import DataError, normalise
from trainer.ui.form import problems_markdown


def _unknown_columns_error() -> str:
    with pytest.raises(DataError) as info:
        normalise([{"question": "What is rain?", "answer": "Water."}], "auto")
    return str(info.value)


def test_a_data_error_names_settings_neutrally_and_each_front_end_renders_them():
    message = _unknown_columns_error()
    assert "set data.column_mapping to `question=user,answer=assistant`" in message and "--" not in message
    cli = render_hints(message, "cli")
    assert "pass --map question=user --map answer=assistant" in cli
    assert "data.column_mapping to" not in cli
    ui = problems_markdown([message])
    assert "set **Column mapping** to `question=user, answer=assistant`" in ui
    assert "--map" not in ui and "--format" not in ui


def test_hints_render_every_setting_by_its_flag_or_label():
    assert render_hints(hint("training.max_length", 512), "cli") == "pass --max-length 512"
    assert render_hints(hint("training.max_length", 512), "ui") == "set **Max length** to `512`"
    assert render_hints("set nothing.here to `1`", "cli") == "set nothing.here to `1`"  # not a setting: untouched


def test_train_and_data_inspect_take_the_same_data_flags():
    parser = make_parser()
    for command in (["train"], ["data", "inspect", "examples/pirate_chat.jsonl"]):
        args = parser.parse_args(
            [
                *command,
                "--preset",
                "tiny-demo",
                "--dataset-config",
                "main",
                "--dataset-train-split",
                "train[:50]",
                "--map",
                "q=user",
                "--map",
                "a=assistant",
                "--max-length",
                "256",
            ]
        )
        cfg = _config_from_args(args)
        assert cfg.data.dataset_config == "main" and cfg.data.dataset_train_split == "train[:50]"
        assert cfg.data.column_mapping == {"q": "user", "a": "assistant"} and cfg.training.max_length == 256


def test_data_inspect_reads_a_config_file_and_a_bad_map_exits_2(tmp_path, capsys):
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer\nWhat is rain?,Water.\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  dataset_name: {qa}\n  column_mapping: {{question: user, answer: assistant}}\n")
    assert main(["data", "inspect", "--config", str(config), "--rows", "1"]) == 0
    assert "format: columns" in capsys.readouterr().out
    assert main(["data", "inspect", str(qa), "--map", "question"]) == EXIT_BAD_INPUT
    assert "--map question: expected COLUMN=ROLE" in capsys.readouterr().err


def test_only_hints_are_rendered_and_map_keeps_odd_column_names(capsys):
    text = "--set data.format alpaca: expected key=value"
    assert render_hints(text, "cli") == text  # "set" inside a flag is not a hint
    args = make_parser().parse_args(
        ["data", "inspect", "x.csv", "--map", "what, why=user", "--map", "answer: final=assistant"]
    )
    assert _config_from_args(args).data.column_mapping == {"what, why": "user", "answer: final": "assistant"}
