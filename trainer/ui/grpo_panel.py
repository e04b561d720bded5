"""The Runs tab's view of a GRPO run, drawn from `events.jsonl`: is it learning from its rewards?

- a warning when the rewards inside the groups have been equal for several logged steps (nothing to learn from),
  with what to change (`trainer.rewards.zero_spread_warning`);
- four charts: the total reward (mean and spread across the completions), each reward function's mean, the
  completions' length, and the fractions that say whether the updates bite (completions cut at the length limit,
  ratios clipped, groups with equal rewards) with the KL to the start when beta > 0;
- the latest completions the run recorded, each with the reward each function gave it: what people read to see
  whether GRPO is working.

Everything is hidden for a run of another method. Each chart's series get a first row with no value (see
`preference_charts`), so a series that starts later is still drawn.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from trainer.rewards import zero_spread_warning
from trainer.ui.preference_charts import series_frame

FIXED_CHARTS: dict[str, tuple[str, dict[str, str]]] = {
    "reward": ("Reward (train): mean and spread", {"mean": "reward", "spread (std)": "reward_std"}),
    "length": ("Completion length (tokens)", {"mean": "completions/mean_length"}),
    "fractions": (
        "Fractions, and KL",
        {
            "cut at max length": "completions/clipped_ratio",
            "ratio clipped": "clip_ratio/region_mean",
            "groups all equal": "frac_reward_zero_std",
            "KL": "kl",
        },
    ),
}
"""The charts whose series every GRPO run has: title and {series label: event key}."""
FUNCTIONS_TITLE = "Each reward function (train mean)"
COMPLETION_EVENTS = 3
"""Recorded completion events shown (the latest first)."""
PALETTE = ("#6366f1", "#f59e0b", "#16a34a", "#dc2626", "#0ea5e9", "#a855f7", "#64748b", "#db2777")


def is_grpo_run(events: list[dict[str, Any]]) -> bool:
    """Whether the events are GRPO's (they carry the reward's spread inside the groups)."""
    return any("frac_reward_zero_std" in e for e in events)


def function_series(events: list[dict[str, Any]]) -> dict[str, str]:
    """Each reward function's series, {its name: its mean's event key}, in the order the run logs them."""
    names: dict[str, str] = {}
    for e in events:
        for key in e:
            if key.startswith("rewards/") and key.endswith("/mean"):
                names.setdefault(key[len("rewards/") : -len("/mean")], key)
    return names


def completions_rows(events: list[dict[str, Any]]) -> list[list[Any]]:
    """The latest recorded completions as table rows: step, prompt, reward, each function's reward, completion."""
    rows = []
    for event in [e for e in events if e.get("completions")][-COMPLETION_EVENTS:][::-1]:
        for c in event["completions"]:
            each = ", ".join(f"{name} {value:g}" for name, value in c["rewards"].items())
            rows.append([event["step"], c["prompt"], c["reward"], each, c["completion"]])
    return rows


COLUMNS = ["step", "prompt", "reward", "each reward", "completion"]  # the completion last: it is the long one
N_PARTS = len(FIXED_CHARTS) + 3
"""The panel's components: the warning, the charts (the fixed ones and the functions'), the completions table."""


def updates(events: list[dict[str, Any]]) -> list[Any]:
    """The panel's new values, in `build`'s order (warning, charts, completions): drawn for a GRPO run, else hidden."""
    if not is_grpo_run(events):  # hidden, values unchanged: nothing to compute or send
        return [gr.update(visible=False) for _ in range(N_PARTS)]
    warning = zero_spread_warning(events)
    functions = function_series(events)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(functions)}
    return [
        gr.update(value=f"⚠️ {warning}" if warning else "", visible=bool(warning)),
        *[gr.update(value=series_frame(events, series), visible=True) for _, series in FIXED_CHARTS.values()],
        gr.update(value=series_frame(events, functions or {"": ""}), color_map=colors or None, visible=True),
        gr.update(value=completions_rows(events), visible=True),
    ]


def build() -> list[Any]:
    """The panel's components, hidden until a GRPO run is selected: warning, charts, completions table."""
    parts: list[Any] = [gr.Markdown(visible=False, elem_id="grpo-warning")]
    with gr.Row():
        for name, (title, series) in FIXED_CHARTS.items():
            colors = {label: PALETTE[i] for i, label in enumerate(series)}
            parts.append(_chart(name, title, series_frame([], series), colors))
        parts.append(_chart("functions", FUNCTIONS_TITLE, series_frame([], {"": ""}), None))
    parts.append(
        gr.Dataframe(
            headers=COLUMNS,
            value=[],
            label="Latest completions and the rewards they earned",
            wrap=True,
            interactive=False,
            visible=False,
            elem_id="grpo-completions",
        )
    )
    return parts


def _chart(name: str, title: str, value, colors: dict[str, str] | None) -> gr.LinePlot:
    return gr.LinePlot(
        value,
        x="step",
        y="value",
        color="series",
        color_map=colors,
        title=title,
        y_title="",
        elem_id=f"grpo-{name}-plot",
        height=240,
        visible=False,
    )
