"""An evaluation's results in the run folder (`eval/results.json`, `eval/summary.json`, `eval/chart.png`) and how
they are shown: the comparison table, the rows side by side, the chart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.evaluation.metrics import METRICS, SIDES
from trainer.runs import folder as rf

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIDE_COLORS = {"base": (0.6, 0.6, 0.6), "tuned": (0.39, 0.4, 0.95)}  # grey for the base, the studio's indigo
ROW_COLUMNS = ["prompt", "reference", "base", "tuned", "chrF base", "chrF tuned"]


def eval_dir(run_dir: Path) -> Path:
    """The run's evaluation folder."""
    return Path(run_dir) / rf.EVAL_DIR


def write_results(run_dir: Path, results: dict[str, Any], summary: dict[str, Any]) -> None:
    """results.json (every prompt, both answers, per-row scores), summary.json and the chart, atomically."""
    folder = eval_dir(run_dir)
    rf.write_json_atomic(folder / rf.EVAL_RESULTS_FILE, results)
    rf.write_json_atomic(folder / rf.EVAL_SUMMARY_FILE, summary)
    from trainer.hub.chart import figure_image, write_png

    write_png(figure_image(eval_figure(summary)), folder / rf.EVAL_CHART_FILE)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's last evaluation summary, None when it has none (or it cannot be read)."""
    summary = rf.read_json(eval_dir(run_dir) / rf.EVAL_SUMMARY_FILE, None)
    return summary if isinstance(summary, dict) and all(isinstance(summary.get(s), dict) for s in SIDES) else None


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of the run's last evaluation (empty when there is none)."""
    results = rf.read_json(eval_dir(run_dir) / rf.EVAL_RESULTS_FILE, {}) or {}
    rows = results.get("rows") if isinstance(results, dict) else None
    return rows if isinstance(rows, list) else []


def row_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows side by side: prompt, reference, the base's and the tuned model's answers and their chrF."""

    def chrf(answer: dict[str, Any]) -> float | None:
        return (answer.get("scores") or {}).get("chrf")

    return [
        [row["prompt"], row.get("reference") or "", row["base"]["text"], row["tuned"]["text"]]
        + [chrf(row["base"]), chrf(row["tuned"])]
        for row in rows
    ]


def headline(summary: dict[str, Any]) -> str:
    """One line: how many prompts, chrF base -> tuned, and how the evaluation was made."""
    base, tuned = summary["base"].get("chrf"), summary["tuned"].get("chrf")
    score = f"chrF {base:.1f} → {tuned:.1f} ({tuned - base:+.1f})" if base is not None and tuned is not None else ""
    complete = "" if summary.get("complete", True) else " (stopped early: the rows answered so far)"
    return (
        f"**Evaluation** on {summary['prompts']} prompts ({summary.get('source', 'held-out rows')}){complete}: "
        f"{score}; greedy answers of at most {summary.get('max_new_tokens', '?')} tokens."
    )


def eval_figure(summary: dict[str, Any]) -> Figure:
    """Grouped bars, base beside tuned, for the 0-100 scores (chrF, BLEU, ROUGE-L) and the stopped share."""
    from trainer.hub.chart import blank_figure

    shown = [m for m in METRICS if m.key in ("chrf", "bleu", "rouge_l", "stopped")]
    shown = [m for m in shown if all(summary[s].get(m.key) is not None for s in SIDES)]
    figure = blank_figure()
    axes = figure.add_subplot(facecolor="white")
    axes.set_title("Base vs tuned (higher is better)", fontsize=13, color="black")
    width = 0.38
    for k, side in enumerate(SIDES):
        xs = [i + (k - 0.5) * width for i in range(len(shown))]
        values = [summary[side][m.key] for m in shown]
        bars = axes.bar(xs, values, width, label=side, color=SIDE_COLORS[side])
        axes.bar_label(bars, fmt="%.1f", fontsize=9)
    axes.set_xticks(range(len(shown)), [m.label.replace(" (×100)", "") for m in shown], fontsize=10)
    axes.set_ylim(0, 120)  # room above 100 for the bar labels and the legend
    axes.set_yticks(range(0, 101, 20))
    axes.grid(True, axis="y", color=(0.9, 0.9, 0.9), linewidth=0.8)
    axes.set_axisbelow(True)
    axes.legend(loc="upper center", ncols=2, fontsize=10, frameon=True, facecolor="white", edgecolor=(0.8, 0.8, 0.8))
    return figure
