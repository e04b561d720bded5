"""Every fix the data loader suggests works when run as printed (issue 15): the CLI's own error text is parsed for
its `pass --flag value` suggestions, which are added to the same command, and the command then succeeds."""

from __future__ import annotations

import csv
import json
import re
import shlex

import pytest

from trainer.__main__ import EXIT_BAD_INPUT, main
from trainer.config import ConfigError, find_field, hint, iter_fields, suggest_column_mapping
from trainer.config.hints import render_hints

SUGGESTION = re.compile(r"pass ((?:--[\w-]+(?: (?:'[^']*'|(?!pass\b|and\b)[^\s,;)']+))?(?: |(?=[,;).]|$)))+)")


def suggested_flags(text: str) -> list[str]:
    """All `pass ...` flags of a message, in order (a message may name two: a mapping and a format), split as a
    POSIX shell splits them (a quoted value such as `--map 'Question Text=user'` is one argument)."""
    return [flag for match in SUGGESTION.findall(text) for flag in shlex.split(match)]


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
    assert suggested_flags("e.g. pass --map 'Question Text=user' --map Ans=assistant).") == [
        "--map",
        "Question Text=user",
        "--map",
        "Ans=assistant",
    ]


# Issue 27: CSV headers no format fits -> (rows, the mapping that must be suggested). The user column is the
# question-like one (by name, then content ending in "?", then the shorter), the assistant column the answer-like
# one; notes, IDs and metadata are neither. A header with ", " gives columns with a leading space (" Ans").
QA = ("What is rain?", "Water that falls from clouds in drops.")
CSV_CASES = {
    "Question Text,Ans,notes": ([(*QA, "from the FAQ")], {"Question Text": "user", "Ans": "assistant"}),
    "Question Text, Ans, notes": ([(*QA, "from the FAQ")], {"Question Text": "user", "Ans": "assistant"}),
    "id,Answer,Question": ([("7", QA[1], QA[0])], {"Question": "user", "Answer": "assistant"}),
    "Prompt Text,Model Response,source": ([(*QA, "wiki")], {"Prompt Text": "user", "Model Response": "assistant"}),
    "query,reply,comment": ([(*QA, "checked")], {"query": "user", "reply": "assistant"}),
    "first,second,metadata": ([(QA[1], QA[0], "{}")], {"second": "user", "first": "assistant"}),  # by content
}


def _csv(path, header: str, rows) -> str:
    with path.open("w", newline="", encoding="utf-8") as fh:
        fh.write(header + "\n")
        csv.writer(fh).writerows([row[0], *(" " + v if ", " in header else v for v in row[1:])] for row in rows * 3)
    return str(path)


@pytest.mark.parametrize("header", list(CSV_CASES))
def test_the_suggested_mapping_picks_question_and_answer_and_works_as_printed(tmp_path, capsys, header):
    rows, expected = CSV_CASES[header]
    path = _csv(tmp_path / "data.csv", header, rows)
    code, text = _inspect(capsys, path)
    assert code == EXIT_BAD_INPUT, text
    flags = suggested_flags(text)
    assert flags == [arg for column, role in expected.items() for arg in ("--map", f"{column}={role}")], text
    code, text = _inspect(capsys, path, *flags)  # the --map flags, as a shell passes them
    assert code == 0 and "format: columns" in text and "3 usable of 3" in text, (flags, text)
    value = ",".join(f"{column}={role}" for column, role in expected.items())  # the form's and --set's spelling
    code, text = _inspect(capsys, path, "--set", f"data.column_mapping={value}")
    assert code == 0 and "3 usable of 3" in text, (value, text)


# Headers a format already fits: were a mapping wanted, the suggestion is still the question and the answer.
FITTING = [
    ({"prompt": QA[0], "completion": QA[1], "id": "1"}, "prompt", "completion"),
    ({"instruction": QA[0], "output": QA[1], "source": "x"}, "instruction", "output"),
    ({"notes": "", "Response": QA[1], "Input": QA[0]}, "Input", "Response"),
]


@pytest.mark.parametrize(("row", "user", "assistant"), FITTING, ids=[",".join(row) for row, _, _ in FITTING])
def test_a_mapping_suggested_for_any_header_is_question_then_answer_and_loads(tmp_path, capsys, row, user, assistant):
    suggestion = suggest_column_mapping(list(row), row)
    assert suggestion == {user: "user", assistant: "assistant"} and list(suggestion) == [user, assistant]
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(row) + "\n")
    printed = render_hints(hint("data.column_mapping", suggestion), "cli")
    code, text = _inspect(capsys, str(path), *suggested_flags(printed))
    assert code == 0 and "format: columns" in text and "1 usable of 1" in text, (printed, text)


@pytest.mark.parametrize(
    ("columns", "row", "expected"),
    [
        (["id", "notes"], {"id": "1", "notes": "x"}, {"question": "user", "answer": "assistant"}),  # none to map
        (["a=b", "q", "c`d", "r"], None, {"q": "user", "r": "assistant"}),  # names a mapping cannot write are skipped
        (["q", "n", "a"], {"q": "Hi?", "n": 3, "a": "Ho"}, {"q": "user", "a": "assistant"}),  # not text: skipped
        (["dialog", "id"], {"dialog": [{"role": "user", "content": "Hi"}], "id": 1}, {"dialog": "messages"}),
    ],
)
def test_the_suggestion_skips_what_cannot_be_a_turn(columns, row, expected):
    assert suggest_column_mapping(columns, row) == expected


def test_the_command_an_unknown_key_names_lists_every_key_when_run_as_printed(capsys):
    with pytest.raises(ConfigError) as info:
        find_field("zzzz")
    command = re.search(r"Run `python -m trainer ([^`]+)`", str(info.value))
    assert command, str(info.value)
    assert main(shlex.split(command[1])) == 0
    listed = capsys.readouterr().out
    assert [spec.key for spec in iter_fields() if f"\n  {spec.name}:" not in listed] == []
