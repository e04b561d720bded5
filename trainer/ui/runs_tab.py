"""The Runs tab: pick a run and watch it live from its run folder (status, progress, loss plots, samples, log)."""

from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr

from trainer.noise import for_people
from trainer.rewards import reward_change
from trainer.runs.service import (
    BUILD_PHASE,
    PHASES,
    SIGN_IN,
    AccessError,
    RunService,
    RunState,
    RunView,
    progress,
    without_server_paths,
)
from trainer.ui import eval_panel, gguf_panel, grpo_panel, preference_charts, run_overlay
from trainer.ui.context import AppContext, adapter_update, caller, download_folder, picker_update, plain, run_choices
from trainer.ui.form import labelled, preset_updates

REFRESH_S = 1.0
FOLLOW_LOG_JS = """() => {
  const el = document.querySelector('#run-log textarea');
  if (!el) return;
  if (!el.dataset.watched) {  // a reader who scrolls up to read keeps their place until they scroll back down
    el.dataset.watched = '1';
    el.addEventListener('scroll', () => {
      el.dataset.away = el.scrollTop + el.clientHeight < el.scrollHeight - 8 ? '1' : '';
    });
  }
  if (!el.dataset.away) requestAnimationFrame(() => { el.scrollTop = el.scrollHeight; });
}"""
"""Browser-side: the log box follows the end of the log as it grows (Gradio's own autoscroll did not, measured)."""
SAVE_FILE_JS = """(file) => {
  if (!file?.url) return;  // refused: nothing was made
  const link = Object.assign(document.createElement('a'), {href: file.url, download: file.orig_name || ''});
  document.body.appendChild(link);
  link.click();
  link.remove();
}"""
"""Browser-side: saves the zip a Download click has just had made, so one click downloads it (the file box that
shows it too stays as a link, should the browser hold the download back)."""


# --------------------------------------------------------------------------- reading the run folder (no widgets)


def loss_frame(events: list[dict[str, Any]], key: str = "loss"):
    """One loss series per step for gr.LinePlot (typed even when empty, so the axes stay numeric)."""
    import pandas as pd

    rows = [(e["step"], float(e[key])) for e in events if e.get(key) is not None]
    steps, values = zip(*rows, strict=True) if rows else ((), ())
    return pd.DataFrame({"step": pd.Series(steps, dtype="int64"), key: pd.Series(values, dtype="float64")})


PROGRESS_CSS = """
.bar {height: 14px; background: #e5e7eb; border-radius: 7px; overflow: hidden;}
.fill {height: 100%; background: #6366f1; transition: width 0.8s ease;}
.live .fill {background-image: linear-gradient(45deg, rgba(255,255,255,.3) 25%, transparent 25%, transparent 50%,
  rgba(255,255,255,.3) 50%, rgba(255,255,255,.3) 75%, transparent 75%); background-size: 20px 20px;
  animation: stripes 1s linear infinite;}
@keyframes stripes {from {background-position: 0 0;} to {background-position: 20px 0;}}
"""
"""The progress bar's CSS, scoped to its gr.HTML: stripes move while a run is alive, so it never looks frozen."""


def current_phase(job, status: dict[str, Any]) -> str | None:
    """What a running run is doing now (one of the run folder's PHASES); None when it is not running."""
    if job is None or job.status != RunState.RUNNING:
        return None
    if status.get("push_state") == "pushing":
        return "pushing"
    return status.get("phase") if status.get("phase") in PHASES else "starting"


def progress_html(job, events: list[dict[str, Any]], status: dict[str, Any] | None = None) -> str:
    """The run's phase and a bar that moves from the first second: each phase's share, then the training steps."""
    status = status or {}
    steps = [e for e in events if "total_steps" in e]
    last = steps[-1] if steps else {}
    step = max((e.get("step", 0) for e in events if "total_steps" in e or "loss" in e), default=0)
    total = last.get("total_steps") or 0
    phase = current_phase(job, status)
    if job is not None and job.status == RunState.SUCCEEDED:
        fraction, text = 1.0, f"finished · step {step} / {max(step, total) or '?'}"
    elif phase is None:
        fraction = progress("training", step, total) if total else 0.0
        text = f"{job.status if job else 'no run'} · step {step} / {total or '?'}"
    elif phase == BUILD_PHASE:  # once per machine, before the run proper: a bar of its own, by warm-up steps
        done, warm_up = status.get("phase_steps") or (0, 0)
        fraction, text = done / warm_up if warm_up else 0.0, f"{phase}… · warm-up step {done} / {warm_up or '?'}"
    else:
        fraction, text = progress(phase, step, total), f"{phase}…"
        if phase == "training":
            text = f"training · step {step} / {total or '?'} ({100 * step / total if total else 0:.0f} %)"
            eta = next((e["eta_s"] for e in reversed(steps) if "eta_s" in e), None)  # an eval's event has none
            text += f" · ETA {eta:.0f} s" if eta is not None else ""
    live = " live" if phase is not None else ""
    if live and phase != "training":  # halfway through the phase, so its stripes show from the first second
        fraction = max(fraction + PHASES[phase] / 2 / sum(PHASES.values()), 0.02)
    share = "" if phase == BUILD_PHASE else f" · {100 * fraction:.0f} % of the run"  # the build is no share of it
    return (
        f'<div class="bar{live}"><div class="fill" style="width:{100 * fraction:.1f}%"></div></div>'
        f'<div class="phase">{html.escape(text)}{share}</div>'
    )


def metrics_markdown(events: list[dict[str, Any]], status: dict[str, Any]) -> str:
    """Latest learning rate, non-padding tokens/s, the training processes and their peak memory (each GPU's when
    there are several), the eval loss before -> after, and a preference run's held-out accuracy and margin."""
    latest: dict[str, Any] = {}
    for e in events:
        latest.update({k: v for k, v in e.items() if v is not None})
    parts = []
    if "lr" in latest:
        parts.append(f"**learning rate** {latest['lr']:.2e}")
    if "tokens_per_s" in latest:
        parts.append(f"**tokens/s** {latest['tokens_per_s']:.0f} (non-padding)")
    on_gpu, each = "gpu_mem_gb" in latest, latest.get("mem_each_gb")
    if (status.get("world_size") or 1) > 1:
        parts.append(f"**training processes** {status['world_size']}" + (" (one per GPU)" if on_gpu else ""))
    if each:
        memory = " · ".join(f"{gb:.1f}" for gb in each)
        parts.append(f"**GPU memory per GPU** {memory} GB" if on_gpu else f"**memory per process** {memory} GB")
    else:
        parts.append(f"**GPU memory** {latest['gpu_mem_gb']:.1f} GB" if on_gpu else "**GPU memory** n/a")
    before, after = status.get("eval_loss_before"), status.get("eval_loss_after")
    if before is not None:
        change = f" ({100 * (after - before) / before:+.1f} %)" if after is not None and before else ""
        parts.append(
            f"**eval loss** {before:.4f} → {after:.4f}{change}"
            if after is not None
            else f"**eval loss before** {before:.4f}"
        )
    pref_before, pref_after = status.get("preference_before") or {}, status.get("preference_after") or {}
    for key, label in (("rewards/accuracies", "held-out preference accuracy"), ("rewards/margins", "reward margin")):
        if key in pref_before:
            after_text = f" → {pref_after[key]:.2f}" if key in pref_after else ""
            parts.append(f"**{label}** {pref_before[key]:.2f}{after_text}")
    reward_before = status.get("reward_before") or {}
    if line := reward_change(reward_before, status.get("reward_after")):  # GRPO's held-out reward before -> after
        parts.append(f"**{line.replace(' -> ', ' → ').replace(':', '**', 1)}")
    elif "reward" in reward_before:
        parts.append(f"**held-out reward before** {reward_before['reward']:.3f}")
    return " · ".join(parts)


def status_markdown(service: RunService, view: RunView | None) -> str:
    """Headline for the selected run: state, name, times, queue place or failure cause."""
    if view is None:
        return "No runs yet. Start one in the **Train** tab."
    job, status = view.job, view.status
    folder = view.run_dir.name if service.space_mode() else job.run_dir  # no server paths for Space users
    lines = [f"### Run #{job.id} · {job.status}", f"{plain(job.name)} · `{folder}`"]
    if note := service.waiting_note(job):
        lines.append(note)
    if job.started_at:
        end = job.finished_at or time.time()
        lines.append(
            f"started {time.strftime('%H:%M:%S', time.localtime(job.started_at))} · {end - job.started_at:.0f} s"
        )
    if job.error:
        label = {RunState.FAILED: "Cause", RunState.PUSH_FAILED: "Trained and saved locally; the push failed"}.get(
            job.status, "Note"
        )
        lines.append(f"**{label}:** {labelled(without_server_paths(job.error))}")  # the field's label, escaped
    if status.get("push_state") == "pushed" and status.get("repo_url"):
        lines.append(f"**Published:** [{status.get('repo_id')}]({status['repo_url']})")
    if parent := status.get("parent_run"):
        lines.append(f"**Continued from:** {plain(parent.get('repo_id') or parent.get('name'))}")
    return "\n\n".join(lines)


def samples_markdown(samples: list[dict[str, Any]]) -> str:
    """Held-out prompts answered before and after training."""
    if not samples:
        return ""
    rows = ["| prompt | before | after |", "| --- | --- | --- |"]
    for s in samples:
        cells = [s.get("prompt"), s.get("before"), s.get("after")]
        rows.append("| " + " | ".join(plain(c or "…") for c in cells) + " |")
    return "\n".join(rows)


def _buttons(view: RunView | None) -> list[Any]:
    """Cancel / Resume / Retry push / Delete / Download / Chat / Download for TRL / Continue / Continue with DPO, by
    the run's state."""
    if view is None:
        return [gr.update(interactive=False)] * 9
    job, has_adapter = view.job, view.has_adapter
    return [
        gr.update(interactive=not job.finished),
        gr.update(interactive=job.resumable),
        gr.update(interactive=job.status == RunState.PUSH_FAILED),
        gr.update(interactive=job.finished),
        gr.update(interactive=has_adapter),
        gr.update(interactive=has_adapter and job.status.trained),
        gr.update(interactive=view.has_trl_export),
        gr.update(interactive=has_adapter and job.status.trained),
        gr.update(interactive=has_adapter and job.status.trained),
    ]


# --------------------------------------------------------------------------- the tab


def make_picker() -> gr.Dropdown:
    """The run picker, made before the tabs (unrendered) so the Train tab can select the run it queues at once."""
    return gr.Dropdown(choices=[], label="Run", elem_id="run-picker", scale=4, allow_custom_value=True, render=False)


def adapter_zip(service: RunService, who, job_id: object) -> str:
    """A .zip of the caller's run's adapter, made for this request in a temporary folder (served as a copy)."""
    job = service.find(who, job_id)
    return service.adapter_archive(job, download_folder("adapter-") / f"run-{job.id}-adapter")


def trl_zip(service: RunService, who, job_id: object) -> str:
    """A .zip of the caller's run's `trl_<method>.yaml` and `trl_data/` (for `trl <method> --config ...` where it
    is unpacked), copied for this request into a temporary folder (served as a copy, after the owner check)."""
    job = service.find(who, job_id)
    return service.trl_archive(job, download_folder("trl-") / f"run-{job.id}-trl")


class RunsTab:
    """The Runs tab's handlers: each a public method that Gradio calls (and tests call by name). Every action takes
    the run id the browser sent and hands it to the run service, which checks the caller owns that run."""

    def __init__(self, ctx: AppContext):
        self.service = ctx.service
        self.unavailable = ctx.service.unavailable_options(ctx.on_gpu)  # as the Train tab offers them
        self.n_fields = 0  # the Train form's widgets that Continue training fills (set by `build`)
        self.components: dict[str, Any] = {}  # the tab's widgets by name, once built
        self.n_outputs = 0  # how many components `refresh` updates (set by `build`)
        self.output_names: list[str] = []  # their names, in order (set by `build`)
        self.overlay: run_overlay.RunOverlay | None = None  # its "Compare runs" section
        self.evals: eval_panel.EvalPanel | None = None  # its "Evaluate" section
        self.gguf: gguf_panel.GGUFPanel | None = None  # its "Export GGUF" section

    def refresh(self, job_id, seen: dict, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Re-read the selected run's folder; skip the plot and picker when nothing changed (no flicker)."""
        service, who = self.service, caller(profile, oauth)
        choices = run_choices(service, who)  # also gives runs queued before a restart their owner's token back
        try:
            job = service.find(who, job_id)
        except AccessError:
            job = None  # nothing selected, gone, or another user's run: all look the same
        picker = gr.skip() if choices == seen.get("choices") else gr.update(choices=choices)
        if job is None:
            empty = ["", loss_frame([]), loss_frame([], "eval_loss"), *preference_charts.updates([])]
            empty += [*grpo_panel.updates([]), "", "", ""]
            headline = (
                status_markdown(service, None) if who.signed_in else f"### {SIGN_IN.format(what='see your runs')}"
            )
            return [headline, *empty, *_buttons(None), picker, {"choices": choices}]
        stamp = service.stamp(job)
        if seen.get("job") == job.id and seen.get("stamp") == stamp:  # nothing changed: send (almost) nothing
            view = None if job.finished else service.view(job)  # a running one shows its time
            headline = gr.skip() if view is None else status_markdown(service, view)
            quiet = [headline, *[gr.skip()] * (self.n_outputs - 3), picker]
            return [*quiet, {**seen, "choices": choices}]
        view = service.view(job)
        events = view.events
        unchanged = seen.get("job") == job.id and seen.get("n_events") == len(events)
        return [
            status_markdown(service, view),
            progress_html(job, events, view.status),
            gr.skip() if unchanged else loss_frame(events),
            gr.skip() if unchanged else loss_frame(events, "eval_loss"),
            *([gr.skip()] * len(preference_charts.CHARTS) if unchanged else preference_charts.updates(events)),
            *([gr.skip()] * grpo_panel.N_PARTS if unchanged else grpo_panel.updates(events)),
            metrics_markdown(events, view.status),
            for_people(view.log()),  # library noise stays in log.txt only
            samples_markdown(view.samples),
            *_buttons(view),
            picker,
            {"job": job.id, "n_events": len(events), "choices": choices, "stamp": stamp},
        ]

    def refresh_picker(self, current, profile: gr.OAuthProfile | None):
        """The run picker's choices, keeping the selected run."""
        return picker_update(self.service, caller(profile), current)

    def _act(self, action, job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        try:
            action(caller(profile, oauth), job_id)  # the owner is checked there, on the server
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
        return self.refresh_picker(job_id, profile)

    def cancel(self, job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Cancel the caller's queued run, or stop their running one cleanly."""
        return self._act(self.service.cancel, job_id, profile, oauth)

    def resume(self, job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Queue the caller's stopped run again, with their token."""
        return self._act(self.service.resume, job_id, profile, oauth)

    def delete(self, job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Delete the caller's finished run."""
        return self._act(self.service.delete, job_id, profile, oauth)

    def retry_push(self, job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Push the caller's trained run again, with their own token (never the Space's)."""
        from trainer.hub import HubError

        try:
            self.service.retry_push(caller(profile, oauth), job_id)
        except (AccessError, HubError, ValueError) as exc:
            gr.Warning(str(exc))
        return self.refresh_picker(job_id, profile)

    def _offer(self, make_zip, job_id, profile: gr.OAuthProfile | None):
        """A zip of the caller's own run, made for this request (never a data-dir file by its path)."""
        try:
            return gr.update(value=make_zip(self.service, caller(profile), job_id), visible=True)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.update(value=None, visible=False)

    def download(self, job_id, profile: gr.OAuthProfile | None):
        """The caller's run's adapter as a zip."""
        return self._offer(adapter_zip, job_id, profile)

    def download_trl(self, job_id, profile: gr.OAuthProfile | None):
        """The caller's run as a config stock TRL runs, as a zip."""
        return self._offer(trl_zip, job_id, profile)

    def continue_training(self, job_id, profile: gr.OAuthProfile | None):
        """Fill the Train form from the caller's own finished run, to continue from its adapter, and open Train."""
        return self._continue(job_id, profile, None)

    def continue_with_dpo(self, job_id, profile: gr.OAuthProfile | None):
        """Fill the Train form for DPO from the caller's own finished run (SFT, then DPO): its adapter is the start
        and the reference, DPO's data and settings come from the DPO preset for its model; open Train."""
        return self._continue(job_id, profile, "dpo")

    def _continue(self, job_id, profile: gr.OAuthProfile | None, method: str | None):
        try:
            cfg = self.service.continue_config(caller(profile), job_id, method)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return [gr.skip()] * (2 + self.n_fields)
        return [gr.Tabs(selected="train"), gr.Accordion(open=True), *preset_updates(cfg, self.unavailable)]

    def chat_with(self, job_id, profile: gr.OAuthProfile | None):
        """Open the Compare tab on this run (the owner is checked here, on the server)."""
        who = caller(profile)
        try:
            job = self.service.find(who, job_id)
        except AccessError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip()
        if not job.status.trained:  # never quietly another run's adapter instead
            gr.Warning(f"Run #{job.id} is {job.status}: it has an adapter to chat with once it has finished.")
            return gr.skip(), gr.skip()
        return gr.Tabs(selected="compare"), adapter_update(self.service, who, str(job.id))


def build(ctx: AppContext, app: gr.Blocks, train_fields: list | None = None, advanced: Any = None) -> RunsTab:
    """Build the Runs tab's components and wire them to its handlers (polling, actions, reattach on reload).

    train_fields: the Train tab's setting widgets, in `form_fields()` order, and `advanced`, its Advanced settings
    accordion: Continue training fills them (and opens the accordion, where *Continue from adapter* is).
    """
    c = _layout(ctx.run_picker)
    h = RunsTab(ctx)
    names = [
        "status",
        "progress",
        "plot",
        "eval_plot",
        "preference_plots",
        "grpo_panel",
        "metrics",
        "log",
        "samples",
        "cancel",
        "resume",
        "retry_push",
        "delete",
        "download",
        "chat",
        "download_trl",
        "continue",
        "continue_dpo",
        "picker",
        "seen",
    ]
    widgets = [(name, w) for name in names for w in (c[name] if isinstance(c[name], list) else [c[name]])]
    outputs = [w for _, w in widgets]
    h.output_names = [name for name, _ in widgets]  # what `refresh` returns, in order (the charts: one name each)
    h.n_outputs = len(outputs)
    for trigger in (c["timer"].tick, c["picker"].change):  # a few file reads: answered directly, not queued
        trigger(h.refresh, [c["picker"], c["seen"]], outputs, queue=False, show_progress="hidden")
    c["reload"].click(h.refresh_picker, c["picker"], c["picker"], queue=False)
    for action in (h.cancel, h.resume, h.delete, h.retry_push):
        c[action.__name__].click(action, c["picker"], c["picker"])
    downloads = ((c["download"], h.download, c["zip"]), (c["download_trl"], h.download_trl, c["trl_zip"]))
    for button, make, file in downloads:
        button.click(make, c["picker"], file).then(None, file, None, js=SAVE_FILE_JS)  # one click: made, then saved
    if train_fields:
        h.n_fields = len(train_fields)
        for button, handler in ((c["continue"], h.continue_training), (c["continue_dpo"], h.continue_with_dpo)):
            button.click(handler, c["picker"], [ctx.tabs, advanced, *train_fields], queue=False)
    c["chat"].click(h.chat_with, c["picker"], [ctx.tabs, ctx.chat_adapter], queue=False)
    app.load(h.refresh_picker, c["picker"], c["picker"])  # reattach to the latest run after a reload
    c["log"].change(None, None, None, js=FOLLOW_LOG_JS, queue=False)
    h.evals = eval_panel.build(ctx, c["picker"], c["timer"], SAVE_FILE_JS)
    h.gguf = gguf_panel.build(ctx, c["picker"], c["timer"], SAVE_FILE_JS)
    h.overlay = run_overlay.build(ctx)
    h.components = c
    return h


def _layout(picker: gr.Dropdown) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["picker"] = picker.render()
        c["reload"] = gr.Button("Refresh", elem_id="reload-runs", scale=0, min_width=90)
    with gr.Row():  # the actions on the selected run, each enabled by its state
        c["cancel"] = gr.Button("Cancel", elem_id="cancel", scale=0, min_width=90, interactive=False)
        c["resume"] = gr.Button("Resume", elem_id="resume", scale=0, min_width=90, interactive=False)
        c["retry_push"] = gr.Button("Retry push", elem_id="retry-push", scale=0, min_width=110, interactive=False)
        c["delete"] = gr.Button("Delete", elem_id="delete", scale=0, min_width=90, interactive=False, variant="stop")
        c["download"] = gr.Button(
            "Download adapter (.zip)", elem_id="download-adapter", scale=0, min_width=190, interactive=False
        )
        c["chat"] = gr.Button(
            "Chat with this run", elem_id="chat-with-run", scale=0, min_width=170, interactive=False, variant="primary"
        )
        c["download_trl"] = gr.Button(
            "Download for TRL", elem_id="download-trl", scale=0, min_width=160, interactive=False
        )
        c["continue"] = gr.Button(
            "Continue training", elem_id="continue-training", scale=0, min_width=170, interactive=False
        )
        c["continue_dpo"] = gr.Button(
            "Continue with DPO", elem_id="continue-with-dpo", scale=0, min_width=170, interactive=False
        )
    c["zip"] = gr.File(label="adapter (.zip)", visible=False, elem_id="adapter-zip")
    c["trl_zip"] = gr.File(
        label="trl_<method>.yaml + trl_data/ (.zip): unpack, then trl <method> --config trl_<method>.yaml",
        visible=False,
        elem_id="trl-zip",
    )
    c["status"] = gr.Markdown(elem_id="run-status")
    c["progress"] = gr.HTML(elem_id="run-progress", css_template=PROGRESS_CSS)
    c["metrics"] = gr.Markdown(elem_id="run-metrics")
    with gr.Row():  # one series per chart: Gradio 6 leaves a series that appears mid-run without a color
        c["plot"] = gr.LinePlot(x="step", y="loss", title="Train loss", elem_id="loss-plot", height=280)
        c["eval_plot"] = gr.LinePlot(
            x="step", y="eval_loss", y_title="loss", title="Eval loss (held out)", elem_id="eval-plot", height=280
        )
    c["preference_plots"] = preference_charts.build()  # DPO, KTO, ORPO: rewards, margin, accuracy, log-probabilities
    c["grpo_panel"] = grpo_panel.build()  # GRPO: rewards, lengths, fractions, the latest completions, a warning
    c["samples"] = gr.Markdown(elem_id="run-samples")
    c["log"] = gr.Textbox(  # follows the end of the log as it grows (unless the user scrolled up to read)
        label="log.txt (tail)", elem_id="run-log", lines=10, max_lines=20, autoscroll=False, interactive=False
    )
    c["timer"] = gr.Timer(REFRESH_S)
    c["seen"] = gr.State({})  # what this browser tab last drew: job id, number of events, picker choices
    return c
