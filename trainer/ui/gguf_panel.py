"""The Runs tab's *Export GGUF* section: the trained run as a GGUF file for llama.cpp, Ollama and LM Studio (the merged
model at a chosen type, or the adapter alone), made by llama.cpp's own tools as a queued job, with its size and time
estimated before it starts, its progress, the files made to download, and a push to the Hub.

Every handler takes the run id the browser sent and hands it to the run service's exports (`RunService.exports`),
which check that the caller owns the run; a file to download is chosen by its name from the run's own list.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from trainer.runs.service import GGUF_TYPES, AccessError, RunService, RunState, gguf_repo_id, without_server_paths
from trainer.ui.context import AppContext, caller, download_folder
from trainer.ui.eval_panel import not_started
from trainer.ui.form import labelled

TYPE_CHOICES = [
    ("q4_K_M: smallest, the usual choice for a laptop", "q4_K_M"),
    ("q5_K_M: a little larger, a little closer", "q5_K_M"),
    ("q8_0: close to the original", "q8_0"),
    ("f16: the original, at half precision", "f16"),
    ("bf16: the original, in bfloat16", "bf16"),
]
PUSH_CHOICES = [
    ("keep it here (download it below)", "none"),
    ("push to a repo of its own (<repo>-GGUF, with its card)", "separate"),
    ("push beside the adapter (its repo's gguf/)", "alongside"),
]


def export_status(service: RunService, view) -> str:
    """The export's state, phase, error and files, as Markdown."""
    job, status, lines = view.job, view.status, []
    if job is not None:
        if job.status == RunState.QUEUED:
            lines.append(f"**Export queued** · {service.waiting_note(job) or ''}")
        elif job.status == RunState.RUNNING:
            lines.append(f"**Exporting** · {status.get('phase') or 'starting'}…")
        elif job.status == RunState.SUCCEEDED:
            lines.append(f"**Exported** `{status.get('file') or ''}`")
        else:
            lines.append(f"**Last export {job.status}**")
        if job.error and job.status != RunState.SUCCEEDED:
            lines.append(labelled(without_server_paths(job.error)))
    if view.files:
        files = ", ".join(f"`{name}` ({size / 1e6:,.1f} MB)" for name, size in view.files)
        lines.append(f"**Files:** {files} · each with an Ollama `Modelfile.<type>` beside it.")
    elif job is None:
        lines.append("Not exported yet: pick a type and press **Export GGUF**.")
    return "\n\n".join(lines)


class GGUFPanel:
    """The Export GGUF section's handlers (public methods the page's events call, and tests call by name)."""

    def __init__(self, ctx: AppContext):
        self.service = ctx.service

    def estimate_export(self, run_id, gguf_type, adapter, profile: gr.OAuthProfile | None):
        """The file's size and the time, before Export."""
        try:
            return self.service.exports.estimate(caller(profile), run_id, gguf_type, bool(adapter)).markdown()
        except (AccessError, ValueError, OSError) as exc:
            return labelled(str(exc))

    def default_repo(self, run_id, profile: gr.OAuthProfile | None):
        """The repo a push goes to unless the user types another: the run's adapter repo + '-GGUF'."""
        try:
            run = self.service.find(caller(profile), run_id)
        except AccessError:
            return gr.skip()
        return gr.update(value=gguf_repo_id(self.service.config_of(run).hub.repo_id))

    def export_gguf(
        self, run_id, gguf_type, adapter, push, repo, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None
    ):
        """Queue the export of the caller's run (refused with every problem named, before anything runs)."""
        try:
            job = self.service.exports.start(caller(profile, oauth), run_id, gguf_type, bool(adapter), push, repo)
        except (AccessError, ValueError) as exc:
            return not_started("Export", exc)
        return f"**Export queued** (job #{job.id}): the progress shows here."

    def cancel_export(self, run_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Cancel the caller's run's export that is queued or running (nothing half-written is kept)."""
        try:
            self.service.exports.cancel(caller(profile, oauth), run_id)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.skip()
        return "**Cancelling the export**: its unfinished files are removed."

    def refresh_export(self, run_id, seen: dict, profile: gr.OAuthProfile | None):
        """Re-read the run's exports; send nothing when they have not changed since this browser tab last drew them."""
        who = caller(profile)
        try:
            run = self.service.find(who, run_id)
        except AccessError:
            return ["", gr.update(choices=[], value=None), gr.update(interactive=False), {}]
        stamp = [run.id, *self.service.exports.stamp(who, run)]
        if seen.get("stamp") == stamp:
            return [gr.skip()] * 3 + [seen]
        view = self.service.exports.view(who, run)
        names = [name for name, _ in view.files]
        files = gr.update(choices=names, value=names[0] if names else None)
        return [export_status(self.service, view), files, gr.update(interactive=view.active), {"stamp": stamp}]

    def download_export(self, run_id, name, profile: gr.OAuthProfile | None) -> Any:
        """The chosen export of the caller's run, as a download (matched by name against the run's own files)."""
        try:
            return str(self.service.exports.download(caller(profile), run_id, name or "", download_folder("gguf-")))
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return None


def build(ctx: AppContext, picker: gr.Dropdown, timer: gr.Timer, save_file_js: str) -> GGUFPanel:
    """The section's components, wired to its handlers."""
    panel = GGUFPanel(ctx)
    title = "Export GGUF: run it with llama.cpp, Ollama or LM Studio"
    with gr.Accordion(title, open=False, elem_id="gguf-section") as section:
        with gr.Row():
            gguf_type = gr.Dropdown(TYPE_CHOICES, value=GGUF_TYPES[0], label="Type", elem_id="gguf-type", scale=2)
            adapter = gr.Checkbox(
                False, label="The adapter alone (f16, for llama.cpp --lora / Ollama ADAPTER)", elem_id="gguf-adapter"
            )
        with gr.Row():
            push = gr.Radio(PUSH_CHOICES, value="none", label="Then", elem_id="gguf-push", scale=2)
            repo = gr.Textbox(label="Repo for the GGUF files", placeholder="you/phi3-pirate-GGUF", elem_id="gguf-repo")
        estimate = gr.Markdown(elem_id="gguf-estimate")
        with gr.Row():
            start = gr.Button("Export GGUF", elem_id="gguf-start", variant="primary", scale=0, min_width=140)
            cancel = gr.Button("Cancel export", elem_id="gguf-cancel", scale=0, min_width=140, interactive=False)
        status = gr.Markdown(elem_id="gguf-status")
        with gr.Row():
            files = gr.Dropdown([], label="Exported files", elem_id="gguf-files", scale=2)
            download = gr.Button("Download", elem_id="gguf-download", scale=0, min_width=110)
        file = gr.File(label="GGUF", visible=False, elem_id="gguf-file")
        seen = gr.State({})
    form = [picker, gguf_type, adapter]
    for trigger in (section.expand, gguf_type.change, adapter.change):  # not per run pick: a config read each
        trigger(panel.estimate_export, form, estimate, queue=False, show_progress="hidden")
    section.expand(panel.default_repo, picker, repo, queue=False)
    start.click(panel.export_gguf, [picker, gguf_type, adapter, push, repo], status)
    cancel.click(panel.cancel_export, picker, status)
    for trigger in (timer.tick, picker.change):
        trigger(
            panel.refresh_export, [picker, seen], [status, files, cancel, seen], queue=False, show_progress="hidden"
        )
    download.click(panel.download_export, [picker, files], file).then(None, file, None, js=save_file_js)
    return panel
