"""Preference rows in every shape people bring become TRL's conversational pairs (or KTO's labelled completions), and
a method is checked against the data before anything is queued."""

from __future__ import annotations

import pytest

from trainer.data.pairs import (
    SHAPES,
    Pair,
    Unpaired,
    method_problem,
    pair_counts,
    pairs_note,
    pairs_table,
    preference_shape,
    read_pairs,
    split_pair,
    to_pair,
    to_unpaired,
    unpaired_from_pairs,
)
from trainer.data.shapes import RowError

USER = {"role": "user", "content": "What is the moon?"}
CHOSEN = {"role": "assistant", "content": "Ahoy! The moon be a rock, matey."}
REJECTED = {"role": "assistant", "content": "The moon is a rock."}
EXPECTED = Pair([USER], [CHOSEN], [REJECTED])

# One row of each shape, all saying the same pair (sources: TRL's dataset formats guide; LLaMA-Factory's
# data/dpo_en_demo.json and its Alpaca-style pairs; HuggingFaceH4/ultrafeedback_binarized; Anthropic/hh-rlhf).
ROWS = {
    "prompt_pairs": {"prompt": USER["content"], "chosen": CHOSEN["content"], "rejected": REJECTED["content"]},
    "prompt_pairs conversational": {"prompt": [USER], "chosen": [CHOSEN], "rejected": [REJECTED]},
    "ultrafeedback": {
        "prompt": USER["content"],
        "chosen": [USER, CHOSEN],
        "rejected": [USER, REJECTED],
        "score_chosen": 8.0,
        "score_rejected": 3.5,
    },
    "implicit_pairs": {"chosen": [USER, CHOSEN], "rejected": [USER, REJECTED]},
    "hh_pairs": {
        "chosen": f"\n\nHuman: {USER['content']}\n\nAssistant: {CHOSEN['content']}",
        "rejected": f"\n\nHuman: {USER['content']}\n\nAssistant: {REJECTED['content']}",
    },
    "sharegpt_pairs": {
        "conversations": [{"from": "human", "value": USER["content"]}],
        "chosen": {"from": "gpt", "value": CHOSEN["content"]},
        "rejected": {"from": "gpt", "value": REJECTED["content"]},
    },
    "alpaca_pairs": {
        "instruction": USER["content"],
        "input": "",
        "chosen": CHOSEN["content"],
        "rejected": REJECTED["content"],
    },
}


@pytest.mark.parametrize("name", ROWS)
def test_every_paired_shape_is_detected_and_becomes_the_same_pair(name):
    row = ROWS[name]
    shape = preference_shape(list(row), row)
    assert shape == name.split()[0].replace("ultrafeedback", "prompt_pairs")
    assert to_pair(row, shape) == EXPECTED
    assert to_pair(row, shape).trl_row() == {"prompt": [USER], "chosen": [CHOSEN], "rejected": [REJECTED]}


def test_a_longer_conversation_keeps_its_earlier_turns_in_the_prompt():
    earlier = [{"role": "system", "content": "Be brief."}, USER, {"role": "assistant", "content": "A rock."}]
    follow = {"role": "user", "content": "And the sun?"}
    pair = to_pair({"chosen": [*earlier, follow, CHOSEN], "rejected": [*earlier, follow, REJECTED]}, "implicit_pairs")
    assert pair == Pair([*earlier, follow], [CHOSEN], [REJECTED])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"prompt": "What is the moon?", "completion": "Ahoy! The moon be a rock, matey.", "label": True},
            Unpaired([USER], [CHOSEN], True),
        ),
        ({"prompt": [USER], "completion": [REJECTED], "label": False}, Unpaired([USER], [REJECTED], False)),
        ({"messages": [USER, CHOSEN], "label": True}, Unpaired([USER], [CHOSEN], True)),
    ],
)
def test_labelled_completions_are_kto_examples_with_their_label(row, expected):
    assert preference_shape(list(row), row) == "kto"
    assert to_unpaired(row) == expected


def test_a_pair_gives_kto_one_desirable_and_one_undesirable_example():
    assert unpaired_from_pairs([EXPECTED]) == [Unpaired([USER], [CHOSEN], True), Unpaired([USER], [REJECTED], False)]


@pytest.mark.parametrize(
    ("row", "shape", "message"),
    [
        ({"chosen": [CHOSEN], "rejected": [REJECTED]}, "implicit_pairs", "share no prompt"),
        ({"prompt": "Hi", "chosen": 3, "rejected": "x"}, "prompt_pairs", "chosen is int, expected text"),
        ({"conversations": [], "chosen": [CHOSEN], "rejected": {}}, "sharegpt_pairs", "expected one {from, value}"),
        ({"prompt": "Hi", "chosen": "Ahoy!"}, "prompt_pairs", "no 'rejected' column"),
    ],
)
def test_a_malformed_pair_is_a_row_error_that_says_why(row, shape, message):
    with pytest.raises(RowError, match=message):
        to_pair(row, shape)


def test_a_label_that_is_not_true_or_false_is_a_row_error():
    with pytest.raises(RowError, match="label is str, expected true or false"):
        to_unpaired({"prompt": "Hi", "completion": "Ahoy!", "label": "yes"})


def test_identical_sides_keep_their_last_reply_and_are_counted():
    same = split_pair([USER, CHOSEN], [USER, CHOSEN])
    assert same == Pair([USER], [CHOSEN], [CHOSEN])
    empty = Pair([USER], [CHOSEN], [{"role": "assistant", "content": " "}])
    assert pair_counts([EXPECTED, same, empty]) == {"pairs": 3, "identical": 1, "empty": 1}


def test_data_without_preferences_has_no_preference_shape():
    assert preference_shape(["messages"], {"messages": [USER, CHOSEN]}) is None
    assert preference_shape(["prompt", "completion", "label"], {"label": "yes"}) is None  # not a true/false label


@pytest.mark.parametrize(
    ("method", "shape", "message"),
    [
        ("dpo", None, "training.method: DPO trains on preferences, but this data is messages rows"),
        ("orpo", None, "ORPO trains on preferences"),
        ("kto", None, "KTO trains on preferences"),
        ("dpo", "kto", "DPO needs a chosen and a rejected reply for each prompt"),
        ("orpo", "kto", "Use method kto for labelled replies"),
    ],
)
def test_a_method_the_data_cannot_serve_is_refused_with_the_fix(method, shape, message):
    assert message in method_problem(method, shape, "messages")


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "kto"])
def test_every_method_trains_on_pairs_and_sft_on_anything(shape):
    assert all(method_problem(method, shape, "messages") is None for method in ("sft", "dpo", "kto", "orpo"))
    assert method_problem("kto", "kto", "messages") is None
    assert method_problem("sft", None, "messages") is None


def test_the_preview_note_counts_pairs_that_teach_nothing_and_the_table_shows_them_side_by_side():
    rows = [ROWS["prompt_pairs"], {"prompt": "Hi", "chosen": "Same.", "rejected": "Same."}, {"prompt": "Hi"}]
    pairs = read_pairs(rows, "prompt_pairs")  # the third row has no replies: not a pair
    note = pairs_note(pairs, "prompt_pairs")
    assert note.startswith("Preference pairs (prompt/chosen/rejected") and ": 2; 1 with the same reply" in note
    first, second = pairs_table(pairs)
    assert first[:2] == ("What is the moon?", "Ahoy! The moon be a rock, matey.") and first[2].startswith("The moon")
    assert second == ("Hi", "Same.", "Same.") and pairs_table(pairs, n=1) == [first]
