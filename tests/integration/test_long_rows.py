"""Rows longer than max_length with padding-free batches (which TRL does not truncate): cut from TRL's own tokens."""

from __future__ import annotations

import json

import pytest

from trainer.config import load_config, preset_config
from trainer.modeling import load_base_model, load_tokenizer
from trainer.runs import folder as rf

pytestmark = pytest.mark.slow
MAX = 48
SHORT = [{"role": "user", "content": "What is rain?"}, {"role": "assistant", "content": "Water from the clouds."}]
LONG_REPLY = [
    {"role": "user", "content": "Tell me a story."},
    {"role": "assistant", "content": "Once upon a time " * 40},
]
LONG_PROMPT = [{"role": "user", "content": "Read this. " * 60}, {"role": "assistant", "content": "Done."}]


def test_fit_to_max_length_cuts_rows_and_drops_those_left_without_a_reply(tiny_model_path, tmp_path):
    from datasets import Dataset

    from trainer.training import fit_to_max_length, make_trainer

    cfg = load_config(preset="tiny-demo", overrides=[f"max_length={MAX}"])
    rows = Dataset.from_dict({"messages": [SHORT, LONG_REPLY, LONG_PROMPT, SHORT]})
    trainer = make_trainer(
        cfg, tmp_path, load_base_model(cfg.model), load_tokenizer(cfg.model), rows, rows, padding_free=True
    )
    before = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert sum(n > MAX for n in before) == 2  # TRL tokenised without truncating (padding-free)
    assert fit_to_max_length(trainer, MAX) == (4, 2)  # train + eval: 2 cut each, of which 1 left with no reply each
    for dataset in (trainer.train_dataset, trainer.eval_dataset):
        lengths = [len(ids) for ids in dataset["input_ids"]]
        assert len(lengths) == 3 and max(lengths) == MAX
        assert all(len(row["labels"]) == len(row["input_ids"]) for row in dataset)
        assert all(any(label != -100 for label in row["labels"]) for row in dataset)
    assert trainer.data_collator.padding_free  # still padding-free: no padded batches needed


def test_a_run_with_long_rows_trains_padding_free_without_tokenising_twice(tiny_model_path, tmp_path, monkeypatch):
    import importlib

    def no_second_pass(*args, **kwargs):
        raise AssertionError("rows were tokenised again outside TRL")

    for module in ("trainer.data", "trainer.data.preview"):
        monkeypatch.setattr(importlib.import_module(module), "token_lengths", no_second_pass)
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in [SHORT, LONG_REPLY] * 8))
    overrides = [
        f"dataset_name={data}",
        f"max_length={MAX}",
        "max_steps=2",
        "eval_steps=2",
        "save_steps=2",
        "sample_prompts=0",
        "eval_fraction=0",
    ]
    events = []
    from trainer.training import run

    run(load_config(preset="tiny-demo", overrides=overrides), on_event=events.append, run_dir=tmp_path / "run")
    messages = [e["message"] for e in events if "message" in e]
    assert f"8 rows exceed max_length {MAX}: truncated to {MAX} tokens" in messages
    assert rf.read_json(tmp_path / "run" / rf.STATUS_FILE)["state"] == "succeeded"
    assert preset_config("tiny-demo").training.padding_free  # the default path is the padding-free one


def test_no_reply_left_to_learn_is_a_clear_error_and_an_emptied_eval_turns_evaluation_off(tiny_model_path, tmp_path):
    from datasets import Dataset
    from transformers.trainer_utils import IntervalStrategy

    from trainer.data import DataError
    from trainer.training import fit_to_max_length, make_trainer

    cfg = load_config(preset="tiny-demo", overrides=[f"max_length={MAX}"])
    model, tokenizer = load_base_model(cfg.model), load_tokenizer(cfg.model)
    rows = Dataset.from_dict({"messages": [SHORT, LONG_REPLY]})
    prompts_only = Dataset.from_dict({"messages": [LONG_PROMPT]})
    trainer = make_trainer(cfg, tmp_path, model, tokenizer, rows, prompts_only, padding_free=True)
    assert fit_to_max_length(trainer, MAX) == (2, 1)
    assert trainer.eval_dataset is None and trainer.args.eval_strategy == IntervalStrategy.NO
    trainer = make_trainer(cfg, tmp_path, model, tokenizer, prompts_only, None, padding_free=True)
    with pytest.raises(DataError, match=f"training.max_length: every train row's prompt fills {MAX} tokens"):
        fit_to_max_length(trainer, MAX)
