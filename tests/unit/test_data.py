"""trainer.data: format detection, normalisation to chat messages, loading errors, the eval split and the preview.

Offline and fast: small files in every supported format are written to tmp_path; the real Phi-3 tokenizer renders.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import datasets
import pandas as pd
import pytest

from trainer import data
from trainer.config import DataConfig
from trainer.data import DataError, RowError

SYSTEM = "You are a pirate."
QUESTION = "What is rain?"
CONTEXT = "Answer in one sentence."
ANSWER = "Ahoy! Rain be water falling from the clouds, matey."


@pytest.fixture(autouse=True, scope="module")
def _datasets_cache(tmp_path_factory):
    """`datasets` caches what it loads; keep that cache out of the home directory."""
    saved = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("hf_datasets_cache")
    yield
    datasets.config.HF_DATASETS_CACHE = saved


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _chat(system: bool, user: str = QUESTION) -> list[dict[str, str]]:
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": ANSWER}]


def _phi3(messages: list[dict[str, str]], eos: bool = True) -> str:
    text = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    return text + ("<|endoftext|>" if eos else "")


# --------------------------------------------------------------------------- equivalent rows in every format

# (case id, format, row, column mapping, expected messages)
EQUIVALENT = [
    ("messages", "messages", {"messages": _chat(False)}, None, _chat(False)),
    ("messages+system", "messages", {"messages": _chat(True)}, None, _chat(True)),
    (
        "sharegpt",
        "sharegpt",
        {"conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}]},
        None,
        _chat(False),
    ),
    (
        "sharegpt+system",
        "sharegpt",
        {
            "conversations": [
                {"from": "system", "value": SYSTEM},
                {"from": "human", "value": QUESTION},
                {"from": "gpt", "value": ANSWER},
            ]
        },
        None,
        _chat(True),
    ),
    ("alpaca", "alpaca", {"instruction": QUESTION, "input": "", "output": ANSWER}, None, _chat(False)),
    ("alpaca-no-input-column", "alpaca", {"instruction": QUESTION, "output": ANSWER}, None, _chat(False)),
    ("alpaca-null-input", "alpaca", {"instruction": QUESTION, "input": None, "output": ANSWER}, None, _chat(False)),
    (
        "alpaca+input",
        "alpaca",
        {"instruction": QUESTION, "input": CONTEXT, "output": ANSWER},
        None,
        _chat(False, f"{QUESTION}\n\n{CONTEXT}"),
    ),
    (
        "alpaca+system",
        "alpaca",
        {"system": SYSTEM, "instruction": QUESTION, "input": "", "output": ANSWER},
        None,
        _chat(True),
    ),
    ("prompt_completion", "prompt_completion", {"prompt": QUESTION, "completion": ANSWER}, None, _chat(False)),
    (
        "prompt_completion-conversational",
        "prompt_completion",
        {"prompt": _chat(False)[:1], "completion": _chat(False)[1:]},
        None,
        _chat(False),
    ),
    (
        "prompt_completion-conversational+system",
        "prompt_completion",
        {"prompt": _chat(True)[:2], "completion": _chat(True)[2:]},
        None,
        _chat(True),
    ),
    ("text-phi3", "text", {"text": _phi3(_chat(False))}, None, _chat(False)),
    ("text-phi3+system", "text", {"text": _phi3(_chat(True))}, None, _chat(True)),
    ("text-phi3-no-eos", "text", {"text": _phi3(_chat(True), eos=False)}, None, _chat(True)),
    (
        "columns",
        "columns",
        {"question": QUESTION, "answer": ANSWER, "id": 7},
        {"question": "user", "answer": "assistant"},
        _chat(False),
    ),
    (
        "columns+system",
        "columns",
        {"persona": SYSTEM, "question": QUESTION, "answer": ANSWER},
        {"persona": "system", "question": "user", "answer": "assistant"},
        _chat(True),
    ),
    (
        "columns-null-system-skipped",
        "columns",
        {"persona": None, "question": QUESTION, "answer": ANSWER},
        {"persona": "system", "question": "user", "answer": "assistant"},
        _chat(False),
    ),
    ("columns-conversation-list", "columns", {"dialog": _chat(True), "id": 3}, {"dialog": "messages"}, _chat(True)),
    (
        "columns-sharegpt-list",
        "columns",
        {"dialog": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}]},
        {"dialog": "messages"},
        _chat(False),
    ),
    (
        "preference-dpo-strings",
        "preference",
        {"prompt": QUESTION, "chosen": ANSWER, "rejected": "Nope."},
        None,
        _chat(False),
    ),
    (
        "preference-trl-conversational",
        "preference",
        {"prompt": _chat(True)[:2], "chosen": _chat(True)[2:], "rejected": [{"role": "assistant", "content": "No."}]},
        None,
        _chat(True),
    ),
    (
        "preference-whole-conversation",
        "preference",
        {"chosen": _chat(False), "rejected": [*_chat(False)[:1], {"role": "assistant", "content": "No."}]},
        None,
        _chat(False),
    ),
    (
        "preference-anthropic-hh-text",
        "preference",
        {
            "chosen": f"\n\nHuman: {QUESTION}\n\nAssistant: {ANSWER}",
            "rejected": f"\n\nHuman: {QUESTION}\n\nAssistant: No.",
        },
        None,
        _chat(False),
    ),
]


@pytest.mark.parametrize(
    ("fmt", "row", "mapping", "expected"), [c[1:] for c in EQUIVALENT], ids=[c[0] for c in EQUIVALENT]
)
def test_equivalent_rows_in_every_format_give_identical_messages(fmt, row, mapping, expected):
    assert data.to_messages(row, fmt, mapping) == expected


@pytest.mark.parametrize(
    ("fmt", "row", "mapping", "expected"), [c[1:] for c in EQUIVALENT], ids=[c[0] for c in EQUIVALENT]
)
def test_detect_format_picks_the_format_of_each_row(fmt, row, mapping, expected):
    if fmt == "columns":
        with pytest.raises(DataError):
            data.detect_format(list(row))  # other columns are never guessed: they need a mapping
    else:
        assert data.detect_format(list(row)) == fmt


def test_every_format_is_covered_by_the_equivalence_table():
    assert {c[1] for c in EQUIVALENT} == set(data.FORMATS)


@pytest.mark.parametrize(
    ("columns", "fmt"),
    [
        (["messages", "text"], "messages"),
        (["conversations", "text"], "sharegpt"),
        (["instruction", "output", "prompt", "completion", "text"], "alpaca"),
        (["prompt", "completion", "text"], "prompt_completion"),
        (["id", "text"], "text"),
        (["instruction", "input"], None),  # no output: not alpaca
        (["prompt"], None),
    ],
)
def test_detect_format_priority(columns, fmt):
    if fmt is None:
        with pytest.raises(DataError):
            data.detect_format(columns)
    else:
        assert data.detect_format(columns) == fmt


def test_plain_text_is_one_unprompted_assistant_turn():
    assert data.to_messages({"text": "Once upon a time."}, "text") == [
        {"role": "assistant", "content": "Once upon a time."}
    ]


def test_extra_message_keys_are_dropped():
    row = {"messages": [{"role": "user", "content": QUESTION, "name": None}, {"role": "assistant", "content": ANSWER}]}
    assert data.to_messages(row, "messages") == _chat(False)


def test_message_lists_stored_as_json_text_are_parsed():
    assert data.to_messages({"messages": json.dumps(_chat(True))}, "messages") == _chat(True)


def test_empty_system_messages_are_dropped():
    row = {"conversations": [{"from": "system", "value": ""}, {"from": "human", "value": QUESTION}]}
    row["conversations"].append({"from": "gpt", "value": ANSWER})
    assert data.to_messages(row, "sharegpt") == _chat(False)


# --------------------------------------------------------------------------- system prompt


@pytest.mark.parametrize("fmt", ["messages", "text"])
def test_system_prompt_is_prepended_when_absent(fmt):
    row = {"messages": _chat(False)} if fmt == "messages" else {"text": _phi3(_chat(False))}
    assert data.to_messages(row, fmt, system_prompt=SYSTEM) == _chat(True)


def test_system_prompt_does_not_replace_an_existing_system_message():
    out = data.to_messages({"messages": _chat(True)}, "messages", system_prompt="Be terse.")
    assert out == _chat(True)


def test_system_prompt_empty_adds_nothing():
    assert data.to_messages({"prompt": QUESTION, "completion": ANSWER}, "prompt_completion", system_prompt="") == (
        _chat(False)
    )


# --------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize(
    ("fmt", "row", "message"),
    [
        (
            "messages",
            {"messages": [{"role": "human", "content": QUESTION}, {"role": "gpt", "content": ANSWER}]},
            "message 1 has role 'human'; expected system, user, assistant or tool",
        ),
        (
            "messages",
            {"messages": [{"role": "user", "content": QUESTION}, {"role": "bot", "content": ANSWER}]},
            "message 2 has role 'bot'; expected system, user, assistant or tool",
        ),
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": QUESTION}, {"from": "bot", "value": ANSWER}]},
            "message 2 has from 'bot'; expected human, user, gpt, assistant, chatgpt, system, function_call or "
            "observation",
        ),
    ],
)
def test_bad_role_is_a_row_error(fmt, row, message):
    with pytest.raises(RowError) as info:
        data.to_messages(row, fmt)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("fmt", "row", "message"),
    [
        ("messages", {"messages": [{"role": "user", "content": 42}]}, "message 1 content is int, expected a string"),
        (
            "messages",
            {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": None}]},
            "message 2 content is null, expected a string",
        ),
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": ["a", "list"]}]},
            "message 1 content is a list of str, expected text parts",
        ),
        ("alpaca", {"instruction": QUESTION, "output": 3.5}, "output is float, expected a string"),
        ("prompt_completion", {"prompt": QUESTION, "completion": 7}, "completion is int, expected a string or"),
        ("text", {"text": None}, "text is null, expected a string"),
        ("columns", {"q": QUESTION, "a": 4}, "column 'a' is int, expected a string"),
        ("messages", {"messages": "hello"}, "messages is str, expected a list"),
    ],
)
def test_non_string_content_is_a_row_error(fmt, row, message):
    with pytest.raises(RowError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        data.to_messages(row, fmt, {"q": "user", "a": "assistant"} if fmt == "columns" else None)


@pytest.mark.parametrize(
    ("fmt", "row", "message"),
    [
        ("messages", {"messages": [{"role": "user", "content": QUESTION}]}, "no assistant message"),
        ("messages", {"messages": []}, "no assistant message"),
        ("text", {"text": _phi3(_chat(False)[:1])}, "no assistant message"),
        ("columns", {"q": QUESTION, "a": ""}, "no assistant message"),
        (
            "messages",
            {"messages": [*_chat(False), {"role": "user", "content": "And snow?"}]},
            "last message is from the user; a row must end with an assistant reply",
        ),
        ("alpaca", {"instruction": QUESTION, "input": "", "output": " "}, "output is empty"),
        (
            "messages",
            {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ""}]},
            "message 2 is an empty assistant reply",
        ),
    ],
)
def test_rows_without_an_assistant_reply_are_row_errors(fmt, row, message):
    with pytest.raises(RowError, match="^" + message):
        data.to_messages(row, fmt, {"q": "user", "a": "assistant"} if fmt == "columns" else None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello <|user|>\nhi<|end|>\n<|assistant|>\nyo<|end|>\n", "text has 'Hello' before the first role tag"),
        ("<|user|>\nhi\n<|assistant|>\nyo<|end|>\n", r"message 1 \(user\) is not closed with <\|end\|>"),
        ("just words<|end|>", r"text has <\|end\|> but no"),
    ],
)
def test_broken_phi3_markup_is_a_row_error(text, message):
    with pytest.raises(RowError, match=message):
        data.to_messages({"text": text}, "text")


def test_unknown_format_name_is_a_data_error():
    with pytest.raises(DataError, match="unknown format 'chatml'"):
        data.to_messages({"text": "x"}, "chatml")


# --------------------------------------------------------------------------- normalise


def test_malformed_rows_are_counted_with_row_numbers_and_good_rows_kept():
    rows = [
        {"messages": _chat(False)},
        {"messages": [{"role": "human", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]},
        {"messages": _chat(True)},
        {"messages": [{"role": "user", "content": QUESTION}]},
    ]
    out = data.normalise(rows, "auto")
    assert out.format == "messages"
    assert out.rows == [_chat(False), _chat(True)]
    assert out.n_input == 4
    assert out.problems == [
        "row 2: message 1 has role 'human'; expected system, user, assistant or tool",
        "row 4: no assistant message",
    ]


def test_all_rows_malformed_is_a_data_error_with_the_first_reasons():
    rows = [{"messages": [{"role": "user", "content": QUESTION}]}] * 5
    with pytest.raises(DataError) as info:
        data.normalise(rows, "messages")
    message = str(info.value)
    assert "all 5 rows are malformed" in message
    assert "row 1: no assistant message" in message and "row 3: no assistant message" in message
    assert "row 4" not in message  # the first few, not all of them


def test_normalise_applies_the_system_prompt():
    out = data.normalise([{"prompt": QUESTION, "completion": ANSWER}], "auto", system_prompt=SYSTEM)
    assert out.rows == [_chat(True)]


def test_normalise_with_mapping_uses_columns_format():
    out = data.normalise(
        [{"question": QUESTION, "answer": ANSWER}], "auto", {"question": "user", "answer": "assistant"}
    )
    assert out.format == "columns" and out.rows == [_chat(False)]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"question": "user", "answer": "bot"}, "data.column_mapping: roles {'answer': 'bot'} are not chat roles"),
        ({"question": "user", "answer": "user"}, "data.column_mapping: no column maps to assistant"),
        (
            {"question": "user", "reply": "assistant"},
            r"data.column_mapping: format columns needs the columns \['reply'\]",
        ),
    ],
)
def test_bad_column_mapping_is_a_data_error(mapping, message):
    with pytest.raises(DataError, match=message):
        data.normalise([{"question": QUESTION, "answer": ANSWER}], "columns", mapping)


def test_forced_format_missing_its_columns_is_a_data_error():
    with pytest.raises(DataError, match=r"data.format: format alpaca needs the columns \['instruction', 'output'\]"):
        data.normalise([{"question": QUESTION, "answer": ANSWER}], "alpaca")


def test_unknown_format_lists_columns_found_and_formats_expected():
    with pytest.raises(DataError) as info:
        data.normalise([{"question": QUESTION, "answer": ANSWER}], "auto")
    message = str(info.value)
    assert message.startswith("data.format: cannot detect the format from the columns ['question', 'answer']")
    for fmt, column in [
        ("messages", "'messages'"),
        ("sharegpt", "'conversations'"),
        ("alpaca", "'instruction' and 'output'"),
        ("prompt_completion", "'prompt' and 'completion'"),
        ("text", "'text'"),
    ]:
        assert fmt in message and column in message
    assert "set data.column_mapping to `question=user,answer=assistant`" in message


def test_normalise_no_rows_is_a_data_error():
    with pytest.raises(DataError, match="no rows"):
        data.normalise([], "auto")


# --------------------------------------------------------------------------- local files


def _equivalent_files(tmp_path):
    """The same two conversations in every local file type and layout."""
    alpaca = [
        {"instruction": QUESTION, "input": "", "output": ANSWER},
        {"instruction": "Hi", "input": "", "output": "Ahoy!"},
    ]
    pc = [{"prompt": a["instruction"], "completion": a["output"]} for a in alpaca]
    chats = [
        [{"role": "user", "content": a["instruction"]}, {"role": "assistant", "content": a["output"]}] for a in alpaca
    ]
    files = {
        "messages.jsonl": _write_jsonl(tmp_path / "messages.jsonl", [{"messages": c} for c in chats]),
        "sharegpt.jsonl": _write_jsonl(
            tmp_path / "sharegpt.jsonl",
            [
                {
                    "conversations": [
                        {"from": "human", "value": c[0]["content"]},
                        {"from": "gpt", "value": c[1]["content"]},
                    ]
                }
                for c in chats
            ],
        ),
        "text.jsonl": _write_jsonl(tmp_path / "text.jsonl", [{"text": _phi3(c)} for c in chats]),
    }
    files["alpaca.json"] = tmp_path / "alpaca.json"
    files["alpaca.json"].write_text(json.dumps(alpaca, indent=2))
    files["pc.csv"] = tmp_path / "pc.csv"
    pd.DataFrame(pc).to_csv(files["pc.csv"], index=False)
    files["pc.parquet"] = tmp_path / "pc.parquet"
    pd.DataFrame(pc).to_parquet(files["pc.parquet"])
    files["pc-conversational.parquet"] = tmp_path / "pc-conversational.parquet"
    pd.DataFrame([{"prompt": c[:1], "completion": c[1:]} for c in chats]).to_parquet(
        files["pc-conversational.parquet"]
    )
    return files, chats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("messages.jsonl", "messages"),
        ("sharegpt.jsonl", "sharegpt"),
        ("text.jsonl", "text"),
        ("alpaca.json", "alpaca"),
        ("pc.csv", "prompt_completion"),
        ("pc.parquet", "prompt_completion"),
        ("pc-conversational.parquet", "prompt_completion"),
    ],
)
def test_every_local_file_type_loads_and_normalises_identically(tmp_path, name, fmt):
    files, chats = _equivalent_files(tmp_path)
    prepared = data.prepare(DataConfig(dataset_name=str(files[name]), eval_fraction=0))
    assert prepared.format == fmt and prepared.eval is None and prepared.problems == []
    assert prepared.train.column_names == ["messages"]
    assert prepared.train["messages"] == chats


def test_csv_columns_are_read_as_text(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is 2+2?,4\nWhat is 1/2?,0.50\n")
    cfg = DataConfig(
        dataset_name=str(path), column_mapping={"question": "user", "answer": "assistant"}, eval_fraction=0
    )
    rows = data.prepare(cfg).train["messages"]
    assert [r[-1]["content"] for r in rows] == ["4", "0.50"]


def test_examples_resolve_relative_to_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = data.resolve_local_path("examples/pirate_chat.jsonl")
    assert path is not None and path.is_file()
    assert len(data.load_table(DataConfig(dataset_name="examples/pirate_chat.jsonl"), "train")) == 240


@pytest.mark.parametrize(
    "name", ["microsoft/orca-math", "teknium/OpenHermes-2.5", "squad", "HuggingFaceH4/ultrachat_200k"]
)
def test_hub_ids_are_not_local_paths(name):
    assert data.resolve_local_path(name) is None


def test_max_rows_keeps_the_first_rows():
    table = data.load_table(DataConfig(dataset_name="examples/pirate_chat.jsonl", max_rows=5), "train")
    assert len(table) == 5
    assert table[0] == data.load_table(DataConfig(dataset_name="examples/pirate_chat.jsonl"), "train")[0]


def test_missing_file_is_a_data_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=r"data.dataset_name: file .*nope.jsonl not found") as info:
        data.resolve_local_path(str(missing))
    assert ".jsonl, .json, .csv, .parquet" in str(info.value)


@pytest.mark.parametrize("name", ["notes.txt", "sheet.xlsx"])
def test_unsupported_file_suffix_is_a_data_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello")
    with pytest.raises(DataError, match=rf"data.dataset_name: .*{name} is a \.\w+ file, which cannot be read"):
        data.resolve_local_path(str(path))
    with pytest.raises(DataError, match=r"\.jsonl, \.json, \.csv, \.parquet"):
        data.resolve_local_path(str(tmp_path / "missing" / name))  # missing too: still clearly a file


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("bad.json", '[{"text": "ok"}, {"text": \n', "Expected object or value"),
        ("bad.parquet", "this is not parquet", "Parquet magic bytes not found"),
    ],
)
def test_corrupt_file_is_a_data_error_with_the_reason(tmp_path, name, content, detail):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name=str(path)), "train")
    message = str(info.value)
    assert message.startswith(f"data.dataset_name: cannot read {name}") and detail in message
    assert "Check that the file is valid" in message and str(tmp_path) not in message  # the file, not the server


def _chat_line(i: int) -> str:
    messages = [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]
    return json.dumps({"messages": messages})


@pytest.fixture
def one_broken_line(tmp_path):
    """A JSON Lines file of 6 good rows whose line 3 is not JSON (and line 6 is blank)."""
    lines = [_chat_line(i) for i in range(6)]
    lines.insert(2, '{"messages": [{"role": "user", "content": "cut off')
    lines.insert(5, "")
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_jsonl_line_that_is_not_json_is_one_malformed_row_at_its_line(one_broken_line, tmp_path):
    cfg = DataConfig(dataset_name=str(one_broken_line), eval_fraction=0)
    with pytest.raises(DataError) as info:  # 1 of 7 rows is over the 5 % gate
        data.prepare(cfg)
    message = str(info.value)
    assert message.startswith("data.allow_malformed: 1 of 7 rows (14.3 %) cannot be read (line 3: not JSON (")
    assert "train on the 6 usable rows" in message and str(tmp_path) not in message
    accepted = data.prepare(dataclasses.replace(cfg, allow_malformed=True))  # Train on the usable rows
    assert len(accepted.train) == 6 and accepted.n_input == 7
    assert accepted.problems == ["line 3: not JSON (Unterminated string starting at column 43)"]
    assert [m[1]["content"] for m in accepted.train["messages"]] == [f"A{i}." for i in range(6)]


def test_row_problems_in_a_jsonl_with_a_broken_line_name_their_own_lines(tmp_path):
    lines = [_chat_line(0), "[1, 2]", json.dumps({"messages": [{"role": "user", "content": "no reply"}]})]
    lines += [_chat_line(i) for i in range(1, 40)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = data.prepare(DataConfig(dataset_name=str(path), eval_fraction=0, allow_malformed=True))
    assert out.problems[0] == "line 2: a JSON array, not an object (a row is one JSON object)"
    assert out.problems[1].startswith("line 3: ") and len(out.problems) == 2  # counted in the file, from 1
    first = data.prepare(DataConfig(dataset_name=str(path), eval_fraction=0, allow_malformed=True), limit=2)
    assert len(first.train) == 1 and first.n_input == 3  # a preview reads the first rows: line 4 is the second


def test_a_file_that_is_not_json_lines_at_all_is_one_clear_error(tmp_path):
    path = tmp_path / "pretty.jsonl"
    path.write_text(json.dumps([json.loads(_chat_line(0)), json.loads(_chat_line(1))], indent=2))
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name=str(path)), "train")
    assert str(info.value) == (
        "data.dataset_name: pretty.jsonl is not JSON Lines: no line is a JSON object (line 1: not JSON (Expecting "
        'value at column 2)). Write one JSON object per line, e.g. {"messages": [...]}.'
    )


@pytest.mark.slow  # a CLI process each (seconds): the full suite, not the edit loop
@pytest.mark.parametrize("content", ["[1,\n", '{"text": \n'])
def test_a_bad_file_gets_a_clean_error_and_no_library_noise_in_the_cli(tmp_path, content):
    path = tmp_path / ("bad.json" if content.startswith("[") else "bad.jsonl")
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "data", "inspect", str(path)], capture_output=True, text=True, timeout=120
    )
    out = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and out.startswith("error: data.") and "\n" not in out, out  # one line, nothing else


@pytest.mark.parametrize(("name", "content"), [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("header.csv", "a,b\n")])
def test_empty_dataset_is_a_data_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=r"data.dataset_name: .* (is empty|has no rows)"):
        data.load_table(DataConfig(dataset_name=str(path)), "train")


def test_local_file_has_no_other_split(tmp_path):
    path = _write_jsonl(tmp_path / "chat.jsonl", [{"messages": _chat(False)}])
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name=str(path)), "validation")
    message = str(info.value)
    assert "split 'validation' does not exist" in message and "one split, 'train'" in message


def test_local_file_with_a_test_split_is_a_clear_error(tmp_path):
    path = _write_jsonl(tmp_path / "chat.jsonl", [{"messages": _chat(False)}] * 3)
    with pytest.raises(DataError, match="data.dataset_test_split: split 'test' does not exist.*eval_fraction"):
        data.prepare(DataConfig(dataset_name=str(path), dataset_test_split="test"))


def test_local_file_split_slices_work():
    table = data.load_table(DataConfig(dataset_name="examples/pirate_chat.jsonl"), "train[:10]")
    assert len(table) == 10


# --------------------------------------------------------------------------- dataset folders and the Hub path


@pytest.fixture
def split_folder(tmp_path):
    """A local dataset folder with train and test files: `datasets` loads it like a Hub repo, offline."""
    folder = tmp_path / "chat_data"
    folder.mkdir()
    _write_jsonl(folder / "train.jsonl", [{"messages": _chat(False, f"Question {i}?")} for i in range(8)])
    _write_jsonl(folder / "test.jsonl", [{"messages": _chat(False, f"Test {i}?")} for i in range(3)])
    return folder


def test_dataset_test_split_is_loaded_and_normalised(split_folder):
    prepared = data.prepare(
        DataConfig(dataset_name=str(split_folder), dataset_test_split="test", system_prompt=SYSTEM)
    )
    assert len(prepared.train) == 8 and len(prepared.eval) == 3
    assert prepared.eval["messages"][0] == [{"role": "system", "content": SYSTEM}, *_chat(False, "Test 0?")]


def test_unknown_split_lists_the_available_splits(split_folder):
    with pytest.raises(DataError) as info:
        data.prepare(DataConfig(dataset_name=str(split_folder), dataset_test_split="validation"))
    message = str(info.value)
    assert message.startswith("data.dataset_test_split:") and "no split 'validation'" in message
    assert "Available splits: train, test" in message


def test_an_offline_hub_dataset_is_said_at_once():
    # The tests run with HF_HUB_OFFLINE=1: the app says so before asking datasets (which would retry).
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name="nobody/no-such-dataset"), "train")
    assert str(info.value).startswith(
        "data.dataset_name: cannot read 'nobody/no-such-dataset'. Hugging Face Hub: offline mode is on "
        "(HF_HUB_OFFLINE=1)"
    )


def test_an_unreachable_hub_is_said_within_seconds(monkeypatch):
    """No network (here: a closed port as the Hub): one plain message in seconds, not half a minute of retries."""
    import time

    from huggingface_hub import constants

    from trainer import online

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(online, "_REACH", {})
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name="nobody/no-such-dataset"), "train")
    assert time.perf_counter() - start < 5
    assert "Hugging Face Hub: http://127.0.0.1:9 cannot be reached (ConnectError)" in str(info.value)


def test_missing_or_private_hub_dataset_is_a_data_error(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def not_found(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'nobody/private' doesn't exist on the Hub or cannot be accessed.")

    monkeypatch.setattr(datasets, "load_dataset", not_found)
    monkeypatch.setattr("trainer.data.load.hub_unreachable", lambda: None)  # as if online
    with pytest.raises(DataError) as info:
        data.load_table(DataConfig(dataset_name="nobody/private"), "train", token="hf_secret")
    message = str(info.value)
    assert "'nobody/private' not found or not readable" in message
    assert "Check the ID and that your token can read it" in message and "hf_secret" not in message


# --------------------------------------------------------------------------- prepare: the eval split


def _many(tmp_path, n=50):
    return _write_jsonl(tmp_path / "many.jsonl", [{"messages": _chat(False, f"Question {i}?")} for i in range(n)])


def test_eval_fraction_split_is_seeded_and_disjoint(tmp_path):
    cfg = DataConfig(dataset_name=str(_many(tmp_path)), eval_fraction=0.2)
    first, again, other = data.prepare(cfg, seed=1), data.prepare(cfg, seed=1), data.prepare(cfg, seed=2)
    train = [r[0]["content"] for r in first.train["messages"]]
    held = [r[0]["content"] for r in first.eval["messages"]]
    assert len(held) == 10 and len(train) == 40
    assert not set(train) & set(held) and len(set(train) | set(held)) == 50
    assert again.eval["messages"] == first.eval["messages"]
    assert other.eval["messages"] != first.eval["messages"]


def test_eval_fraction_zero_means_no_eval(tmp_path):
    prepared = data.prepare(DataConfig(dataset_name=str(_many(tmp_path)), eval_fraction=0))
    assert prepared.eval is None and len(prepared.train) == 50


def test_eval_split_holds_out_at_least_one_row(tmp_path):
    prepared = data.prepare(DataConfig(dataset_name=str(_many(tmp_path, 2)), eval_fraction=0.1))
    assert len(prepared.train) == 1 and len(prepared.eval) == 1


def test_a_single_row_is_all_train(tmp_path):
    prepared = data.prepare(DataConfig(dataset_name=str(_many(tmp_path, 1)), eval_fraction=0.1))
    assert len(prepared.train) == 1 and prepared.eval is None


def test_prepare_reports_problems_and_keeps_good_rows(tmp_path):
    rows = [{"messages": _chat(False)}, {"messages": [{"role": "user", "content": "hi"}]}, {"messages": _chat(True)}]
    cfg = DataConfig(dataset_name=str(_write_jsonl(tmp_path / "m.jsonl", rows)), eval_fraction=0)
    with pytest.raises(DataError, match=r"data.allow_malformed: 1 of 3 rows \(33.3 %\) cannot be read"):
        data.prepare(cfg)  # over 5 % malformed: training stops until the user accepts the usable rows
    cfg.allow_malformed = True
    prepared = data.prepare(cfg)
    assert prepared.n_input == 3 and len(prepared.train) == 2
    assert prepared.problems == ["row 2: no assistant message"]


def test_prepare_respects_forced_format_and_mapping_conflicts(tmp_path):
    path = _write_jsonl(tmp_path / "qa.jsonl", [{"question": QUESTION, "answer": ANSWER}])
    mapping = {"question": "user", "answer": "assistant"}
    assert (
        data.prepare(DataConfig(dataset_name=str(path), column_mapping=mapping, eval_fraction=0)).format == "columns"
    )
    with pytest.raises(DataError, match="data.format: alpaca conflicts with data.column_mapping"):
        data.prepare(DataConfig(dataset_name=str(path), format="alpaca", column_mapping=mapping))


def test_split_eval_rejects_a_bad_fraction():
    with pytest.raises(DataError, match="data.eval_fraction"):
        data.split_eval([_chat(False)] * 4, 1.5)


# --------------------------------------------------------------------------- preview


def test_preview_renders_with_the_real_phi3_template(phi3_tokenizer):
    cfg = DataConfig(dataset_name="examples/pirate_sharegpt.jsonl", system_prompt=SYSTEM)
    p = data.preview(cfg, phi3_tokenizer, max_length=1024, n=2)
    assert p.format == "sharegpt" and p.n_rows == p.n_input == 240 and p.problems == []
    assert len(p.rendered) == 2
    assert p.rendered[0] == (
        f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\nWhat do you think about rain?<|end|>\n"
        f"<|assistant|>\n{ANSWER}<|end|>\n<|endoftext|>"
    )
    assert p.n_over_max_length == 0


def test_preview_token_stats_match_the_tokenised_template(phi3_tokenizer):
    p = data.preview(DataConfig(dataset_name="examples/pirate_chat.jsonl"), phi3_tokenizer, max_length=1024)
    rows = data.prepare(DataConfig(dataset_name="examples/pirate_chat.jsonl", eval_fraction=0)).train["messages"]
    lengths = []
    for row in rows:
        out = phi3_tokenizer.apply_chat_template(row, tokenize=True)
        lengths.append(len(out["input_ids"] if hasattr(out, "keys") else out))
    stats = p.token_lengths
    assert stats["min"] == min(lengths) and stats["max"] == max(lengths)
    assert stats["mean"] == pytest.approx(sum(lengths) / len(lengths))
    assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert 10 < stats["min"] < 100  # a short question and answer is tens of tokens


def test_preview_counts_rows_over_max_length(phi3_tokenizer, tmp_path):
    rows = [{"messages": _chat(False)}] * 3 + [{"messages": _chat(False, "Why? " * 100)}] * 2
    cfg = DataConfig(dataset_name=str(_write_jsonl(tmp_path / "m.jsonl", rows)))
    p = data.preview(cfg, phi3_tokenizer, max_length=100, n=1)
    assert p.n_over_max_length == 2 and p.max_length == 100
    assert "over max_length 100 tokens: 2 rows" in data.format_preview(p)


def test_format_preview_text(phi3_tokenizer, tmp_path):
    good = [{"instruction": f"Q{i}", "input": "", "output": ANSWER} for i in range(20)]
    bad = [{"instruction": f"Q{i}", "input": "", "output": ""} for i in range(12)]
    cfg = DataConfig(dataset_name=str(_write_jsonl(tmp_path / "a.jsonl", good + bad)))
    text = data.format_preview(data.preview(cfg, phi3_tokenizer, max_length=512, n=1))
    assert "format: alpaca" in text
    assert "20 usable of 32 (12 malformed" in text
    assert "row 21: output is empty" in text and "row 30: output is empty" in text and "row 31" not in text
    assert "... and 2 more" in text
    assert "tokens per row" in text and "over max_length 512 tokens: 0 rows" in text
    assert "<|user|>\nQ0<|end|>" in text and "<|assistant|>" in text


def test_a_dataset_folder_streams_a_limit_and_slices_and_reports_a_broken_file(tmp_path):
    """A dataset folder goes the Hub-ID way (datasets' own loader): with a limit its rows are streamed."""
    folder = tmp_path / "pirates"
    folder.mkdir()
    rows = [
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
        for i in range(10)
    ]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    cfg = DataConfig(dataset_name=str(folder))
    assert len(data.load_table(cfg, "train", limit=3)) == 3
    assert len(data.load_table(cfg, "train[:5]", limit=3)) == 3  # a sliced split cannot stream: loaded, then cut
    (folder / "train.jsonl").write_text("\n".join(rows[:2]) + '\n{"messages": [broken\n')
    with pytest.raises(DataError, match=r"data.dataset_name: cannot read the files of .*pirates"):
        data.load_table(cfg, "train", limit=5)


def test_a_named_format_wins_over_detection():
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}], "text": "<|user|>\nHi<|end|>\n<|assistant|>\nHo<|end|>\n"}
    ]
    cfg = DataConfig(dataset_name="x", format="text")
    assert data.choose_format(cfg, ["messages", "text"]) == "text"
    assert data.choose_format(DataConfig(dataset_name="x"), ["messages", "text"]) == "messages"
    assert data.normalise(rows, "text").rows[0][-1] == {"role": "assistant", "content": "Ho"}


def test_a_small_eval_fraction_holds_out_exactly_one_row():
    rows = [[{"role": "assistant", "content": str(i)}] for i in range(10)]
    train, held = data.split_eval(rows, 0.01)
    assert (len(train), len(held)) == (9, 1)
    train, held = data.split_eval(rows, 0.5)
    assert (len(train), len(held)) == (5, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<|user|>Hi<|end|><|assistant|>Ho<|end|>", [("user", "Hi"), ("assistant", "Ho")]),  # no newline after tags
        ("<|user|>\nHi<|end|>\n<|assistant|>\nHo\n", [("user", "Hi"), ("assistant", "Ho")]),  # an open last turn
        ("<|user|>\nline one\n<|end|>\n<|assistant|>\nHo<|end|>", [("user", "line one\n"), ("assistant", "Ho")]),
    ],
)
def test_phi3_markup_edges(text, expected):
    assert [(m["role"], m["content"]) for m in data.to_messages({"text": text}, "text")] == expected


def test_two_ends_in_one_phi3_turn_are_a_row_error():
    with pytest.raises(RowError, match=r"message 2 \(assistant\) has 'x<\|end\|>' after <\|end\|>"):
        data.to_messages({"text": "<|user|>\nHi<|end|>\n<|assistant|>\nHo<|end|>x<|end|>"}, "text")


def test_json_text_with_leading_spaces_and_columns_without_a_mapping():
    row = {"messages": '  [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ho"}]'}
    assert data.to_messages(row, "messages")[-1]["content"] == "Ho"
    with pytest.raises(DataError, match="data.format: columns needs data.column_mapping"):
        data.to_messages({"q": "Hi"}, "columns", None)


def test_the_mapping_hint_uses_the_dataset_s_own_two_columns():
    with pytest.raises(DataError) as info:
        data.normalise([{"q": "Hi", "a": "Ho"}], "auto")
    assert "set data.column_mapping to `q=user,a=assistant`" in str(info.value)


def test_all_rows_malformed_shows_the_first_three_problems():
    rows = [{"instruction": "Hi", "output": ""} for _ in range(5)]
    with pytest.raises(DataError) as info:
        data.normalise(rows, "alpaca")
    assert str(info.value) == (
        "data.dataset_name: all 5 rows are malformed for format alpaca (row 1: output is empty; the assistant reply "
        "is required; row 2: output is empty; the assistant reply is required; row 3: output is empty; the "
        "assistant reply is required; ...). Check that the format matches the data (set data.format, or set "
        "data.column_mapping) or fix the rows."
    )


def test_row_errors_name_the_field_and_the_message_number():
    bad = [
        (
            {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "bot", "content": "x"}]},
            "prompt_completion",
            "message 2 has role 'bot'; expected system, user, assistant or tool",
        ),
        ({"prompt": "Hi", "completion": 3}, "prompt_completion", "completion is int, expected a string or a list"),
        ({"conversations": [{"value": "Hi"}]}, "sharegpt", "message 1 has no 'from'; expected human"),
        ({"conversations": "Hi"}, "sharegpt", "conversations is str, expected a list of {from, value} messages"),
        (
            {"messages": [{"content": "Hi"}]},
            "messages",
            "message 1 has no role; expected system, user, assistant or tool",
        ),
        ({"messages": ["Hi"]}, "messages", "message 1 is str, expected a {role, content} object"),
        ({"instruction": 1, "output": "x"}, "alpaca", "instruction is int, expected a string"),
        ({"instruction": "Hi", "input": 1, "output": "x"}, "alpaca", "input is int, expected a string"),
        ({"instruction": "Hi", "output": "x", "system": 1}, "alpaca", "system is int, expected a string"),
        ({"other": 1}, "alpaca", "no 'instruction' column"),
    ]
    for row, fmt, message in bad:
        with pytest.raises(RowError) as info:
            data.to_messages(row, fmt)
        assert str(info.value).startswith(message), (fmt, str(info.value))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<|user|>\nHi<|end|>\n<|assistant|>\nHo\n<|endoftext|>", "Ho"),  # open last turn before the eos marker
        ("<s><|user|>\nHi<|end|>\n<|assistant|>\nHo<|end|>\n", "Ho"),  # a leading BOS is fine
    ],
)
def test_phi3_markup_endings(text, expected):
    assert data.to_messages({"text": text}, "text")[-1]["content"] == expected


def test_text_before_the_first_role_tag_is_a_row_error_even_after_a_bos():
    with pytest.raises(RowError, match=r"text has 'junk' before the first role tag"):
        data.to_messages({"text": "<s>junk <|user|>\nHi<|end|>\n<|assistant|>\nHo<|end|>"}, "text")


def test_the_ellipsis_appears_only_past_three_problems():
    for count, ellipsis in ((3, False), (4, True)):
        with pytest.raises(DataError) as info:
            data.normalise([{"instruction": "Hi", "output": ""}] * count, "alpaca")
        assert str(info.value).count("row ") == 3 and ("; ...)" in str(info.value)) is ellipsis


def test_split_eval_edges():
    rows = [[{"role": "assistant", "content": str(i)}] for i in range(10)]
    assert data.split_eval(rows, 0.2) == data.split_eval(rows, 0.2, seed=42)  # the default seed is the training seed
    assert [len(part) for part in data.split_eval(rows[:2], 0.9)] == [1, 1]  # one row always stays to train on
    with pytest.raises(DataError, match=r"data.eval_fraction: 1.0 is outside \[0, 1\)"):
        data.split_eval(rows, 1.0)


def test_more_row_and_format_errors_word_what_is_wrong():
    cases = [
        (
            {"conversations": [{"from": ["human"], "value": "Hi"}]},
            "sharegpt",
            "message 1 has from ['human']; expected",
        ),
        ({"conversations": ["Hi"]}, "sharegpt", "message 1 is str, expected a {from, value} object"),
        ({"messages": "[not json"}, "messages", "messages is text that is not a valid JSON list ("),
        ({"conversations": "[oops"}, "sharegpt", "conversations is text that is not a valid JSON list ("),
        ({"messages": 3}, "messages", "messages is int, expected a list of {role, content} messages"),
        ({"prompt": 3, "completion": "x"}, "prompt_completion", "prompt is int, expected a string or a list"),
        ({"prompt": [3], "completion": "x"}, "prompt_completion", "message 1 is int, expected a {role, content}"),
        ({"prompt": "[", "completion": "x"}, "prompt_completion", None),  # a plain string prompt is fine
        (
            {"prompt": [{"role": "user", "content": "Hi"}], "completion": 5},
            "prompt_completion",
            "completion is int, expected a string or a list",
        ),
        ({"prompt": "Hi", "completion": ["x"]}, "prompt_completion", "message 2 is str, expected a {role, content}"),
        ({"text": "Hi<|end|>"}, "text", "text has <|end|> but no <|system|>, <|user|> or <|assistant|> tag"),
    ]
    for row, fmt, message in cases:
        if message is None:
            assert data.to_messages(row, fmt)[-1]["content"] == "x"
            continue
        with pytest.raises(RowError) as info:
            data.to_messages(row, fmt)
        assert str(info.value).startswith(message), (row, str(info.value))
    with pytest.raises(DataError) as info:
        data.required_columns("chatml")
    assert str(info.value) == (
        "data.format: unknown format 'chatml'. Use auto or one of messages, sharegpt, alpaca, prompt_completion, "
        "preference, text, columns."
    )


def test_the_missing_columns_message_suggests_a_mapping_of_the_data_s_own_columns():
    with pytest.raises(DataError) as info:
        data.normalise([{"q": "Hi", "a": "Ho"}], "alpaca")
    assert str(info.value) == (
        "data.format: format alpaca needs the columns ['instruction', 'output'], but the dataset has ['q', 'a']; "
        "map its columns (set data.column_mapping to `q=user,a=assistant` and set data.format to `auto`)."
    )
    with pytest.raises(DataError, match=r"it looks like sharegpt data \(set data.format to `sharegpt`\)"):
        data.normalise([{"conversations": []}], "alpaca")


def test_a_preview_reads_the_first_rows_of_a_local_file_and_refuses_a_parquet_bomb(tmp_path, monkeypatch):
    """A few KB of Parquet can unpack to gigabytes (a 27 KB file took 488 s and 2.7 GB of the web server): a preview
    or a pre-queue check streams the first rows, and refuses a first row group over its budget before reading it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import trainer.data.load

    monkeypatch.setattr(trainer.data.load, "PREVIEW_BYTES", 2 * 2**20)  # 2 MB here; 256 MB in the app
    rows = [{"instruction": f"say {i}", "output": "a" * 100_000} for i in range(30)]  # 3 MB of text
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bomb.parquet")  # one value, dictionary-encoded
    assert (tmp_path / "bomb.parquet").stat().st_size < 100_000
    with pytest.raises(DataError, match="bomb.parquet unpacks to more than 2 MB in its first rows, more than a prev"):
        data.prepare(DataConfig(dataset_name=str(tmp_path / "bomb.parquet")), limit=200)
    one = [{"instruction": "x", "output": "b" * 3_000_000}]  # one long value: its pages unpack past the budget
    pq.write_table(pa.Table.from_pylist(one), tmp_path / "long.parquet", compression="zstd")
    with pytest.raises(DataError, match="unpacks to more than 2 MB in its first row group"):
        data.prepare(DataConfig(dataset_name=str(tmp_path / "long.parquet")), limit=200)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet", row_group_size=5)
    first = data.prepare(DataConfig(dataset_name=str(tmp_path / "rows.parquet"), eval_fraction=0), limit=4)
    assert [m[0]["content"] for m in first.train["messages"]] == ["say 0", "say 1", "say 2", "say 3"]
    sliced = DataConfig(dataset_name=str(tmp_path / "rows.parquet"), dataset_train_split="train[7:9]", eval_fraction=0)
    assert [m[0]["content"] for m in data.prepare(sliced, limit=50).train["messages"]] == ["say 7", "say 8"]
    assert len(data.prepare(DataConfig(dataset_name=str(tmp_path / "bomb.parquet"), eval_fraction=0)).train) == 30


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_a_preview_of_a_big_local_file_reads_its_first_rows_and_counts_the_rest_from_the_file(tmp_path, suffix):
    rows = pd.DataFrame({"instruction": [f"say {i}" for i in range(1_500)], "output": ["ok"] * 1_500})
    path = tmp_path / f"big{suffix}"
    {".jsonl": lambda: rows.to_json(path, orient="records", lines=True), ".parquet": lambda: rows.to_parquet(path),
     ".csv": lambda: rows.to_csv(path, index=False)}[suffix]()  # fmt: skip
    p = data.preview(DataConfig(dataset_name=str(path)), data.preview_tokenizer("tiny-phi3"), 128, rows=1_000)
    assert (p.n_input, p.sampled, p.n_total) == (1_000, True, 1_500)
    assert p.extent == "the first 1,000 rows of the file; it has 1,500 rows"
