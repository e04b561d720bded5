"""GRPO's built-in rewards, scored on hand-made completions: right and wrong answers, good and bad formats, valid and
invalid JSON and tool calls, lengths and words; each scores the completion only, against its own row."""

from __future__ import annotations

import json

import pytest

from trainer.rewards import (
    answer_match,
    final_answer,
    format_regex,
    length_target,
    normalise,
    reward_function,
    think_format,
    tool_call,
    total_reward,
    valid_json,
    words,
)

GSM8K = "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72"  # its answer column


def chat(text: str) -> list[dict[str, str]]:
    """A completion as TRL hands a conversational one over."""
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (GSM8K, "72"),
        (r"So the total is \boxed{\frac{1}{3}}.", r"\frac{1}{3}"),
        (r"First \boxed{2}, then \boxed{7}", "7"),
        ("Let me think.\nThe answer is 1,000.", "1,000."),
        ("Some reasoning\n42", "42"),
    ],
)
def test_the_final_answer_is_found_where_each_convention_puts_it(text, answer):
    assert final_answer(text).strip() == answer


def test_numbers_are_compared_by_value_and_words_by_their_letters():
    assert normalise("$1,000.50") == normalise("1000.5") == "1000.5"
    assert normalise("72.") == normalise(" 72 ") == normalise("72.0") == "72"
    assert normalise("-0") == normalise("0.00") == "0" and normalise("-$5") == "-5"
    assert normalise("  Paris ") == normalise("paris") and normalise("72") != normalise("27")


def test_answer_match_scores_the_right_answer_one_and_a_wrong_or_missing_one_zero():
    completions = [
        chat("48 + 24 = 72, so she sold #### 72"),
        chat("She sold \\boxed{72,0}"),  # 720, not 72
        chat("The answer is 72 clips"),  # a numeric reference: the last number of the answer
        chat("48/2 = 24 in May\nso 72 in all"),  # the last line
        chat("The answer is 27, not 72... no: the answer is 24"),  # the last "answer is": 24
        "The answer is 72.",  # plain text completions too
    ]
    assert answer_match(completions, [GSM8K] * 6) == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert answer_match([chat("Answer: Paris"), chat("Answer: paris."), chat("Rome")], ["Paris"] * 3) == [1, 1, 0]


def test_answer_match_reads_each_completions_own_row():
    assert answer_match([chat("#### 1"), chat("#### 2")], ["#### 1", "#### 2"]) == [1.0, 1.0]
    assert answer_match([chat("#### 1"), chat("#### 2")], ["#### 2", "#### 1"]) == [0.0, 0.0]
    with pytest.raises(ValueError):  # never silently a shorter column
        answer_match([chat("#### 1"), chat("#### 2")], ["#### 1"])


def test_formats_the_reasoning_one_and_a_regex():
    good = chat("<think>\n48/2 = 24, 48 + 24 = 72\n</think>\n72")
    assert think_format([good, chat("<think>no end 72"), chat("72"), chat("<think>x</think>   ")]) == [1, 0, 0, 0]
    assert think_format([chat("<think>a</think><think>b</think> 1")]) == [0.0]  # one block, not two
    assert format_regex([chat("Answer: 72"), chat("72 is it")], r"Answer: \d+") == [1.0, 0.0]


def test_json_and_tool_calls():
    assert valid_json([chat('{"a": 1}'), chat("```json\n[1, 2]\n```"), chat("{'a': 1}"), chat("")]) == [1, 1, 0, 0]
    tools = json.dumps([{"name": "get_time", "parameters": {"type": "object", "required": ["city"]}}])
    completions = [
        chat('{"name": "get_time", "arguments": {"city": "Oslo"}}'),
        chat('{"name": "get_time", "arguments": "{\\"city\\": \\"Oslo\\"}"}'),  # arguments as a JSON string
        chat('{"name": "get_time", "arguments": {}}'),  # the required city is missing: partial credit
        chat('{"name": "get_weather", "arguments": {"city": "Oslo"}}'),  # not a listed tool
        chat("get_time(city='Oslo')"),  # not JSON
    ]
    assert tool_call(completions, [tools] * 5) == [1.0, 1.0, 0.5, 0.0, 0.0]


def test_length_and_words_give_partial_credit():
    assert length_target([chat("one two three four"), chat("one two"), chat(""), chat(" ".join(["w"] * 9))], 4) == [
        1.0,
        0.5,
        0.0,
        0.0,
    ]
    scores = words(
        [chat("Ahoy, matey!"), chat("Ahoy there"), chat("Hello, matey. As an AI...")], ["ahoy", "matey"], ["as an ai"]
    )
    assert scores == [1.0, 0.5, -0.5]


def test_a_reward_for_trl_scores_the_completion_not_the_prompt_and_reads_its_column():
    reward = reward_function("answer_match", column="answer")
    assert reward.__name__ == "answer_match"  # TRL logs rewards/answer_match/mean
    prompts = [[{"role": "user", "content": "The answer is 72. What is it?"}]] * 2
    completions = [chat("#### 72"), chat("I do not know")]  # the prompt holds the answer; the second does not
    assert reward(prompts=prompts, completions=completions, answer=["72", "72"]) == [1.0, 0.0]
    forbidden = reward_function("words", forbidden=["answer"])
    assert forbidden(prompts=prompts, completions=completions) == [1.0, 1.0]  # "answer" is only in the prompt
    with pytest.raises(ValueError, match="column"):
        reward_function("answer_match")
    with pytest.raises(ValueError, match="use one of"):
        reward_function("python_code")


def test_the_total_reward_is_the_weighted_sum():
    scores = {"answer_match": [1.0, 0.0, 1.0], "think_format": [1.0, 1.0, 0.0]}
    assert total_reward(scores, {"answer_match": 1.0, "think_format": 0.25}) == [1.25, 0.25, 1.0]
    assert total_reward({}, {}) == []


def test_the_reward_menu_is_read_with_weights_and_every_mistake_at_once():
    from trainer.rewards import parse_rewards

    assert parse_rewards("answer_match:1.0, think_format:0.5,length_target") == [
        ("answer_match", 1.0),
        ("think_format", 0.5),
        ("length_target", 1.0),
    ]
    with pytest.raises(ValueError) as caught:
        parse_rewards("answer_match:x, python:1, think_format, think_format")
    assert str(caught.value) == (
        "answer_match: weight 'x' is not a number; 'python' is not a reward (use answer_match, format_regex, "
        "think_format, valid_json, tool_call, length_target, words); think_format is named twice."
    )
    with pytest.raises(ValueError, match="name at least one reward"):
        parse_rewards(" , ")


def test_a_reward_needing_a_missing_column_is_named_with_the_columns_there_are():
    from trainer.rewards import column_problems

    rewards = [("answer_match", 1.0), ("think_format", 0.5)]
    columns_of = {"answer_match": "answer", "tool_call": "tools"}
    assert column_problems(rewards, columns_of, ["question", "answer"]) == []
    (problem,) = column_problems(rewards, columns_of, ["prompt", "solution"])
    assert problem.startswith("grpo.answer_column: reward answer_match needs a column with the reference answer")
    assert "no 'answer' column (it has prompt, solution)" in problem
    assert column_problems([("think_format", 1.0)], columns_of, ["prompt"]) == []  # needs none
    (problem,) = column_problems([("tool_call", 1.0), *rewards], columns_of, ["prompt", "answer"])
    assert problem.startswith("grpo.tools_column: reward tool_call") and "no 'tools' column" in problem


def test_the_zero_spread_warning_fires_after_steps_with_nothing_to_learn():
    from trainer.rewards import zero_spread_warning

    flat = [{"step": s, "loss": 0.0, "frac_reward_zero_std": 1.0} for s in range(1, 6)]
    assert "every group of completions earned the same reward" in zero_spread_warning(flat)
    assert zero_spread_warning(flat[:4]) is None  # not yet 5 steps
    learning = [*flat[:4], {"step": 5, "frac_reward_zero_std": 0.5}]
    assert zero_spread_warning(learning) is None  # a step with differences to learn from
    assert zero_spread_warning([{"step": 1, "loss": 1.0}] * 8) is None  # not a GRPO run


def test_every_listed_reward_has_its_scoring_function():
    from trainer.rewards import REWARDS, SCORERS

    assert tuple(SCORERS) == REWARDS and all(SCORERS[name].__name__ == name for name in REWARDS)
