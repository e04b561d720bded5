"""The Train tab: preset, dataset source, the form generated from RunConfig, preview, start and YAML export."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import gradio as gr

from trainer.config import PRESETS, ConfigError, FieldSpec, RunConfig, preset_config
from trainer.config.hints import render_hints
from trainer.runs.service import AccessError, Caller, RefusedRun, RunService
from trainer.ui import sweep_panel
from trainer.ui.context import AppContext, OnePerSession, caller, download_folder, picker_update, plain, zero_gpu

if TYPE_CHECKING:  # the web page imports no estimate or Hub code until it is used
    from trainer.estimate.device import Device
    from trainer.runs.service import Flavor
from trainer.ui.form import (
    AS_MEANT,
    AS_MEANT_LABEL,
    AS_MEANT_NOTE,
    FORM_SECTIONS,
    METHOD_SECTIONS,
    SECTION_TITLES,
    as_meant_targets,
    config_from_form,
    field_info,
    field_rows,
    field_updates,
    form_fields,
    labelled,
    make_widget,
    opens_advanced,
    preset_markdown,
    preset_updates,
    problems_markdown,
    section_shown,
    without,
)

BUNDLED_EXAMPLES = {
    "Pirate persona: chat messages (.jsonl)": "examples/pirate_chat.jsonl",
    "Pirate persona: Alpaca (.json)": "examples/pirate_alpaca.json",
    "Pirate persona: ShareGPT (.jsonl)": "examples/pirate_sharegpt.jsonl",
    "Pirate persona: prompt/completion (.csv)": "examples/pirate_prompt_completion.csv",
}

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- handlers' logic (no widgets)


def estimate_panel(
    cfg: RunConfig,
    rows: list | None = None,
    tokenizer: Any = None,
    total_rows: int | None = None,
    token: str | bool | None = None,
    device: Device | None = None,
    lengths: list | None = None,
    pairs: list | None = None,
) -> str:
    """The "know before you start" panel: token lengths vs max_length, peak memory vs the device, training time
    (and its cost on a `device` the user pays for; default: this machine, see `detect_device`).

    Without rows (the form has problems in other fields, say) it shows what it can: memory and no time. `rows` may
    be a sample of `total_rows` (a streamed Hub split); training reads at most `data.max_rows` of them. `lengths`
    (the preview's `row_tokens`, one per row) stand in for `rows` and `tokenizer`: the rows are not tokenised again.
    `pairs`: preference pairs' lengths (the preview's `pair_lengths`), for DPO, KTO and ORPO.
    """
    from trainer.estimate import estimate_run, model_shape, render_markdown

    if cfg.problems():
        return "**Estimate:** fix the settings above first."
    if cfg.data.max_rows is not None:
        rows = rows[: cfg.data.max_rows] if rows is not None else None
        lengths = lengths[: cfg.data.max_rows] if lengths is not None else None
        pairs = pairs[: cfg.data.max_rows] if pairs is not None else None
        total_rows = min(total_rows, cfg.data.max_rows) if total_rows is not None else None
    try:
        shape = model_shape(cfg.model.model_name_or_path, token=token)
        return "### Before you start\n" + render_markdown(
            estimate_run(
                cfg,
                rows=rows,
                tokenizer=tokenizer,
                lengths=lengths,
                total_rows=total_rows,
                shape=shape,
                device=device,
                pairs=pairs,
            )
        )
    except ValueError as exc:  # a base model whose shape cannot be read here (offline, say)
        return f"**Estimate:** not available for this model here ({exc})."


def memory_warning(cfg: RunConfig, token: str | bool | None = None) -> str | None:
    """At Start: a warning when the estimated peak memory will not fit the device, with the change that fits."""
    from trainer.estimate import estimate_run, model_shape
    from trainer.estimate.render import size

    try:
        fit = estimate_run(cfg, shape=model_shape(cfg.model.model_name_or_path, token=token)).fit
    except ValueError:
        return None
    if fit.verdict != "will not fit":
        return None
    fix = f" {fit.suggestion.text}." if fit.suggestion else " Pick a GPU with more memory."
    return (
        f"This run will likely not fit: about {size(fit.estimate.total)} of {size(fit.device.memory)} on "
        f"{fit.device.name} (an estimate; see Preview).{fix}"
    )


def preview_data(values: dict[str, Any], who: Caller, flavor: Flavor | None = None) -> tuple[str, str, str]:
    """Preview button: detected format, rows, problems, length stats, the first rows rendered, and the estimate
    (on this machine, or on the Hugging Face Jobs `flavor` chosen to run on, with its cost).

    Reads the data with the caller's token (none for a signed-out visitor on a Space: public datasets only).
    """
    from trainer import data
    from trainer.data.prompts import preview_prompts
    from trainer.estimate.tokens import row_tokens

    cfg, problems = config_from_form(values)
    problems = [p for p in problems if p.startswith("data.")] or RunService.read_problems(who, cfg)
    if problems:
        return problems_markdown(problems), "", ""
    token = RunService.hub_token(who)  # the caller's own, or False (the libraries read None as "the Space's HF_TOKEN")
    try:
        tokenizer = data.preview_tokenizer(cfg.model.model_name_or_path, token=token)
        if cfg.training.method == "grpo":  # its prompts, and the columns its rewards read
            p = preview_prompts(cfg, tokenizer, token=token)
        else:
            p = data.preview(cfg.data, tokenizer, cfg.training.max_length, token=token, measure=row_tokens)
    except (data.DataError, ConfigError) as exc:
        return f"### Dataset problem\n{labelled(str(exc))}", "", ""  # it may quote the data: escaped
    stats = p.token_lengths
    prompts = p.format == "prompts"  # GRPO's: not cut to max_length (TRL 1.16's GRPO has no prompt limit)
    cut = "" if prompts else f" · **over max length {p.max_length}:** {p.n_over_max_length} (truncated)"
    summary = [
        f"**Format:** `{p.format}` · **rows:** {p.n_rows} usable of {p.n_input}"
        + (f" ({p.extent})" if p.extent else ""),
        f"**Tokens per {'prompt' if prompts else 'row'}:** min {stats['min']:.0f}, median {stats['p50']:.0f}, "
        f"p95 {stats['p95']:.0f}, max {stats['max']:.0f}{cut}",
    ]
    summary += [f"**Note:** {note}" for note in p.notes]
    if p.pairs:  # preference pairs side by side
        table = ["| prompt | chosen | rejected |", "| --- | --- | --- |"]
        table += ["| " + " | ".join(plain(cell) for cell in pair) + " |" for pair in p.pairs]
        summary.append("\n".join(table))
    if p.blocked:
        summary.append(f"### Start is blocked\n{labelled(p.blocked)}")
    if p.problems:
        shown = "\n".join(f"- {plain(line)}" for line in p.problems[:10])
        more = f"\n- ... and {len(p.problems) - 10} more" if len(p.problems) > 10 else ""
        summary.append(f"**{len(p.problems)} malformed rows left out:**\n{shown}{more}")
    if p.quality is not None:
        summary.append(render_hints(data.format_quality(p.quality, markdown=True), "ui"))
    rendered = "\n\n".join(f"# row {i + 1}\n{text}" for i, text in enumerate(p.rendered))
    device = estimate_device(flavor, cfg)
    if flavor is not None and device is None:  # not this machine's figures under the flavour's name
        panel = f"**Estimate:** none for Hugging Face Jobs {flavor.name} (${flavor.usd_per_hour:.2f}/h): its hardware "
        panel += "is not in the estimate's table."
    else:
        panel = estimate_panel(cfg, None, None, p.n_total, token, device, p.measured, p.pair_lengths)  # tokenised once
    return "\n\n".join(summary), rendered, panel


def export_yaml(values: dict[str, Any]) -> tuple[Any, str, str]:
    """Download config: the exact YAML of the form (for `python -m trainer train --config`)."""
    cfg, problems = config_from_form(values)
    if problems:
        return gr.update(visible=False), "", problems_markdown(problems)
    path = download_folder("config-") / "config.yaml"  # a copy for this request, not a data-dir file
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    return gr.update(value=str(path), visible=True), cfg.to_yaml(), ""


# --------------------------------------------------------------------------- the tab


class TrainTab:
    """The Train tab's handlers: each a public method that Gradio calls (and tests call by name).

    Form values arrive as Gradio hands a set of inputs over, keyed by component; `keyed` turns them into setting
    keys. Start hands the run to the run service, which makes every check before it is queued.
    """

    def __init__(self, ctx: AppContext, c: dict[str, Any], unavailable: dict[str, str], flavors: list[Flavor]):
        self.ctx, self.service, self.components, self.unavailable = ctx, ctx.service, c, unavailable
        self.fields: dict[str, Any] = c["fields"]
        self.field_list = [self.fields[spec.key] for spec in form_fields()]
        self.by_choice = dict(zip(run_on_choices(flavors)[1:], flavors, strict=True))
        self.previews = OnePerSession()
        self.sweep: Any = None  # its "Sweep" section (trainer.ui.sweep_panel)

    def name_run(self, run_cfg: RunConfig, values: dict) -> None:
        """The run's name as typed, or (empty) the chosen preset's and the dataset's: `RunConfig.display_name`."""
        preset = values.get(self.components["preset"])
        run_cfg.run.name = run_cfg.display_name(preset if preset in PRESETS else None)

    def keyed(self, values: dict) -> dict[str, Any]:
        """{component: value} (Gradio's set-of-inputs form) -> {setting key: value}."""
        return {key: values[component] for key, component in self.fields.items()}

    def fill_preset(self, name: str) -> list[Any]:
        """A preset picked: every field takes its value."""
        return preset_updates(preset_config(name), self.unavailable)

    @staticmethod
    def show_as_meant(name: str) -> Any:
        """The "as the notebook meant" button shows for the notebook presets only."""
        return gr.update(visible=name in AS_MEANT)

    @staticmethod
    def show_method_sections(method: str) -> list[Any]:
        """The preference settings show for DPO, KTO and ORPO, GRPO's rewards for GRPO."""
        return [gr.update(visible=section_shown(section, method)) for section in METHOD_SECTIONS]

    @staticmethod
    def as_meant() -> Any:
        """The notebooks' code trains o_proj and down_proj only; one click gives the four projections they meant."""
        gr.Info(AS_MEANT_NOTE)
        return gr.update(value=as_meant_targets())

    @staticmethod
    def pick_example(label: str | None) -> Any:
        """A person's pick of a bundled example fills the dataset."""
        return gr.update(value=BUNDLED_EXAMPLES.get(label, "")) if label else gr.skip()

    @staticmethod
    def example_of(name: str | None) -> Any:
        """The dataset, however set, picks its bundled example (or none)."""
        return gr.update(value=example_label(name))

    def forget(self, spec: FieldSpec, problems: list[str]):
        """Field `spec` changed: its problem from Start leaves the page (the preview and estimate it shaped go in
        the browser, at once, so that a later preview's answer is never wiped by this change's)."""
        if not any(p.partition(": ")[0] == spec.key for p in problems):
            return gr.skip(), gr.skip(), gr.skip()
        left = without(problems, {spec.key})
        return problems_markdown(left), gr.update(info=field_info(spec, self.unavailable), elem_classes=[]), left

    def upload(self, path, profile: gr.OAuthProfile | None):
        """An uploaded file is kept in the caller's own upload folder and named in the Dataset field."""
        saved, error = self.service.save_upload(caller(profile), path)
        return (gr.update(value=saved) if saved else gr.skip()), error

    def preview(
        self,
        values: dict,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
        request: gr.Request | None = None,
    ):
        """Preview data: one at a time per session (a second click answers at once)."""
        run_on = self.components.get("run_on")
        flavor = self.by_choice.get(values.get(run_on)) if run_on else None  # a listed choice, or this machine
        with self.previews.slot(request) as free:
            if not free:
                return "### A preview of yours is still running\nWait for it, then try again.", gr.skip(), gr.skip()
            return preview_data(self.keyed(values), caller(profile, oauth), flavor)

    def after_preview(self, rendered: str, problems: list[str]):
        """A preview that rendered rows proves the data settings: their problems from Start leave the page."""
        if not rendered or not problems:
            return gr.skip(), *[gr.skip()] * len(self.field_list), gr.skip()
        left = without(problems, {key for key in self.fields if key.startswith("data.")})
        return problems_markdown(left), *field_updates(left, self.unavailable), left

    def open_advanced(self, values: dict):
        """Preview: open Advanced settings when a data setting the preview refuses is in it."""
        problems = [p for p in config_from_form(self.keyed(values))[1] if p.startswith("data.")]
        return gr.Accordion(open=True) if opens_advanced(problems) else gr.skip()

    def export(self, values: dict):
        """Download config: the form's YAML as a file and as text."""
        return export_yaml(self.keyed(values))

    def start(self, values: dict, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Queue the form's run (the service checks everything first); its problems are shown by their fields."""
        service, c = self.service, self.components
        who = caller(profile, oauth)
        cleared = field_updates([], self.unavailable)
        run_cfg, problems = config_from_form(self.keyed(values), validate=False)  # the service validates it
        if problems:  # a value that is not even its setting's type: every problem of the form, at once
            problems = config_from_form(self.keyed(values))[1]
        self.name_run(run_cfg, values)
        flavor = chosen_flavor(values.get(c["run_on"])) if "run_on" in c else None
        try:
            if problems and who.signed_in:
                raise RefusedRun(problems)
            key = values.get(c["tracker_key"])
            job = service.start(who, run_cfg, flavor, self.ctx.on_gpu, zero_gpu(), tracker_key=key)
        except RefusedRun as exc:
            advanced = gr.Accordion(open=True) if opens_advanced(exc.problems) else gr.skip()  # the marked field
            marks = field_updates(exc.problems, self.unavailable)
            return [problems_markdown(exc.problems), exc.problems, *marks, advanced, gr.skip(), gr.skip()]
        except (AccessError, ValueError) as exc:  # signed out (a visitor never spends the GPU), or the run limit
            return [f"### {exc}", [], *cleared, gr.skip(), gr.skip(), gr.skip()]
        if warning := memory_warning(run_cfg, service.hub_token(who)):
            gr.Warning(warning)  # an estimate can be wrong: a warning as the run waits for the GPU, not a refusal
        selected = picker_update(service, who, str(job.id))  # the Runs tab opens on the new run
        return ["", [], *cleared, gr.skip(), gr.Tabs(selected="runs"), selected]


def build(ctx: AppContext, preset: str, cfg: RunConfig) -> TrainTab:
    """Build the Train tab's components and wire them to its handlers."""
    unavailable = ctx.service.unavailable_options(ctx.on_gpu)  # GPU-only options are not offered where they cannot run
    flavors = ctx.service.flavors()
    c = _layout(preset, cfg, ctx.service.limits.describe(), unavailable, run_on_choices(flavors))
    h = TrainTab(ctx, c, unavailable, flavors)
    fields, field_list = h.fields, h.field_list
    c["preset"].change(h.fill_preset, c["preset"], field_list, queue=False)
    c["preset"].change(preset_markdown, c["preset"], c["preset_description"], queue=False)
    c["preset"].change(h.show_as_meant, c["preset"], c["as_meant"], queue=False)
    c["as_meant"].click(h.as_meant, None, fields["lora.target_modules"], queue=False)
    method = fields["training.method"]
    method.change(h.show_method_sections, method, [c[f"section_{s}"] for s in METHOD_SECTIONS], queue=False)
    c["example"].input(h.pick_example, c["example"], fields["data.dataset_name"], queue=False)
    fields["data.dataset_name"].change(h.example_of, fields["data.dataset_name"], c["example"], queue=False)

    shown = gr.State([])  # the problems Start put on the page: each goes when its field changes or a preview passes
    for spec in form_fields():
        forget = functools.partial(h.forget, spec)
        forget.__name__ = "forget"  # the page's name for this event (a partial has none of its own)
        fields[spec.key].change(forget, shown, [c["errors"], fields[spec.key], shown], queue=False)
        if spec.key.startswith("data."):  # the preview of the old data, and its estimate
            stale = [c["preview_summary"], c["preview_rows"], c["estimate"]]
            fields[spec.key].change(None, None, stale, js="() => ['', '', '']")
        elif spec.section not in ("hub", "run"):  # a setting the estimate was made with
            fields[spec.key].change(None, None, c["estimate"], js="() => ''")

    c["upload"].upload(h.upload, c["upload"], [fields["data.dataset_name"], c["preview_summary"]])
    run_on = {c["run_on"]} if "run_on" in c else set()
    c["preview"].click(
        h.preview, set(field_list) | run_on, [c["preview_summary"], c["preview_rows"], c["estimate"]]
    ).then(h.after_preview, [c["preview_rows"], shown], [c["errors"], *field_list, shown], queue=False)
    c["preview"].click(h.open_advanced, set(field_list), c["advanced"], queue=False)
    c["export"].click(h.export, set(field_list), [c["yaml_file"], c["yaml_view"], c["errors"]])
    outputs = [c["errors"], shown, *field_list, c["advanced"], ctx.tabs, ctx.run_picker]
    c["start"].click(h.start, set(field_list) | {c["preset"], c["tracker_key"]} | run_on, outputs)
    h.sweep = sweep_panel.wire(h, c["sweep"])
    return h


def example_label(dataset: str | None) -> str | None:
    """The bundled example a dataset setting names (None for any other data), so the two never disagree."""
    return next((label for label, path in BUNDLED_EXAMPLES.items() if path == (dataset or "").strip()), None)


def run_on_choices(flavors: list[Flavor]) -> list[str]:
    """ "Run on" choices: this machine, then each Jobs flavour with its price ([] without flavours: no choice)."""
    from trainer.runs.service import LOCAL

    return [LOCAL, *(f"{JOBS_PREFIX}{f.choice}" for f in flavors)] if flavors else []


def estimate_device(flavor: Flavor | None, cfg: RunConfig) -> Device | None:
    """The device a run sent to Hugging Face Jobs is estimated on: the flavour's GPUs (as many as the run uses) and
    its price; None for this machine."""
    from trainer import distributed as dist
    from trainer.estimate.device import jobs_device

    if flavor is None:
        return None
    return jobs_device(flavor.name, dist.worker_processes(cfg.run.gpus, flavor.gpus), flavor.usd_per_hour)


JOBS_PREFIX = "Hugging Face Jobs, "


def chosen_flavor(choice: str | None) -> str | None:
    """The flavour name of a "Run on" choice (``Hugging Face Jobs, a10g-large: ...`` -> ``a10g-large``), or None."""
    if not choice or not choice.startswith(JOBS_PREFIX):
        return None
    return choice[len(JOBS_PREFIX) :].split(":", 1)[0]


def _layout(
    preset: str, cfg: RunConfig, limits: str, unavailable: dict[str, str], run_on: list[str] | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"fields": {}}

    def widgets(specs: list) -> None:
        for row in field_rows(specs):
            with gr.Row(equal_height=True):
                for spec in row:
                    c["fields"][spec.key] = make_widget(spec, spec.get(cfg), unavailable)

    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                c["preset"] = gr.Dropdown(
                    choices=list(PRESETS), value=preset, label="Preset", elem_id="preset", min_width=200, scale=1
                )
                c["preset_description"] = gr.Markdown(
                    preset_markdown(preset), elem_id="preset-description", min_width=200, scale=2
                )
            c["as_meant"] = gr.Button(AS_MEANT_LABEL, visible=preset in AS_MEANT, size="sm", elem_id="as-meant")
            with gr.Group():
                c["example"] = gr.Dropdown(
                    choices=list(BUNDLED_EXAMPLES),
                    value=example_label(cfg.data.dataset_name),
                    label="Bundled example",
                    info="Fill the dataset with an example shipped with the app.",
                    elem_id="example",
                )
                c["upload"] = gr.File(
                    label="…or upload a dataset file (.jsonl, .json, .csv, .parquet)", elem_id="upload", height=110
                )
            specs = form_fields()
            for section in FORM_SECTIONS:  # the preference and GRPO sections show for their methods only
                shown = section_shown(section, cfg.training.method)
                with gr.Group(visible=shown, elem_id=f"section-{section}") as c[f"section_{section}"]:
                    widgets([s for s in specs if s.section == section and not s.meta["advanced"]])
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced") as c["advanced"]:
                for section in FORM_SECTIONS:
                    if advanced := [s for s in specs if s.section == section and s.meta["advanced"]]:
                        gr.Markdown(f"**{SECTION_TITLES[section]}**")
                        widgets(advanced)
                c["tracker_key"] = gr.Textbox(
                    label="Tracker key",
                    type="password",
                    info="For Report to W&B (API key) or MLflow (token): yours, held in memory until the run starts, "
                    "never saved. Empty: W&B logs offline into the run folder.",
                    elem_id="tracker-key",
                )
        with gr.Column(scale=2):
            c["errors"] = gr.Markdown(elem_id="form-errors")
            c["start"] = gr.Button("Start training", variant="primary", elem_id="start")
            if run_on:
                c["run_on"] = gr.Dropdown(
                    run_on,
                    value=run_on[0],
                    label="Run on",
                    info="Hugging Face Jobs rent a GPU for this one run, billed to your Hugging Face account.",
                    elem_id="run-on",
                )
            if limits:
                gr.Markdown(limits, elem_id="limits")
            c["sweep"] = sweep_panel.layout()
            c["preview"] = gr.Button("Preview data", elem_id="preview")
            c["preview_summary"] = gr.Markdown(elem_id="preview-summary")
            c["estimate"] = gr.Markdown(elem_id="estimate")
            c["preview_rows"] = gr.Code(
                label="First rows, rendered with the chat template",
                language=None,
                elem_id="preview-rows",
                lines=8,
                max_lines=20,
            )
            c["export"] = gr.Button("Download config (YAML)", elem_id="export")
            c["yaml_file"] = gr.File(label="config.yaml", visible=False, elem_id="yaml-file")
            c["yaml_view"] = gr.Code(
                label="Same run from the CLI: python -m trainer train --config config.yaml",
                language="yaml",
                elem_id="yaml-view",
                lines=4,
                max_lines=30,
            )
    return c
