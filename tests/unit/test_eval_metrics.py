"""The evaluation's metrics and settings (pure): scores against the reference, corpus figures, the comparison."""

from __future__ import annotations

import math

import pytest

from trainer.evaluation.metrics import comparison, comparison_markdown, perplexity, row_scores, score_rows, summarize
from trainer.evaluation.settings import EvalSettings, estimate_eval


def _row(prompt: str, reference: str | None, base: str, tuned: str, stopped=(True, True), nll=(4.0, 1.0)) -> dict:
    def answer(text, stop, loss):
        return {"text": text, "tokens": len(text.split()), "stopped": stop, "nll_sum": loss, "ref_tokens": 2}

    return {
        "prompt": prompt,
        "reference": reference,
        "base": answer(base, stopped[0], nll[0]),
        "tuned": answer(tuned, stopped[1], nll[1]),
    }


def test_scores_compare_the_answer_with_the_reference_not_the_prompt():
    pirate = "Ahoy! Rain be water, matey."
    rows = score_rows([_row("What is rain?", pirate, "What is rain?", pirate)])
    base, tuned = rows[0]["base"]["scores"], rows[0]["tuned"]["scores"]
    assert tuned == {"bleu": 100.0, "chrf": 100.0, "rouge_l": 100.0}  # the answer is the reference
    assert base["chrf"] < 40 and base["rouge_l"] < 40  # the answer repeats the prompt: far from the reference


def test_sentence_scores_match_sacrebleu_and_rouge_score():
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    answer, reference = "the cat sat on a mat", "the cat sat on the mat"
    scores = row_scores(answer, reference)
    assert scores["chrf"] == pytest.approx(CHRF().sentence_score(answer, [reference]).score, abs=1e-3)
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, answer)["rougeL"].fmeasure * 100
    assert scores["rouge_l"] == pytest.approx(expected, abs=1e-3)
    assert 0 < scores["bleu"] < 100


def test_summary_keeps_the_sides_apart_and_counts_stops_and_lengths():
    rows = score_rows(
        [
            _row("a?", "Ahoy! A be fine, matey.", "A is fine.", "Ahoy! A be fine, matey.", stopped=(True, True)),
            _row("b?", "Ahoy! B be good, matey.", "B is good.", "Ahoy! B be bad, matey.", stopped=(False, True)),
        ]
    )
    summary = summarize(rows)
    assert summary["prompts"] == 2 and summary["with_reference"] == 2
    assert summary["tuned"]["chrf"] > summary["base"]["chrf"]
    assert summary["base"]["stopped"] == 50.0 and summary["tuned"]["stopped"] == 100.0
    assert summary["base"]["reply_tokens"] == 3.0 and summary["tuned"]["reply_tokens"] == 5.0
    # perplexity over all reference tokens: exp(total nll / total tokens)
    assert summary["base"]["perplexity"] == pytest.approx(math.exp(8.0 / 4), rel=1e-4)
    assert summary["tuned"]["perplexity"] == pytest.approx(math.exp(2.0 / 4), rel=1e-4)


def test_rows_without_a_reference_count_for_lengths_only():
    rows = score_rows([_row("a?", None, "x y", "x y z")])
    summary = summarize(rows)
    assert "scores" not in rows[0]["base"]
    assert summary["with_reference"] == 0 and summary["base"]["chrf"] is None
    assert summary["tuned"]["reply_tokens"] == 3.0


def test_comparison_marks_lower_perplexity_as_better_and_names_each_side():
    summary = {
        "base": {"chrf": 40.0, "bleu": 10.0, "rouge_l": 50.0, "perplexity": 9.0, "reply_tokens": 8, "stopped": 100.0},
        "tuned": {"chrf": 60.0, "bleu": 5.0, "rouge_l": 50.0, "perplexity": 3.0, "reply_tokens": 9, "stopped": 50.0},
    }
    table = {row[0]: row[1:] for row in comparison(summary)}
    assert table["chrF"] == [40.0, 60.0, "+20.0 ▲"]
    assert table["BLEU"] == [10.0, 5.0, "-5.0 ▼"]
    assert table["ROUGE-L F1 (×100)"][2] == "+0.0"
    assert table["perplexity of the references"] == [9.0, 3.0, "-6.00 ▲"]
    assert table["stopped at <|end|> (%)"][2] == "-50.0 ▼"
    assert "| chrF | 40.0 | 60.0 | +20.0 ▲ |" in comparison_markdown(summary)


def test_perplexity_without_tokens_is_none():
    assert perplexity(0.0, 0) is None


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (EvalSettings(rows=0), "rows 0"),
        (EvalSettings(max_new_tokens=5000), "max_new_tokens 5000"),
        (EvalSettings(source="file"), "give a prompt file"),
        (EvalSettings(source="dataset", path="  "), "give a Hub dataset ID"),
        (EvalSettings(source="web"), "source 'web'"),
        (EvalSettings(batch_size=True), "batch_size True"),
    ],
)
def test_settings_name_what_is_wrong(settings, problem):
    assert any(problem in p for p in settings.problems())


def test_settings_round_trip_and_refuse_unknown_keys(tmp_path):
    settings = EvalSettings(source="dataset", path="user/data", split="validation", rows=20)
    settings.save(tmp_path / "request.json")
    assert EvalSettings.load(tmp_path / "request.json") == settings
    with pytest.raises(ValueError, match="unknown evaluation settings: shell"):
        EvalSettings.from_dict({"shell": "rm -rf /"})


def test_estimate_counts_prompts_batches_and_tokens():
    estimate = estimate_eval(EvalSettings(rows=20, max_new_tokens=64, batch_size=8), prompts=50, step_s=0.5, basis="x")
    assert estimate.prompts == 20  # the rows limit
    assert estimate.generated_tokens == 2 * 20 * 64
    assert estimate.decode_steps == 3 * 64  # 3 batches of up to 8 prompts
    assert estimate.seconds == pytest.approx(3 * 64 * 0.5)
    assert estimate_eval(EvalSettings(), prompts=10, step_s=None, basis="x").seconds is None
