"""The Runs tab's charts of a preference run (DPO, KTO, ORPO): what TRL logs for it, drawn from `events.jsonl`.

Four charts, shown only for a run whose events carry a preference method's rewards: the reward margin and the
preference accuracy (on the training batches and on the held-out pairs), the rewards of the chosen and the rejected
replies, and their log-probabilities.

Gradio 6 fixes a chart's series (its colour domain) when it first draws the chart, from the rows it has then: a
series whose first row comes later is never drawn. So every series gets a first row at step 0 with no value (drawn
as nothing), and a fixed colour (`color_map`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

CHARTS: dict[str, tuple[str, dict[str, str]]] = {
    "margin": ("Reward margin (chosen - rejected)", {"train": "rewards/margins", "held out": "eval_rewards/margins"}),
    "accuracy": ("Preference accuracy", {"train": "rewards/accuracies", "held out": "eval_rewards/accuracies"}),
    "rewards": ("Rewards (train)", {"chosen": "rewards/chosen", "rejected": "rewards/rejected"}),
    "logps": ("Log-probabilities (train)", {"chosen": "logps/chosen", "rejected": "logps/rejected"}),
}
"""Each chart: its title and its series, {series label: the event key it is read from}."""

COLORS = {"train": "#6366f1", "held out": "#f59e0b", "chosen": "#16a34a", "rejected": "#dc2626"}


def series_frame(events: list[dict[str, Any]], series: dict[str, str]):
    """A long table (step, value, series) of the events' values for gr.LinePlot: a row with no value per series (so
    the chart knows every series from its first drawing), then one row per step and series that logged it."""
    import pandas as pd

    rows = [(0, float("nan"), label) for label in series]
    rows += [(e["step"], float(e[k]), label) for e in events for label, k in series.items() if e.get(k) is not None]
    steps, values, labels = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "step": pd.Series(steps, dtype="int64"),
            "value": pd.Series(values, dtype="float64"),
            "series": pd.Series(labels, dtype="object"),
        }
    )


def is_preference_run(events: list[dict[str, Any]]) -> bool:
    """Whether the events are a preference method's (they carry a reward margin)."""
    return any("rewards/margins" in e or "eval_rewards/margins" in e for e in events)


def updates(events: list[dict[str, Any]]) -> list[Any]:
    """The charts' new values, in CHARTS order: drawn for a preference run, hidden for any other."""
    shown = is_preference_run(events)
    return [
        gr.update(value=series_frame(events if shown else [], series), visible=shown) for _, series in CHARTS.values()
    ]


def build() -> list[gr.LinePlot]:
    """The four charts (hidden until a preference run is selected), in CHARTS order."""
    plots = []
    with gr.Row():
        for name, (title, series) in CHARTS.items():
            plots.append(
                gr.LinePlot(
                    series_frame([], series),
                    x="step",
                    y="value",
                    color="series",
                    color_map={label: COLORS[label] for label in series},
                    title=title,
                    y_title="",
                    elem_id=f"pref-{name}-plot",
                    height=240,
                    visible=False,
                )
            )
    return plots
