"""Every dataset shape handled or refused clearly (issue 15): tool calls, content parts, KTO, preference pairs,
multimodal rows, template slots, the malformed share, and the data-quality report.

The rows are written in the shapes of real public datasets: glaive-function-calling / LLaMA-Factory's
glaive_toolcall demo (ShareGPT with function_call/observation and a JSON ``tools`` column), OpenAI chat logs
(``tools``, ``tool_calls`` with JSON-text arguments, ``tool`` results, ``content: null``), TRL's conversational
shapes (content parts; prompt/chosen/rejected; KTO prompt/completion/label), Anthropic HH (Human:/Assistant: text),
LLaVA-style rows (``<image>`` markers and an ``images`` column) and LLaMA-Factory's identity.json ({{name}} slots).
"""

from __future__ import annotations

import json

import pytest

from trainer import data
from trainer.data import DataError, RowError
from trainer.data.quality import format_quality, malformed_problem, quality_report
from trainer.data.shapes import fill_placeholders, placeholder_slots

LOAN_TOOLS = [
    {
        "name": "calculate_loan_payment",
        "description": "Calculate the monthly loan payment",
        "parameters": {
            "type": "object",
            "properties": {"principal": {"type": "number"}, "interest_rate": {"type": "number"}},
            "required": ["principal", "interest_rate"],
        },
    }
]
CALL = {"name": "calculate_loan_payment", "arguments": {"principal": 50000, "interest_rate": 5}}


def glaive_row(with_call: bool) -> dict:
    """A glaive/LLaMA-Factory ShareGPT row: the tools as JSON text, the call and its result as turns."""
    turns = [{"from": "human", "value": "What would I pay each month on a 50000 loan at 5 %?"}]
    if with_call:
        turns += [
            {"from": "function_call", "value": json.dumps(CALL)},
            {"from": "observation", "value": '{"monthly_payment": 530.33}'},
        ]
    turns.append({"from": "gpt", "value": "About $530.33 a month." if with_call else "I need the loan term first."})
    return {"conversations": turns, "tools": json.dumps(LOAN_TOOLS)}


def openai_row() -> dict:
    """An OpenAI-style row: two parallel calls (arguments as JSON text, content null), two results, a reply."""
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": c})},
        }
        for i, c in enumerate(["Paris", "Oslo"])
    ]
    return {
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_0", "content": "18 C, sunny"},
            {"role": "tool", "tool_call_id": "call_1", "content": "4 C, rain"},
            {"role": "assistant", "content": "Paris: 18 C and sunny. Oslo: 4 C with rain."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    }


def test_sharegpt_tool_rows_are_all_kept_with_the_call_and_the_result_rendered():
    rows = [glaive_row(with_call=i % 3 != 0) for i in range(8)]
    out = data.normalise(rows, "auto")
    assert out.format == "sharegpt" and len(out.rows) == 8 and out.problems == []  # no row with tool use dropped
    system, user, call, result, reply = out.rows[1]
    assert system == {"role": "system", "content": f"<|tool|>{json.dumps(LOAN_TOOLS)}<|/tool|>"}
    assert call == {"role": "assistant", "content": f"<|tool_call|>[{json.dumps(CALL)}]<|/tool_call|>"}
    assert result == {"role": "user", "content": '<|tool_response|>{"monthly_payment": 530.33}<|/tool_response|>'}
    assert reply["role"] == "assistant" and user["role"] == "user"


def test_openai_tool_calls_become_one_call_turn_and_one_result_turn():
    (messages,) = data.normalise([openai_row()], "auto").rows
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert messages[0]["content"].startswith('You are a weather bot.\n<|tool|>[{"name": "get_weather"')
    calls = json.loads(messages[2]["content"].removeprefix("<|tool_call|>").removesuffix("<|/tool_call|>"))
    assert calls == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
    ]
    assert messages[3]["content"] == (
        "<|tool_response|>18 C, sunny<|/tool_response|>\n<|tool_response|>4 C, rain<|/tool_response|>"
    )


def test_tool_calls_are_trained_on_and_tool_results_and_schemas_are_not(phi3_tokenizer):
    """TRL's assistant-only loss (the spans `row_tokens` reads from the training template): the call and the final
    reply are learned; the schema in the system turn and the tool's result are context only."""
    from trainer.estimate.tokens import row_tokens

    (messages,) = data.normalise([openai_row()], "auto").rows
    rendered = phi3_tokenizer.apply_chat_template(messages, tokenize=False)
    assert '<|system|>\nYou are a weather bot.\n<|tool|>[{"name": "get_weather"' in rendered
    assert '<|assistant|>\n<|tool_call|>[{"name": "get_weather"' in rendered and "<|/tool_call|><|end|>" in rendered
    assert "<|user|>\n<|tool_response|>18 C, sunny<|/tool_response|>\n<|tool_response|>4 C" in rendered
    (tokens,) = row_tokens(phi3_tokenizer, [messages])
    ids = phi3_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    learned = "".join(phi3_tokenizer.decode(ids[start:end]) for start, end in tokens.spans)
    assert '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}' in learned
    assert "Paris: 18 C and sunny" in learned
    assert "<|tool_response|>" not in learned and "<|tool|>" not in learned and "Weather in Paris" not in learned


def test_text_content_parts_are_joined_and_media_parts_refused():
    parts = [{"type": "text", "text": "Describe the moon"}, {"type": "text", "text": "in one line."}]
    row = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": [parts[0]]}]}
    assert data.to_messages(row, "messages")[0]["content"] == "Describe the moon\nin one line."
    image = {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, parts[0]]},
            {"role": "assistant", "content": "A rock."},
        ]
    }
    with pytest.raises(RowError, match="message 1 has an image part; Phi-3-mini reads text only"):
        data.to_messages(image, "messages")


def test_kto_rows_labelled_undesirable_are_left_out_and_said_so():
    rows = [
        {"prompt": f"Question {i}", "completion": f"{'Good' if i < 5 else 'Bad'} answer {i}", "label": i < 5}
        for i in range(8)
    ]
    out = data.normalise(rows, "auto")
    assert len(out.rows) == 5 and out.left_out == 3 and out.problems == []
    assert not any("Bad" in m["content"] for row in out.rows for m in row)  # never train on an undesirable reply
    assert out.notes == [
        "KTO data (a boolean 'label' column): 5 of 8 rows are desirable (label=true); the 3 undesirable ones are "
        "left out, so no undesirable reply is trained on."
    ]
    with pytest.raises(DataError, match="KTO data .* with no desirable row"):
        data.normalise([{**r, "label": False} for r in rows], "auto")


def test_preference_data_is_named_and_trains_on_chosen():
    rows = [{"prompt": "Hi", "chosen": "Ahoy!", "rejected": "Go away."}]
    out = data.normalise(rows, "auto")
    assert out.format == "preference" and out.rows == [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy!"}]
    ]
    assert out.notes[0].startswith("Preference data (chosen/rejected): with method sft, training on the chosen")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "<image>What is this?"},
                        {"role": "assistant", "content": "A cat."},
                    ],
                    "images": ["cat.png"],
                }
            ],
            "this is a multimodal dataset (column images); Phi-3-mini reads text only (Phi-3-vision is not supported)",
        ),
        (
            [
                {
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhat is shown?"},
                        {"from": "gpt", "value": "A dog."},
                    ]
                }
            ],
            "every row holds images, audio or video (row 1: message 1 has an <image> marker",
        ),
    ],
)
def test_multimodal_data_is_refused_with_the_reason(rows, message):
    with pytest.raises(DataError) as info:
        data.normalise(rows, "auto")
    assert message in str(info.value)


def test_template_slots_are_found_filled_and_code_braces_left_alone():
    reply = "I am {{name}}, an assistant developed by {{ author }}."
    assert placeholder_slots(reply) == ["name", "author"]
    assert placeholder_slots("Hello, I am {name}.") == ["name"]
    assert placeholder_slots("```python\nprint(f'{value}')\n```") == []  # code, not a slot
    assert fill_placeholders(reply, {"name": "Nova", "author": "Ana"}) == "I am Nova, an assistant developed by Ana."
    rows = [{"instruction": "Who are you?", "output": reply}, {"instruction": "hi", "output": "Hello! I am {{name}}."}]
    report = quality_report(data.normalise(rows, "auto").rows)
    assert report.slots == {"name": 2, "author": 1} and report.slot_rows == 2
    assert "fill them in (set data.placeholders to `name=...,author=...`)" in format_quality(report, markdown=False)
    filled = data.normalise(rows, "auto", placeholders={"name": "Nova", "author": "Ana"})
    assert filled.rows[0][-1]["content"] == "I am Nova, an assistant developed by Ana."
    assert quality_report(filled.rows).slots == {}


def test_filling_placeholders_cannot_grow_a_row_without_bound():
    """500 slots and the longest value the config takes (2,000 characters) would make a 1 MB message: the row is
    left out as malformed, at once, and the others are kept."""
    import time

    from trainer.data.shapes import FILLED_LIMIT

    bomb = {"instruction": "x", "output": "{{a}}" * 500}
    start = time.perf_counter()
    with pytest.raises(RowError, match=f"over {FILLED_LIMIT:,} characters"):
        fill_placeholders(bomb["output"], {"a": "v" * 2_000})
    prepared = data.normalise(
        [bomb] * 50 + [{"instruction": "hi", "output": "I am {{a}}."}], "alpaca", placeholders={"a": "v" * 2_000}
    )
    assert time.perf_counter() - start < 2  # it stops at the limit (was 92 s of CPU for one such dataset)
    assert len(prepared.rows) == 1 and len(prepared.problems) == 50
    assert "placeholders" in prepared.problems[0]
    assert fill_placeholders("{{a}}" * 40, {"a": "v" * 2_000}) == "v" * 80_000  # under the limit: filled


def test_more_than_five_percent_malformed_blocks_until_accepted():
    good = {"instruction": "Say hi", "output": "Hi!"}
    one_bad = data.normalise([good] * 29 + [{"instruction": "x", "output": 3}], "alpaca")
    assert malformed_problem(one_bad, allow=False) is None  # 1 of 30 = 3.3 %
    two_bad = data.normalise([good] * 28 + [{"instruction": "x", "output": 3}] * 2, "alpaca")
    problem = malformed_problem(two_bad, allow=False)
    assert problem.startswith("data.allow_malformed: 2 of 30 rows (6.7 %) cannot be read (row 29: output is int")
    assert "train on the 28 usable rows (set data.allow_malformed)" in problem
    assert malformed_problem(two_bad, allow=True) is None


def test_the_quality_report_counts_in_one_pass():
    rows = [
        {"instruction": "Hi", "output": "Hello there, sailor."},
        {"instruction": "Hi", "output": "Hello there, sailor."},  # exact duplicate of row 1
        {"instruction": "Yes?", "output": "Aye."},  # one word
        {"instruction": "Long", "output": "word " * 2001},
        {"instruction": "Привет", "output": "Здравствуй, моряк."},
        {"instruction": "Empty", "output": "   "},  # left out
    ]
    out = data.normalise(rows, "alpaca")
    report = quality_report(out.rows, out.numbers, out.kinds)
    assert (report.rows, report.duplicates, report.duplicate_examples) == (5, 1, [(2, 1)])
    assert (report.empty_replies, report.short_examples, report.long_examples) == (1, [3], [4])
    assert report.scripts == {"Latin": 0.8, "Cyrillic": 0.2}
    text = format_quality(report, markdown=False)
    assert "exact duplicate rows" in text and "1 (20.0 %)" in text and "row 2 = row 1" in text
    assert "Latin 80 %, Cyrillic 20 %" in text
    table = format_quality(report, markdown=True)
    assert (
        table.startswith("| data check | rows | details |\n| --- | ---: | --- |")
        and "| empty replies | 1 | left out |" in table
    )
