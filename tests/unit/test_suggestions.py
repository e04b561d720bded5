"""Every fix the data loader suggests works when run as printed (issue 15): the CLI's own error text is parsed for
its `pass --flag value` suggestions, which are added to the same command, and the command then succeeds."""

from __future__ import annotations

import json
import re

import pytest

from trainer.__main__ import EXIT_BAD_INPUT, main

SUGGESTION = re.compile(r"pass ((?:--[\w-]+(?: (?!pass\b|and\b)[^\s,;)]+)?(?: |(?=[,;).]|$)))+)")


def suggested_flags(text: str) -> list[str]:
    """All `pass ...` flags of a message, in order (a message may name two: a mapping and a format)."""
    return [flag for match in SUGGESTION.findall(text) for flag in match.split()]


def _inspect(capsys, *args: str) -> tuple[int, str]:
    code = main(["data", "inspect", *args, "--rows", "0"])
    out = capsys.readouterr()
    return code, out.out + out.err


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


CASES = {
    "plain columns of its own names": ([{"q_text": "What is rain?", "a_text": "Water.", "id": 1}], []),
    "a column holding whole conversations": (
        [{"dialog": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ho"}], "id": 1}],
        [],
    ),
    "another format forced": (
        [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Ho"}]}],
        ["--format", "alpaca"],
    ),
    "columns that no format has, with a format forced": ([{"q": "Hi", "a": "Ho"}], ["--format", "alpaca"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_printed_fix_makes_the_same_command_succeed(tmp_path, capsys, case):
    rows, args = CASES[case]
    path = _jsonl(tmp_path / "data.jsonl", rows * 3)
    code, text = _inspect(capsys, path, *args)
    assert code == EXIT_BAD_INPUT and (flags := suggested_flags(text)), text
    code, text = _inspect(capsys, path, *args, *flags)
    assert code == 0 and "usable of 3" in text, (flags, text)


def test_the_malformed_gate_names_the_flag_that_lifts_it(tmp_path, capsys):
    rows = [{"instruction": "Say hi", "output": "Hi!"}] * 9 + [{"instruction": "x", "output": 3}]
    path = _jsonl(tmp_path / "data.jsonl", rows)
    code, text = _inspect(capsys, path)
    assert code == 0 and "blocked: data.allow_malformed: 1 of 10 rows (10.0 %) cannot be read" in text
    assert (flags := suggested_flags(text.split("blocked:", 1)[1].split("\n", 1)[0])) == ["--allow-malformed"]
    code, text = _inspect(capsys, path, *flags)
    assert code == 0 and "blocked:" not in text and "9 usable of 10" in text


def test_the_max_length_fix_leaves_room_for_a_reply(phi3_tokenizer):
    from trainer.config.hints import render_hints
    from trainer.data import reply_room_problem

    rows = [[{"role": "user", "content": "tell me " * 60}, {"role": "assistant", "content": "No."}]]
    problem = reply_room_problem(phi3_tokenizer, rows, max_length=64)
    (flag, value) = suggested_flags(render_hints(problem, "cli"))
    assert flag == "--max-length" and reply_room_problem(phi3_tokenizer, rows, int(value)) is None


def test_the_parser_reads_every_suggestion_shape():
    assert suggested_flags("x (pass --map a=user --map b=assistant and pass --format auto).") == [
        "--map",
        "a=user",
        "--map",
        "b=assistant",
        "--format",
        "auto",
    ]
    assert suggested_flags("rows (pass --allow-malformed).") == ["--allow-malformed"]
