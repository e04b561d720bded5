"""Reference metrics of an evaluation, pure functions over its rows: BLEU and chrF (sacrebleu), ROUGE-L (Google's
rouge-score), the references' perplexity under each model, reply lengths and the share that stopped at `<|end|>`.

Every metric compares a model's answer with the row's *reference* (the reply the data gives), never with the
prompt. The two sides are named, "base" and "tuned", everywhere: a row is
``{"prompt", "reference", "base": Answer, "tuned": Answer}`` and a summary ``{"base": {...}, "tuned": {...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SIDES = ("base", "tuned")


@dataclass(frozen=True)
class Metric:
    """One row of the comparison table: its key in a summary, its label, and which way is better."""

    key: str
    label: str
    higher_is_better: bool
    digits: int = 1


METRICS = (
    Metric("chrf", "chrF", True),
    Metric("bleu", "BLEU", True),
    Metric("rouge_l", "ROUGE-L F1 (×100)", True),
    Metric("perplexity", "perplexity of the references", False, 2),
    Metric("reply_tokens", "reply length (tokens, mean)", True),
    Metric("stopped", "stopped at <|end|> (%)", True),
)
"""The summary's figures, in the order the table and the card show them (reply length has no better direction;
it is listed for what it tells, and its arrow is not drawn)."""


def row_scores(answer: str, reference: str) -> dict[str, float]:
    """Sentence-level BLEU, chrF and ROUGE-L F1 (all 0-100) of one answer against its reference."""
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU(effective_order=True).sentence_score(answer, [reference]).score
    chrf = CHRF().sentence_score(answer, [reference]).score
    rouge = rouge_scorer.RougeScorer(["rougeL"]).score(reference, answer)["rougeL"].fmeasure * 100
    return {"bleu": round(bleu, 3), "chrf": round(chrf, 3), "rouge_l": round(rouge, 3)}


def perplexity(nll_sum: float, tokens: int) -> float | None:
    """exp(mean negative log-likelihood per token), None without tokens."""
    return round(math.exp(nll_sum / tokens), 4) if tokens else None


def score_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its per-side scores added (`row[side]["scores"]`), where it has a reference."""
    for row in rows:
        for side in SIDES:
            answer = row[side]
            if row.get("reference"):
                answer["scores"] = row_scores(answer["text"], row["reference"])
                answer["perplexity"] = perplexity(answer.get("nll_sum", 0.0), answer.get("ref_tokens", 0))
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Corpus figures per side: corpus BLEU and chrF, mean ROUGE-L, the references' perplexity (over all their
    tokens), mean reply length and the share of answers that stopped (%)."""
    from sacrebleu.metrics import BLEU, CHRF

    scored = [row for row in rows if row.get("reference")]
    references = [row["reference"] for row in scored]
    summary: dict[str, Any] = {"prompts": len(rows), "with_reference": len(scored)}
    for side in SIDES:
        figures: dict[str, float | None] = {key: None for key in ("bleu", "chrf", "rouge_l", "perplexity")}
        if scored:
            answers = [row[side]["text"] for row in scored]
            figures["bleu"] = round(BLEU().corpus_score(answers, [references]).score, 3)
            figures["chrf"] = round(CHRF().corpus_score(answers, [references]).score, 3)
            figures["rouge_l"] = round(sum(row[side]["scores"]["rouge_l"] for row in scored) / len(scored), 3)
            nll = sum(row[side].get("nll_sum", 0.0) for row in scored)
            figures["perplexity"] = perplexity(nll, sum(row[side].get("ref_tokens", 0) for row in scored))
        figures["reply_tokens"] = round(sum(row[side]["tokens"] for row in rows) / len(rows), 2) if rows else None
        figures["stopped"] = round(100 * sum(row[side]["stopped"] for row in rows) / len(rows), 2) if rows else None
        summary[side] = figures
    return summary


def comparison(summary: dict[str, Any]) -> list[list[Any]]:
    """The comparison table: [metric, base, tuned, change] rows, the change marked ▲ better / ▼ worse."""
    table = []
    for metric in METRICS:
        base, tuned = summary["base"].get(metric.key), summary["tuned"].get(metric.key)
        if base is None or tuned is None:
            continue
        delta = tuned - base
        mark = ""
        if metric.key != "reply_tokens" and delta:
            mark = " ▲" if (delta > 0) == metric.higher_is_better else " ▼"
        change = f"{delta:+.{metric.digits}f}{mark}"
        table.append([metric.label, round(base, metric.digits), round(tuned, metric.digits), change])
    return table


def comparison_markdown(summary: dict[str, Any]) -> str:
    """The comparison table in Markdown (the model card's and the CLI's)."""
    lines = ["| metric | base | tuned | change |", "| --- | ---: | ---: | ---: |"]
    for label, base, tuned, change in comparison(summary):
        label = label.replace("<|end|>", "`<|end|>`")  # a bare <|end|> would be read as an HTML tag and hidden
        lines.append(f"| {label} | {base} | {tuned} | {change} |")
    return "\n".join(lines)


Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


def wilson(wins: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion `wins / n` (95 % by default), None without trials.

    Wilson's interval stays inside [0, 1] and is sound for the small counts a person's votes give (the normal
    approximation is not): p ± z·sqrt(p(1-p)/n + z²/4n²), centred on (p + z²/2n), both over (1 + z²/n).
    """
    if n <= 0:
        return None
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


VERDICT_WORDS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both bad"}
VERDICTS = tuple(VERDICT_WORDS)
"""A blind vote: the answer shown as A is better, B is, they are as good, or both are bad."""


def tally(votes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Blind votes counted for the tuned model: each vote has `tuned_is` ("a" or "b", the side the tuned answer was
    shown on) and `verdict` (one of VERDICTS). The win rate is the tuned model's share of the decisive votes (A or
    B), with its 95 % Wilson interval; ties and "both bad" are counted beside it."""
    counts = {"tuned": 0, "base": 0, "tie": 0, "both_bad": 0}
    for vote in votes:
        verdict = vote["verdict"]
        if verdict in ("a", "b"):
            counts["tuned" if verdict == vote["tuned_is"] else "base"] += 1
        else:
            counts[verdict] += 1
    decisive = counts["tuned"] + counts["base"]
    interval = wilson(counts["tuned"], decisive)
    return {
        **counts,
        "votes": len(votes),
        "voters": len({vote.get("voter") for vote in votes}),
        "win_rate": round(counts["tuned"] / decisive, 4) if decisive else None,
        "interval": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
    }


def tally_text(counts: dict[str, Any]) -> str:
    """The tally in one sentence, e.g. "tuned preferred in 7 of 9 decisive votes (78 %, 95 % CI 45-94 %) ..."."""
    if not counts.get("votes"):
        return "no blind votes yet"
    decisive = counts["tuned"] + counts["base"]
    rate = ""
    if counts.get("win_rate") is not None:
        low, high = counts["interval"]
        rate = f" ({100 * counts['win_rate']:.0f} %, 95 % CI {100 * low:.0f}–{100 * high:.0f} %)"
    return (
        f"tuned preferred in {counts['tuned']} of {decisive} decisive votes{rate}; {counts['tie']} ties, "
        f"{counts['both_bad']} both bad; {counts['votes']} votes by {counts['voters']} "
        f"{'person' if counts['voters'] == 1 else 'people'}"
    )


def judge_tally(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The tuned model's share of the decisive judgments with its 95 % Wilson interval, the ties, and how many pairs
    the two orders agreed on."""
    verdicts = [j["verdict"] for pair in pairs for j in pair["judgments"]]
    tuned, base = verdicts.count("tuned"), verdicts.count("base")
    interval = wilson(tuned, tuned + base)
    agreed = sum(len({j["verdict"] for j in pair["judgments"]}) == 1 for pair in pairs)
    return {
        "pairs": len(pairs),
        "judgments": len(verdicts),
        "tuned": tuned,
        "base": base,
        "tie": verdicts.count("tie"),
        "agreed": agreed,
        "win_rate": round(tuned / (tuned + base), 4) if tuned + base else None,
        "interval": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
        "tokens": sum(pair.get("tokens", 0) for pair in pairs),
    }


def judge_text(counts: dict[str, Any], model: str) -> str:
    """The judge's tally in one sentence."""
    decisive = counts["tuned"] + counts["base"]
    rate = ""
    if counts.get("win_rate") is not None:
        low, high = counts["interval"]
        rate = f" ({100 * counts['win_rate']:.0f} %, 95 % CI {100 * low:.0f}–{100 * high:.0f} %)"
    return (
        f"judge {model}: tuned preferred in {counts['tuned']} of {decisive} decisive judgments{rate}, "
        f"{counts['tie']} ties; {counts['pairs']} pairs judged in both orders, {counts['agreed']} agreed both ways"
    )
