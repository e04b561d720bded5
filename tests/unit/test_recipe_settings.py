"""The settings a recipe needs to be reproduced (issue 28): the Cookbook's Alpaca prompt, an empty system turn, and
the held-out split's seed and method (datasets' train_test_split, exactly)."""

from __future__ import annotations

import datasets
import pytest

from trainer import data
from trainer.config import ConfigError, DataConfig, load_config
from trainer.data import RowStyle, split_eval, to_messages

ROW = {"instruction": "What do you think about rain?", "input": "", "output": "Rain be water, matey."}


@pytest.mark.parametrize(("n", "fraction", "seed"), [(240, 0.05, 1234), (240, 0.1, 42), (7, 0.3, 0), (2, 0.05, 5)])
def test_train_test_split_holds_out_the_rows_datasets_does_in_its_order(n, fraction, seed):
    table = datasets.Dataset.from_dict({"i": list(range(n))}).train_test_split(test_size=fraction, seed=seed)
    train, held = split_eval(list(range(n)), fraction, seed, method="train_test_split")
    assert (train, held) == (table["train"]["i"], table["test"]["i"])  # the same rows, in the same order


def test_the_studio_split_keeps_the_input_order_and_the_seed_moves_it():
    train, held = split_eval(list(range(100)), 0.1, seed=1)
    assert train == sorted(train) and held == sorted(held) and len(held) == 10
    assert split_eval(list(range(100)), 0.1, seed=2) != (train, held)


def test_the_cookbook_alpaca_prompt_keeps_input_even_when_it_is_empty():
    cookbook = RowStyle(alpaca_template="cookbook")
    assert to_messages(ROW, "alpaca", style=cookbook)[0]["content"] == "What do you think about rain?\n Input: "
    with_input = {**ROW, "input": "in London"}
    assert to_messages(with_input, "alpaca", style=cookbook)[0]["content"] == (
        "What do you think about rain?\n Input: in London"
    )
    assert to_messages(ROW, "alpaca")[0]["content"] == "What do you think about rain?"  # the studio's own
    assert to_messages(with_input, "alpaca")[0]["content"] == "What do you think about rain?\n\nin London"


def test_an_empty_system_turn_begins_rows_without_a_system_message(phi3_tokenizer):
    style = RowStyle(empty_system_turn=True)
    messages = to_messages(ROW, "alpaca", style=style)
    assert messages[0] == {"role": "system", "content": ""}
    text = phi3_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|system|>\n<|end|>\n<|user|>\nWhat do you think about rain?<|end|>")
    own = to_messages({**ROW, "system": "Talk like a pirate."}, "alpaca", style=style)
    assert own[0] == {"role": "system", "content": "Talk like a pirate."}  # a row's own system message stays
    prompted = to_messages(ROW, "alpaca", system_prompt="Be brief.", style=style)
    assert prompted[0] == {"role": "system", "content": "Be brief."}  # and so does the configured system prompt


def test_prepare_uses_the_hold_out_seed_and_method():
    cfg = DataConfig(dataset_name="examples/pirate_alpaca.json", eval_fraction=0.05)
    studio = data.prepare(cfg, seed=42)
    cookbook = data.prepare(
        DataConfig(
            dataset_name="examples/pirate_alpaca.json",
            eval_fraction=0.05,
            eval_seed=1234,
            eval_holdout="train_test_split",
            alpaca_template="cookbook",
        ),
        seed=42,  # the training seed: the hold-out seed wins
    )
    rows = data.prepare(DataConfig(dataset_name="examples/pirate_alpaca.json", eval_fraction=0), seed=42).train
    train_ids, held_ids = split_eval(list(range(len(rows))), 0.05, 1234, "train_test_split")
    prompts = [m[0]["content"] for m in rows["messages"]]
    assert [m[0]["content"] for m in cookbook.eval["messages"]] == [prompts[i] + "\n Input: " for i in held_ids]
    first = [m[0]["content"] for m in cookbook.train["messages"]][:5]
    assert first == [prompts[i] + "\n Input: " for i in train_ids[:5]]  # trained in train_test_split's order
    assert [m[0]["content"] for m in studio.eval["messages"]] != [prompts[i] for i in held_ids]


def test_the_new_settings_are_validated_and_reach_the_cli():
    overrides = ["data.alpaca_template=cookbook", "data.eval_seed=1234", "data.empty_system_turn=true"]
    cfg = load_config(preset="tiny-demo", overrides=overrides)
    assert (cfg.data.alpaca_template, cfg.data.eval_seed, cfg.data.empty_system_turn) == ("cookbook", 1234, True)
    with pytest.raises(ConfigError, match="data.eval_holdout: 'sklearn' is not a choice"):
        load_config(preset="tiny-demo", overrides=["data.eval_holdout=sklearn"])
    with pytest.raises(ConfigError, match="data.eval_seed: -1 is below the minimum 0"):
        load_config(preset="tiny-demo", overrides=["data.eval_seed=-1"])
