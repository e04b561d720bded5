"""The Train tab's *Sweep* section: the form's run, once per combination of a few settings' values (a grid, or a
random sample of it), queued as normal runs of the caller: all of them, or none when one would be refused or the
caller's run limit has no room for them all (`RunService.sweeps`). *Compare runs* then picks the sweep's runs at once
and marks the best."""

from __future__ import annotations

from typing import Any

import gradio as gr

from trainer.runs.service import AccessError, RefusedRun
from trainer.ui.context import caller, picker_update, plain, zero_gpu
from trainer.ui.form import config_from_form, labelled

AXES_PLACEHOLDER = "learning_rate=1e-4,2e-4\nr=8,16"


def layout() -> dict[str, Any]:
    """The section's components (built inside the Train tab's right column)."""
    c: dict[str, Any] = {}
    with gr.Accordion("Sweep: one run per combination of a few settings", open=False, elem_id="sweep-section"):
        c["axes"] = gr.Textbox(
            label="Settings to sweep, one per line: setting=value,value",
            placeholder=AXES_PLACEHOLDER,
            lines=3,
            elem_id="sweep-axes",
        )
        c["sample"] = gr.Number(
            0,
            label="Random sample of the combinations (0: every one)",
            precision=0,
            minimum=0,
            elem_id="sweep-sample",
        )
        c["start"] = gr.Button("Start sweep", elem_id="sweep-start")
        c["status"] = gr.Markdown(elem_id="sweep-status")
    return c


class SweepPanel:
    """The Sweep section's handler (a public method Gradio calls, and tests call by name)."""

    def __init__(self, tab, c: dict[str, Any]):
        self.tab, self.components = tab, c  # the TrainTab (its form's fields, service and context)

    def start_sweep(self, values: dict, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Queue the sweep of the form's run; every problem of every run is named before any is queued."""
        tab, c = self.tab, self.components
        who = caller(profile, oauth)
        run_cfg, problems = config_from_form(tab.keyed(values))
        if problems:
            return [_refused(problems), gr.skip(), gr.skip()]
        tab.name_run(run_cfg, values)  # the sweep's name: each run's name is it and its values
        axes = str(values.get(c["axes"]) or "").splitlines()
        sample = int(values.get(c["sample"]) or 0) or None
        key = values.get(tab.components["tracker_key"])
        try:
            jobs = tab.service.sweeps.start(who, run_cfg, axes, sample, 0, tab.ctx.on_gpu, zero_gpu(), key)
        except RefusedRun as exc:
            return [_refused(exc.problems), gr.skip(), gr.skip()]
        except (AccessError, ValueError) as exc:
            return [f"**The sweep was not started:** {plain(str(exc))}", gr.skip(), gr.skip()]
        names = ", ".join(f"#{job.id}" for job in jobs)
        text = f"**Sweep queued:** {len(jobs)} runs ({names}); *Compare runs* in the Runs tab shows them together."
        return [text, gr.Tabs(selected="runs"), picker_update(tab.service, who, str(jobs[0].id))]


def _refused(problems: list[str]) -> str:
    """The problems as a list, each run's by its values (`lr=9: training.learning_rate: ...`) in bold."""
    lines = []
    for problem in problems:
        run, sep, rest = problem.partition(": ")
        lines.append(f"- **{plain(run)}**: {labelled(rest)}" if sep and "=" in run else f"- {labelled(problem)}")
    return "**The sweep was not started:**\n" + "\n".join(lines)


def wire(tab, c: dict[str, Any]) -> SweepPanel:
    """Wire the section's button to its handler: the form's fields, the preset and the tracker key go with it."""
    panel = SweepPanel(tab, c)
    inputs = set(tab.field_list) | {tab.components["preset"], tab.components["tracker_key"], c["axes"], c["sample"]}
    c["start"].click(panel.start_sweep, inputs, [c["status"], tab.ctx.tabs, tab.ctx.run_picker])
    return panel
