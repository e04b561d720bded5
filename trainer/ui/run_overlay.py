"""Runs side by side: the loss curves of two or more runs on one chart, and a table of the settings that differ.

Pure readers of run folders (no widgets) plus `build`, which adds the "Compare runs" section to the Runs tab. Runs
are chosen by id and each one's owner is checked on the server (`RunService.find`), like everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from trainer.config import RunConfig, iter_fields
from trainer.runs.service import AccessError, RunService
from trainer.sweeps import best_run
from trainer.ui.context import AppContext, caller, plain

NOT_COMPARED = ("run.name",)
"""Settings that name a run rather than shape it."""


def run_label(job) -> str:
    """How a run is named on the chart and in the table."""
    return f"#{job.id} {job.name}"


def overlay_frame(runs: dict[str, list[dict[str, Any]]], key: str = "loss"):
    """One long table (step, value, run) of every run's `key` series, for a gr.LinePlot colored by run."""
    import pandas as pd

    rows = [
        (label, e["step"], float(e[key])) for label, events in runs.items() for e in events if e.get(key) is not None
    ]
    labels, steps, values = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "step": pd.Series(steps, dtype="int64"),
            key: pd.Series(values, dtype="float64"),
            "run": pd.Series(labels, dtype="object"),
        }
    )


def _shown(key: str, value: Any) -> str:
    """A setting's value as the table shows it: a local file by its name only (no server paths)."""
    if key in ("data.dataset_name", "model.model_name_or_path") and isinstance(value, str) and value.startswith("/"):
        value = Path(value).name
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return "" if value is None else str(value)


def settings_diff(configs: dict[str, RunConfig]) -> list[tuple[str, list[str]]]:
    """The settings whose values differ between the runs: [(setting key, [value per run])], in RunConfig order."""
    out = []
    for spec in iter_fields():
        if spec.key in NOT_COMPARED:
            continue
        values = [_shown(spec.key, spec.get(cfg)) for cfg in configs.values()]
        if len(set(values)) > 1:
            out.append((spec.key, values))
    return out


def win_rate(counts: dict[str, Any] | None) -> str:
    """A win rate with its interval and its decisive count ("" without one)."""
    if not counts or counts.get("win_rate") is None:
        return ""
    low, high = counts["interval"]
    decisive = counts["tuned"] + counts["base"]
    return f"{100 * counts['win_rate']:.0f} % ({100 * low:.0f}–{100 * high:.0f} %, n={decisive})"


def diff_markdown(
    configs: dict[str, RunConfig],
    losses: dict[str, dict[str, Any]],
    evaluations: dict[str, Any] | None = None,
    verdicts: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A table: one column per run, a row per differing setting, then each run's eval loss before → after and, for
    runs that were evaluated, their chrF and BLEU base → tuned (`evaluations`: label → summary or None) and the
    tuned model's win rates (`verdicts`: label → {"judge": tally, "votes": tally})."""

    def cell(text: str) -> str:
        return plain(text) or "—"

    labels = list(configs)
    lines = ["| setting | " + " | ".join(cell(label) for label in labels) + " |", "|---" * (len(labels) + 1) + "|"]
    diff = settings_diff(configs)
    lines += [f"| `{key}` | " + " | ".join(cell(v) for v in values) + " |" for key, values in diff]
    evaluations = evaluations or {}

    def score(label: str, key: str) -> str:
        summary = evaluations.get(label)
        if not summary or summary["base"].get(key) is None:
            return ""
        return f"{summary['base'][key]:.1f} → {summary['tuned'][key]:.1f} ({summary['prompts']} prompts)"

    def loss(label: str) -> str:
        before, after = losses[label].get("eval_loss_before"), losses[label].get("eval_loss_after")
        return " → ".join(f"{x:.4f}" for x in (before, after) if x is not None)

    lines.append("| **eval loss** | " + " | ".join(cell(loss(label)) for label in labels) + " |")
    if best := best_run(labels, losses, evaluations):  # a sweep's question: which one won, and by what
        lines.append(
            f"| **best** ({best[1]}) | " + " | ".join("★" if label == best[0] else "" for label in labels) + " |"
        )
    for key, name in (("chrf", "chrF"), ("bleu", "BLEU")):  # the runs' last evaluations, base → tuned
        if any(evaluations.get(label) for label in labels):
            cells = " | ".join(cell(score(label, key)) for label in labels)
            lines.append(f"| **{name}** (evaluation) | {cells} |")
    for key, name in (("judge", "judge"), ("votes", "blind votes")):  # the tuned model's win rates
        if any((verdicts or {}).get(label, {}).get(key) for label in labels):
            cells = " | ".join(cell(win_rate((verdicts or {}).get(label, {}).get(key))) for label in labels)
            lines.append(f"| **{name}**: tuned wins | {cells} |")
    if not diff:
        lines.insert(0, "The runs share every setting.\n")
    return "\n".join(lines)


def compare(service: RunService, who, run_ids: list[str] | None) -> tuple[Any, Any, str]:
    """The overlay of the chosen runs (train loss, eval loss) and the settings table; each run's owner is checked.

    Raises:
        AccessError: a run is not the caller's (or does not exist), or fewer than two runs were chosen.
    """
    jobs = [service.find(who, run_id) for run_id in dict.fromkeys(run_ids or [])]
    if len(jobs) < 2:
        raise AccessError("Pick two or more runs to compare.")
    views = {run_label(job): service.view(job) for job in jobs}
    events = {label: view.events for label, view in views.items()}
    configs = {run_label(job): service.config_of(job) for job in jobs}
    status = {label: view.status for label, view in views.items()}
    evaluations = {run_label(job): service.evals.summary(who, job) for job in jobs}
    verdicts = {}
    for job in jobs:
        judged = service.evals.judgments(who, job)
        votes = service.votes.counts(job)
        verdicts[run_label(job)] = {"judge": judged and judged["summary"], "votes": votes if votes["votes"] else None}
    table = diff_markdown(configs, status, evaluations, verdicts)
    return overlay_frame(events), overlay_frame(events, "eval_loss"), table


class RunOverlay:
    """The "Compare runs" section's handlers (public methods Gradio calls, and tests call by name)."""

    def __init__(self, ctx: AppContext):
        self.service = ctx.service

    def choices(self, current, profile: gr.OAuthProfile | None):
        """The caller's runs to pick from, keeping those picked that are still there."""
        runs = [(run_label(job), str(job.id)) for job in self.service.visible(caller(profile))]
        ids = {value for _, value in runs}
        return gr.update(choices=runs, value=[v for v in current or [] if v in ids])

    def sweep_choices(self, profile: gr.OAuthProfile | None):
        """The caller's sweeps to pick from (each by its id and its number of runs)."""
        sweeps = self.service.sweeps.of(caller(profile))
        return gr.update(choices=[(f"{sweep} ({len(jobs)} runs)", sweep) for sweep, jobs in sweeps.items()])

    def pick_sweep(self, sweep, profile: gr.OAuthProfile | None):
        """A sweep picked: its runs (the caller's own, found on the server) are the runs to compare."""
        who = caller(profile)
        visible = self.service.visible(who)  # read once: the choices, and the sweep's runs among them
        jobs = self.service.sweeps.of(who, visible).get(sweep or "", [])
        if not jobs:
            return gr.skip()
        runs = [(run_label(job), str(job.id)) for job in visible]
        return gr.update(choices=runs, value=[str(job.id) for job in reversed(jobs)][:8])

    def show(self, run_ids, profile: gr.OAuthProfile | None):
        """The chosen runs compared; a refusal (one run, not the caller's) is a toast and leaves the section as it was
        (a raised gr.Error would mark both charts and the table with error badges)."""
        try:
            return compare(self.service, caller(profile), run_ids)
        except AccessError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip(), gr.skip()


def build(ctx: AppContext) -> RunOverlay:
    """The "Compare runs" section: pick runs, see their curves on one chart and what differs between them."""
    c: dict[str, Any] = {}
    with gr.Accordion("Compare runs: loss curves and the settings that differ", open=False, elem_id="overlay"):
        with gr.Row():
            c["runs"] = gr.Dropdown(
                choices=[], multiselect=True, label="Runs", elem_id="overlay-runs", scale=4, max_choices=8
            )
            c["go"] = gr.Button("Compare", elem_id="overlay-go", scale=0, min_width=110)
            c["sweep"] = gr.Dropdown(choices=[], label="…or a sweep's runs", elem_id="overlay-sweep", scale=2)
        with gr.Row():
            c["plot"] = gr.LinePlot(
                x="step", y="loss", color="run", title="Train loss", elem_id="overlay-plot", height=280
            )
            c["eval_plot"] = gr.LinePlot(
                x="step", y="eval_loss", color="run", title="Eval loss", elem_id="overlay-eval-plot", height=280
            )
        c["table"] = gr.Markdown(elem_id="overlay-table")
    h = RunOverlay(ctx)
    c["runs"].focus(h.choices, c["runs"], c["runs"], queue=False)  # fresh choices each time the list is opened
    c["go"].click(h.show, c["runs"], [c["plot"], c["eval_plot"], c["table"]])
    c["sweep"].focus(h.sweep_choices, None, c["sweep"], queue=False)
    c["sweep"].input(h.pick_sweep, c["sweep"], c["runs"], queue=False).then(
        h.show, c["runs"], [c["plot"], c["eval_plot"], c["table"]]
    )
    return h
