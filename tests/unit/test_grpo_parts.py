"""GRPO's pure parts: its settings under TRL's names and weights, its prompt data and the columns its rewards read,
the checks of its settings, the completions it records, and who may name a reward module."""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque

import pytest

from trainer.config import RunConfig, load_config
from trainer.data.prompts import REFERENCE_COLUMN, data_problems, prompt_rows, to_prompt
from trainer.data.shapes import RowError
from trainer.grpo import completion_records
from trainer.methods import grpo_settings


def _grpo(**changes) -> RunConfig:
    cfg = load_config(preset="tiny-demo-grpo")
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
    return cfg


def test_grpo_settings_are_grpoconfig_fields_with_the_menu_s_weights():
    from trl import GRPOConfig

    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    cfg = _grpo(**{"grpo.rewards": "words:0.5, length_target:2", "grpo.beta": 0.001, "grpo.num_generations": 8})
    settings = grpo_settings(cfg, names)
    assert set(settings) <= names  # every one is TRL's, under TRL's name
    assert settings["reward_weights"] == [0.5, 2.0]  # in the menu's order, as the functions are handed over
    assert (settings["num_generations"], settings["beta"], settings["max_completion_length"]) == (8, 0.001, 32)
    assert settings["learning_rate"] == cfg.training.learning_rate and settings["max_steps"] == 60
    assert "packing" not in settings and "rewards" not in settings and "prompt_column" not in settings


def test_a_text_prompt_becomes_a_user_turn_and_a_chat_keeps_its_last_reply_as_reference():
    messages, rest = to_prompt({"question": "What is 2+2?", "answer": "#### 4"}, "question", "Think first.")
    assert messages == [{"role": "system", "content": "Think first."}, {"role": "user", "content": "What is 2+2?"}]
    assert rest == {"answer": "#### 4"}  # the columns the rewards read stay beside the prompt
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy!"}]
    messages, rest = to_prompt({"messages": chat}, "messages")
    assert messages == chat[:1] and rest == {REFERENCE_COLUMN: "Ahoy!"}
    with pytest.raises(RowError, match="prompt is empty"):
        to_prompt({"prompt": "  "}, "prompt")
    with pytest.raises(RowError, match="no user turn"):
        to_prompt({"prompt": [{"role": "system", "content": "x"}]}, "prompt")
    rows, account = prompt_rows([{"prompt": "a?"}, {"prompt": 3}, {"prompt": "b?"}], "prompt")
    assert [r["prompt"][0]["content"] for r in rows] == ["a?", "b?"] and account.numbers == [1, 3]
    assert account.problems == ["row 2: prompt is int, expected text or a list of chat messages"]


def test_the_data_check_names_the_prompt_column_and_each_reward_s_missing_column():
    cfg = _grpo(**{"grpo.rewards": "answer_match, tool_call, think_format"})
    (missing_prompt, *_) = data_problems(cfg, ["question", "answer"])
    assert missing_prompt.startswith("grpo.prompt_column: this data has no 'prompt' column and no 'messages' column")
    assert "set grpo.prompt_column to `question`" in missing_prompt
    cfg.grpo.prompt_column = "question"
    (problem,) = data_problems(cfg, ["question", "answer"])  # answer_match has its column; tool_call has none
    assert problem.startswith("grpo.tools_column: reward tool_call") and "(it has question, answer)" in problem
    cfg.grpo.rewards, cfg.grpo.answer_column = "answer_match", REFERENCE_COLUMN
    assert data_problems(cfg, ["messages"]) == []  # a chat row's last reply is its reference


def test_grpo_settings_are_checked_before_anything_runs():
    def problems(**changes):
        return [p.split(":")[0] for p in _grpo(**changes).problems()]

    assert problems() == []
    assert problems(**{"grpo.num_generations": 3}) == ["training.per_device_train_batch_size"]  # 8 rows: no 3-groups
    assert problems(**{"grpo.generation_batch_size": 12}) == ["grpo.generation_batch_size"]  # 12 is not 4-divisible
    assert problems(**{"grpo.rewards": "answer_match:x"}) == ["grpo.rewards"]
    assert problems(**{"grpo.rewards": "format_regex"}) == ["grpo.format_pattern"]
    assert problems(**{"grpo.rewards": "format_regex", "grpo.format_pattern": "(("}) == ["grpo.format_pattern"]
    assert problems(**{"grpo.required_words": []}) == ["grpo.required_words"]  # the preset's words reward has none
    assert problems(**{"grpo.rewards": "", "grpo.reward_module": "mine.py"}) == []  # a module's functions alone
    assert problems(**{"training.method": "sft", "grpo.num_generations": 3}) == []  # not read by other methods


def test_the_completions_recorded_carry_the_prompt_s_last_turn_each_reward_and_the_weighted_total():
    logs = {
        "prompt": deque([[{"role": "user", "content": "Q1?"}]] * 2 + [[{"role": "user", "content": "Q2?"}]] * 3),
        "completion": deque([[{"role": "assistant", "content": f"answer {i}"}] for i in range(5)]),
        "rewards": defaultdict(deque, {"a": deque([1.0, 0.0, 1.0, 0.0, 1.0]), "b": deque([0.5, 0.5, 0.0, 0, 0])}),
    }
    records = completion_records(logs, {"a": 1.0, "b": 2.0}, n=4)
    assert [r["prompt"] for r in records] == ["Q1?", "Q1?", "Q2?", "Q2?"]
    assert [r["completion"] for r in records] == ["answer 0", "answer 1", "answer 2", "answer 3"]
    assert [r["reward"] for r in records] == [2.0, 1.0, 1.0, 0.0] and records[0]["rewards"] == {"a": 1.0, "b": 0.5}


def test_a_completion_event_prints_as_one_line(capsys):
    from trainer.console import print_event

    print_event({"step": 4, "completions": [{"completion": "Ahoy\n  matey", "reward": 0.75, "rewards": {}}]})
    print_event({"step": 4, "total_steps": 60, "loss": 0.1, "reward": 0.5})
    assert capsys.readouterr().out.splitlines() == [
        "[step 4] completion (reward 0.75): Ahoy matey",
        "step 4/60  loss 0.1000  reward 0.500",
    ]


def test_the_result_line_gives_the_held_out_reward_and_each_function_s():
    from trainer.rewards import reward_change

    before = {"reward": 0.5, "rewards/a": 0.25, "prompts": 24}
    after = {"reward": 0.75, "rewards/a": 0.5, "prompts": 24}
    assert reward_change(before, after) == "mean reward on 24 held-out prompts: 0.500 -> 0.750 (a 0.250 -> 0.500)"
    assert reward_change(None, after) is None


def test_only_the_person_at_the_machine_may_name_a_reward_module(monkeypatch):
    from trainer.runs.access import REWARD_MODULE_REFUSED, Caller, reward_module_problem

    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    local, alice = Caller(None, None, local=True), Caller("alice", "hf_alice")
    assert reward_module_problem(local, "mine.py") is None
    assert reward_module_problem(alice, "mine.py") == REWARD_MODULE_REFUSED  # a signed-in user of a shared app
    assert reward_module_problem(alice, "  ") is None  # none named
    monkeypatch.setenv("OAUTH_CLIENT_ID", "x")  # on a Space even the "local" caller is refused
    assert reward_module_problem(local, "mine.py") == REWARD_MODULE_REFUSED


def test_the_trl_export_names_a_reward_module_s_functions_without_running_it(tmp_path):
    from trainer.trl_export import reward_names, rewards_source

    module = tmp_path / "mine.py"
    module.write_text("raise SystemExit('never run')\n\ndef reward_a(completions, **kw):\n    return []\n\n"
                      "def helper():\n    pass\n")  # fmt: skip
    cfg = _grpo(**{"grpo.reward_module": str(module), "grpo.rewards": "answer_match:2, words:0.5"})
    assert reward_names(cfg) == (["answer_match", "words", "reward_a"], [2.0, 0.5, 1.0])
    source = rewards_source(cfg)
    assert "from trl_reward_module import reward_a" in source
    assert "answer_match = reward_function('answer_match', 'answer', **{})" in source
    assert "words = reward_function('words', None, **{'required': ['sky', 'water'], 'forbidden': []})" in source


def test_the_gsm8k_preset_scores_a_gsm8k_row_as_its_rewards_say():
    """GSM8K's own row shape (openai/gsm8k, config main: question, answer ending '#### <n>'), offline."""
    from trainer.config import preset_config
    from trainer.grpo import reward_funcs, score

    cfg = preset_config("grpo-gsm8k")
    row = {"question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
           "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                     "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"}  # fmt: skip
    assert data_problems(cfg, list(row)) == []
    (prompt,), _ = prompt_rows([row], cfg.grpo.prompt_column, cfg.data.system_prompt)
    assert [m["role"] for m in prompt["prompt"]] == ["system", "user"] and "<think>" in prompt["prompt"][0]["content"]
    funcs, weights = reward_funcs(cfg)
    completions = [
        "<think>48 / 2 = 24 in May, 48 + 24 = 72.</think> The answer is 72.",  # right, and in the format
        "<think>48 + 48 = 96</think> The answer is 96.",  # wrong answer, right format
        "The answer is $72.",  # right answer, no reasoning block
    ]
    rows = [prompt["prompt"]] * 3
    scores = score(funcs, weights, rows, completions, {"answer": [row["answer"]] * 3})
    assert scores["answer_match"] == [1.0, 0.0, 1.0] and scores["think_format"] == [1.0, 1.0, 0.0]
    assert scores["reward"] == [1.5, 0.5, 1.0]  # answer_match:1.0, think_format:0.5 (the default menu)


def test_a_hugging_face_job_is_refused_a_local_reward_module(tmp_path, monkeypatch):
    """A Job runs in the Space's image, without this machine's files: the run is refused before it is queued."""
    from trainer.preflight import RefusedRun
    from trainer.runs.access import Caller
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import JOBS_REWARD_MODULE, RunService

    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    monkeypatch.setenv("SPACE_ID", "owner/studio")  # the image a Job would run in
    service = RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false"))
    cfg = _grpo(**{"grpo.reward_module": str(tmp_path / "mine.py")})
    with pytest.raises(RefusedRun) as refused:
        service.start(Caller(None, "hf_local", local=True), cfg, flavor="a10g-large")
    assert refused.value.problems == [JOBS_REWARD_MODULE]
    assert service.queue.store.list() == []
