"""The judge (pure parts): both orders per pair, verdicts read from the judge's reply, the tally, the estimate."""

from __future__ import annotations

import pytest

from trainer.evaluation.judge import JudgeSettings, estimate_judge, judge_pair, parse_verdict
from trainer.evaluation.metrics import judge_tally, judge_text

ROW = {
    "prompt": "What is rain?",
    "reference": "Ahoy! Rain be water, matey.",
    "base": {"text": "Rain is water."},
    "tuned": {"text": "Ahoy! Rain be water, matey."},
}


def _recording(reply: str):
    calls = []

    def ask(messages):
        calls.append(messages)
        return reply, 10

    return ask, calls


def test_each_pair_is_judged_twice_with_the_order_swapped():
    ask, calls = _recording('{"winner": "1", "reason": "first"}')
    pair = judge_pair(ask, "Be fair.", ROW)
    assert len(calls) == 2
    first, second = (c[1]["content"] for c in calls)
    assert "Answer 1:\nAhoy! Rain be water, matey.\n\nAnswer 2:\nRain is water." in first  # tuned shown first
    assert "Answer 1:\nRain is water.\n\nAnswer 2:\nAhoy! Rain be water, matey." in second  # then second
    assert calls[0][0]["content"].startswith("Be fair.") and "Reference answer:\nAhoy!" in first
    assert [j["verdict"] for j in pair["judgments"]] == ["tuned", "base"]  # "1" each time: once each side
    assert [j["reason"] for j in pair["judgments"]] == ["first", "first"] and pair["tokens"] == 20


def test_a_judge_that_always_prefers_the_first_position_gives_fifty_percent():
    ask, _ = _recording('{"winner": "1", "reason": "first"}')
    counts = judge_tally([judge_pair(ask, "r", ROW) for _ in range(10)])
    assert counts["win_rate"] == 0.5 and counts["tuned"] == counts["base"] == 10
    assert counts["agreed"] == 0  # the two orders never agreed: position bias, seen
    assert counts["interval"] == pytest.approx([0.2993, 0.7007], abs=1e-4)  # Wilson, 10 of 20


def test_a_judge_that_prefers_the_tuned_answer_in_both_orders_gives_it_every_judgment():
    def pirate_judge(messages):
        first = messages[1]["content"].split("Answer 1:\n", 1)[1]
        return ('{"winner": "1", "reason": "pirate"}' if first.startswith("Ahoy") else '{"winner": "2"}'), 5

    counts = judge_tally([judge_pair(pirate_judge, "r", ROW)])
    assert (counts["tuned"], counts["base"], counts["tie"], counts["agreed"]) == (2, 0, 0, 1)
    assert judge_text(counts, "a/judge").startswith("judge a/judge: tuned preferred in 2 of 2 decisive judgments")


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "2", "reason": "better"}', "2"),
        ('Sure. ```json\n{"winner": "tie", "reason": "same"}\n```', "tie"),
        ('{"winner": 1, "reason": "number"}', "1"),
        ("Winner: 2, because it is clearer.", "2"),
        ("I cannot decide.", "tie"),
        ("", "tie"),
    ],
)
def test_the_verdict_is_read_from_the_judges_reply(reply, winner):
    assert parse_verdict(reply)[0] == winner


def test_an_unreadable_reply_is_a_tie_that_says_so():
    assert parse_verdict("I cannot decide.")[1].startswith("(no verdict could be read; counted as a tie)")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (JudgeSettings(model="not a repo id"), "judge model"),
        (JudgeSettings(rubric="  "), "rubric"),
        (JudgeSettings(rows=0), "rows 0"),
        (JudgeSettings(usd_per_million_tokens=-1.0), "usd_per_million_tokens"),
    ],
)
def test_judge_settings_name_what_is_wrong(settings, problem):
    assert any(problem in p for p in settings.problems())


def test_the_estimate_counts_two_calls_per_pair_and_prices_them_when_the_price_is_known():
    settings = JudgeSettings(rows=3, usd_per_million_tokens=2.0)
    estimate = estimate_judge([ROW] * 5, settings)
    assert estimate.pairs == 3 and estimate.calls == 6 and estimate.tokens > 6 * 100
    assert estimate.usd == pytest.approx(estimate.tokens * 2.0 / 1e6)
    assert "6 calls to" in estimate.markdown("a/judge") and "$" in estimate.markdown("a/judge")
    assert estimate_judge([ROW], JudgeSettings()).usd is None


def _judged_folder(tmp_path):
    from trainer.runs import folder as rf

    rf.write_json_atomic(tmp_path / rf.EVAL_DIR / rf.EVAL_RESULTS_FILE, {"rows": [ROW, ROW, ROW]})
    return tmp_path


@pytest.mark.parametrize("how", ["cancel", "time limit"])
def test_a_judging_stopped_early_keeps_what_was_judged_and_says_why(tmp_path, how):
    from trainer.evaluation.worker import EvalStopped, judge_run
    from trainer.runs import folder as rf

    run_dir = _judged_folder(tmp_path)
    ask, calls = _recording('{"winner": "1"}')
    kwargs = {"should_stop": lambda: len(calls) >= 2} if how == "cancel" else {"time_limit_s": 0.0}
    with pytest.raises(EvalStopped) as stopped:
        judge_run(run_dir, JudgeSettings(model="acme/judge"), ask=ask, **kwargs)
    assert stopped.value.time_limit == (how == "time limit")
    status = rf.read_json(run_dir / rf.EVAL_DIR / rf.STATUS_FILE)
    assert status["state"] == ("time_limit" if how == "time limit" else "cancelled")
    kept = rf.read_json(run_dir / rf.EVAL_DIR / rf.EVAL_JUDGE_FILE)
    assert kept["complete"] is False and len(kept["pairs"]) == (1 if how == "cancel" else 0)
