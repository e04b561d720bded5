"""The web app: Gradio Blocks with a Train tab (form generated from RunConfig) and a Runs tab (live monitoring).

The UI only wires: widgets -> RunConfig -> a `trainer.*` call -> updates. The form is generated from the fields of
RunConfig (label, help, bounds, choices), so no default or range is written here. Training runs in a worker process
started by trainer.jobs; the Runs tab polls the run folder (`events.jsonl`, `status.json`, `log.txt`) with a
`gr.Timer`, so a page reload or a second tab shows the same run without touching it.

On a machine without a CUDA GPU the app is the offline demo: the form starts from the `tiny-demo` preset (a tiny
Phi-3 with the real tokenizer, trained on the CPU) and a banner says so.

Example:
    python app.py            # http://127.0.0.1:7860
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import time
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from trainer import runfolder as rf
from trainer.config import PRESETS, ConfigError, FieldSpec, RunConfig, apply_value, iter_fields, preset_config

logger = logging.getLogger(__name__)

DEMO_PRESET = "tiny-demo"
GPU_PRESET = "lora"
BUNDLED_EXAMPLES = {
    "Pirate persona: chat messages (.jsonl)": "examples/pirate_chat.jsonl",
    "Pirate persona: Alpaca (.json)": "examples/pirate_alpaca.json",
    "Pirate persona: ShareGPT (.jsonl)": "examples/pirate_sharegpt.jsonl",
    "Pirate persona: prompt/completion (.csv)": "examples/pirate_prompt_completion.csv",
}
FORM_SECTIONS = ("model", "data", "lora", "training", "hub")
SECTION_TITLES = {"model": "Model", "data": "Data", "lora": "LoRA", "training": "Training", "hub": "Publish"}
REFRESH_S = 1.0
CSS = """
#demo-banner {background: #fff7e6; border: 1px solid #f0b35b; border-radius: 8px; padding: 4px 12px;}
#run-progress .bar {height: 14px; background: #e5e7eb; border-radius: 7px; overflow: hidden;}
#run-progress .fill {height: 100%; background: #6366f1;}
#form-errors ul {color: #b91c1c;}
"""


# --------------------------------------------------------------------------- environment


def gpu_available() -> bool:
    """True when training can use a CUDA GPU (imports torch once, at build time, not at page import)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a requirement
        return False


def demo_problems(cfg: RunConfig, on_gpu: bool) -> list[str]:
    """What the offline CPU demo cannot do (a real Phi-3 on a CPU with no Hub access)."""
    from trainer.modeling import TINY_MODEL_NAME

    if on_gpu or cfg.model.model_name_or_path == TINY_MODEL_NAME:
        return []
    return [
        f"model.model_name_or_path: this machine has no GPU, so it runs the offline demo and can only train "
        f"{TINY_MODEL_NAME}. Pick the {DEMO_PRESET} preset, or run the app on a GPU Space."
    ]


# --------------------------------------------------------------------------- form <-> RunConfig (generated)


def form_fields() -> list[FieldSpec]:
    """The settings shown in the form, in RunConfig order."""
    return [spec for spec in iter_fields() if spec.section in FORM_SECTIONS]


def widget_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as its widget shows it (lists and mappings as comma-separated text)."""
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if value is None and not _is_number(spec):
        return ""
    return value


def _is_number(spec: FieldSpec) -> bool:
    types = [t for t in typing.get_args(spec.type) if t is not type(None)] or [spec.type]
    return any(t in (int, float) for t in types) and spec.choices is None


def make_widget(spec: FieldSpec, value: Any) -> gr.Component:
    """The Gradio component for one setting, built from its metadata."""
    meta = spec.meta
    common = {
        "label": meta["label"],
        "info": meta["help"],
        "elem_id": f"field-{spec.name}",
        "value": widget_value(spec, value),
    }
    if spec.choices is not None:
        return gr.Dropdown(choices=list(spec.choices), **common)
    if spec.type is bool:
        return gr.Checkbox(**common)
    if _is_number(spec):
        is_int = int in (spec.type, *typing.get_args(spec.type))
        # bounds are checked by RunConfig (all problems at once, next to their fields), not by the widget
        return gr.Number(step=meta.get("step") or (1 if is_int else None), precision=0 if is_int else None, **common)
    return gr.Textbox(**common)


def help_text(spec: FieldSpec) -> str:
    """The field's help with its bounds, as shown under the widget."""
    bounds = [f"{k} {spec.meta[k]:g}" for k in ("min", "max") if spec.meta.get(k) is not None]
    return spec.meta["help"] + (f" ({', '.join(bounds)})" if bounds else "")


def config_from_form(values: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """Build a RunConfig from the form's values ({setting key: widget value}); return it with every problem."""
    cfg, errors = RunConfig(), []
    for key, value in values.items():
        apply_value(cfg, key, value, errors)
    bad = {e.split(":", 1)[0] for e in errors}
    return cfg, errors + [p for p in cfg.problems() if p.split(":", 1)[0] not in bad]


def problems_markdown(problems: list[str]) -> str:
    """The list of problems, each led by the field label it belongs to."""
    if not problems:
        return ""
    labels = {spec.key: spec.meta["label"] for spec in iter_fields()}
    lines = []
    for problem in problems:
        key, _, text = problem.partition(": ")
        lines.append(f"- **{labels.get(key, key)}** (`{key}`): {text}")
    return "### Fix these before training\n" + "\n".join(lines)


def field_updates(problems: list[str]) -> list[Any]:
    """Per-field updates: the problem shown under the field it concerns, the help text under the others."""
    by_key: dict[str, str] = {}
    for problem in problems:
        key, _, text = problem.partition(": ")
        by_key.setdefault(key, text)
    return [gr.update(info=f"⚠️ {by_key[s.key]}" if s.key in by_key else help_text(s)) for s in form_fields()]


# --------------------------------------------------------------------------- handlers (thin)


def preview_tokenizer(model_name: str):
    """The tokenizer to preview with: the configured model's when it is at hand, else the bundled Phi-3 one."""
    from transformers import AutoTokenizer

    from trainer.modeling import TINY_MODEL_NAME, TOKENIZER_DIR

    if model_name != TINY_MODEL_NAME:
        try:
            return AutoTokenizer.from_pretrained(model_name)
        except Exception:  # noqa: BLE001 - offline or private: the bundled tokenizer is the real Phi-3 one
            logger.info("preview: using the bundled Phi-3 tokenizer instead of %s's", model_name)
    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def preview_data(values: dict[str, Any], token: str | None = None) -> tuple[str, str]:
    """Preview button: detected format, rows, problems, length stats, and the first rows rendered."""
    from trainer import data

    cfg, problems = config_from_form(values)
    problems = [p for p in problems if p.startswith("data.")]
    if problems:
        return problems_markdown(problems), ""
    try:
        tokenizer = preview_tokenizer(cfg.model.model_name_or_path)
        p = data.preview(cfg.data, tokenizer, cfg.training.max_length, token=token)
    except (data.DataError, ConfigError) as exc:
        return f"### Dataset problem\n{exc}", ""
    stats = p.token_lengths
    summary = [
        f"**Format:** `{p.format}` · **rows:** {p.n_rows} usable of {p.n_input}",
        f"**Tokens per row:** min {stats['min']:.0f}, median {stats['p50']:.0f}, p95 {stats['p95']:.0f}, "
        f"max {stats['max']:.0f} · **over max length {p.max_length}:** {p.n_over_max_length} (truncated)",
    ]
    if p.problems:
        shown = "\n".join(f"- {line}" for line in p.problems[:10])
        more = f"\n- ... and {len(p.problems) - 10} more" if len(p.problems) > 10 else ""
        summary.append(f"**{len(p.problems)} malformed rows left out:**\n{shown}{more}")
    rendered = "\n\n".join(f"# row {i + 1}\n{text}" for i, text in enumerate(p.rendered))
    return "\n\n".join(summary), rendered


def check_before_queueing(cfg: RunConfig, on_gpu: bool, token: str | None = None) -> list[str]:
    """Everything knowable before a job is queued: machine, demo limits, push rights, and that the data parses."""
    from trainer import data
    from trainer.hub import HubError, check_push_access
    from trainer.modeling import environment_problems

    problems = environment_problems(cfg.model) + demo_problems(cfg, on_gpu)
    if problems:
        return problems
    if cfg.hub.repo_id:  # a long run must never fail at push time for a reason knowable now
        try:
            check_push_access(cfg.hub.repo_id, token)
        except HubError as exc:
            problems.append(str(exc) if str(exc).startswith("hub.") else f"hub.repo_id: {exc}")
    try:  # a sample is enough to catch a missing file/ID/split, an unknown format or all-bad rows
        data.prepare(replace(cfg.data, max_rows=min(cfg.data.max_rows or 200, 200)), token=token)
    except (data.DataError, ConfigError) as exc:
        problems.append(str(exc))
    return problems


def save_upload(path: str | None) -> tuple[str | None, str]:
    """Keep an uploaded dataset file under the data dir; return (its path or None, an error message or '')."""
    from trainer.data import SUPPORTED_SUFFIXES

    if not path:
        return None, ""
    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return None, (
            f"### Dataset problem\n**{Path(path).name}**: {suffix or 'no suffix'} files are not supported. "
            f"Upload a {', '.join(SUPPORTED_SUFFIXES)} file."
        )
    target = rf.data_dir() / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(path).name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return str(target), ""


def export_yaml(values: dict[str, Any]) -> tuple[Any, str, str]:
    """Download config: the exact YAML of the form (for `python -m trainer train --config`)."""
    cfg, problems = config_from_form(values)
    if problems:
        return gr.update(visible=False), "", problems_markdown(problems)
    path = rf.data_dir() / "exports" / f"config-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    rf.write_text_atomic(path, cfg.to_yaml())
    return gr.update(value=str(path), visible=True), cfg.to_yaml(), ""


# --------------------------------------------------------------------------- runs: reading the run folder


def job_choices(manager, owner: str | None) -> list[tuple[str, str]]:
    """(label, id) pairs for the run picker, newest first."""
    return [(f"#{j.id} · {j.status} · {j.name}", str(j.id)) for j in manager.store.list(owner)]


def loss_frame(events: list[dict[str, Any]], key: str = "loss"):
    """One loss series per step for gr.LinePlot (typed even when empty, so the axes stay numeric)."""
    import pandas as pd

    rows = [(e["step"], float(e[key])) for e in events if e.get(key) is not None]
    steps, values = zip(*rows, strict=True) if rows else ((), ())
    return pd.DataFrame({"step": pd.Series(steps, dtype="int64"), key: pd.Series(values, dtype="float64")})


def progress_html(job, events: list[dict[str, Any]]) -> str:
    """A progress bar with step/total and ETA."""
    steps = [e for e in events if "total_steps" in e]
    last = steps[-1] if steps else {}
    step, total = last.get("step", 0), last.get("total_steps") or 0
    if job is not None and job.status == "succeeded":
        step = total = max(total, step) or 1
    pct = 100 * step / total if total else 0
    eta = f" · ETA {last['eta_s']:.0f} s" if job is not None and job.status == "running" and "eta_s" in last else ""
    return (
        f'<div class="bar"><div class="fill" style="width:{pct:.1f}%"></div></div>'
        f"<div>step {step} / {total or '?'} ({pct:.0f} %){eta}</div>"
    )


def metrics_markdown(events: list[dict[str, Any]], status: dict[str, Any]) -> str:
    """Latest learning rate, non-padding tokens/s, GPU memory and the eval loss before -> after."""
    latest: dict[str, Any] = {}
    for e in events:
        latest.update({k: v for k, v in e.items() if v is not None})
    parts = []
    if "lr" in latest:
        parts.append(f"**learning rate** {latest['lr']:.2e}")
    if "tokens_per_s" in latest:
        parts.append(f"**tokens/s** {latest['tokens_per_s']:.0f} (non-padding)")
    parts.append(f"**GPU memory** {latest['gpu_mem_gb']:.1f} GB" if "gpu_mem_gb" in latest else "**GPU memory** n/a")
    before, after = status.get("eval_loss_before"), status.get("eval_loss_after")
    if before is not None:
        change = f" ({100 * (after - before) / before:+.1f} %)" if after is not None and before else ""
        parts.append(
            f"**eval loss** {before:.4f} → {after:.4f}{change}"
            if after is not None
            else f"**eval loss before** {before:.4f}"
        )
    return " · ".join(parts)


def status_markdown(manager, job) -> str:
    """Headline for the selected run: state, name, times, queue place or failure cause."""
    if job is None:
        return "No runs yet. Start one in the **Train** tab."
    lines = [f"### Run #{job.id} · {job.status}", f"{html.escape(job.name)} · `{job.run_dir}`"]
    if job.status == "queued":
        lines.append(f"Waiting for the GPU: place {manager.store.queue_position(job.id)} in the queue.")
    if job.started_at:
        end = job.finished_at or time.time()
        lines.append(
            f"started {time.strftime('%H:%M:%S', time.localtime(job.started_at))} · {end - job.started_at:.0f} s"
        )
    if job.error:
        label = {"failed": "Cause", "push_failed": "Trained and saved locally; the push failed"}.get(
            job.status, "Note"
        )
        lines.append(f"**{label}:** {html.escape(job.error)}")
    status = rf.read_json(Path(job.run_dir) / rf.STATUS_FILE, {}) or {}
    if status.get("push_state") == "pushed" and status.get("repo_url"):
        lines.append(f"**Published:** [{status.get('repo_id')}]({status['repo_url']})")
    return "\n\n".join(lines)


def samples_markdown(run_dir: Path) -> str:
    """Held-out prompts answered before and after training."""
    samples = rf.read_json(run_dir / rf.SAMPLES_FILE, []) or []
    if not samples:
        return ""
    rows = ["| prompt | before | after |", "| --- | --- | --- |"]
    for s in samples:
        cells = [s.get("prompt"), s.get("before"), s.get("after")]
        rows.append(
            "| " + " | ".join(html.escape(str(c or "…")).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- the app


def build_app(manager=None, on_gpu: bool | None = None) -> gr.Blocks:
    """Build the Blocks app (Train and Runs tabs) around a JobManager."""
    from trainer.jobs import JobManager, log_tail

    manager = manager or JobManager.default()
    on_gpu = gpu_available() if on_gpu is None else on_gpu
    start_preset = GPU_PRESET if on_gpu else DEMO_PRESET
    start_cfg = preset_config(start_preset)

    def owner_of(profile: gr.OAuthProfile | None) -> str | None:
        return profile.username if profile is not None else None

    with gr.Blocks(title="Phi-3 Fine-Tune Studio") as app:
        if os.environ.get("OAUTH_CLIENT_ID"):  # a Space with `hf_oauth: true`; locally HF_TOKEN / `hf auth login`
            with gr.Row():
                gr.Markdown(
                    "Sign in with Hugging Face to read your private datasets and push adapters to your account."
                )
                gr.LoginButton(scale=0, min_width=220)
        gr.Markdown(
            "# Phi-3 Fine-Tune Studio\nFine-tune Phi-3 with LoRA or QLoRA (TRL + PEFT), watch it train, "
            "and keep only the adapter."
        )
        if not on_gpu:
            gr.Markdown(
                "**Offline demo mode:** no GPU was found, so this app trains a *tiny random Phi-3* (the real "
                "Phi-3 tokenizer and architecture at toy width) on the CPU. Runs take about a minute; the "
                "real Phi-3-mini needs a GPU Space.",
                elem_id="demo-banner",
            )
        with gr.Tabs(selected="train") as tabs:
            with gr.Tab("Train", id="train"):
                train = build_train_tab(start_preset, start_cfg)
            with gr.Tab("Runs", id="runs"):
                runs = build_runs_tab()
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare = build_compare_tab()

        fields = train["fields"]
        field_list = [fields[s.key] for s in form_fields()]

        def keyed(values: dict) -> dict[str, Any]:
            """{component: value} (Gradio's set-of-inputs form) -> {setting key: value}."""
            return {key: values[component] for key, component in fields.items()}

        # --- Train tab wiring
        def fill_preset(name: str) -> list[Any]:
            cfg = preset_config(name)  # once, not once per field
            return [gr.update(value=widget_value(s, s.get(cfg))) for s in form_fields()]

        train["preset"].change(fill_preset, train["preset"], field_list, queue=False)
        train["example"].change(
            lambda label: gr.update(value=BUNDLED_EXAMPLES.get(label, "")) if label else gr.skip(),
            train["example"],
            fields["data.dataset_name"],
            queue=False,
        )

        def on_upload(path):
            saved, error = save_upload(path)
            return (gr.update(value=saved) if saved else gr.skip()), error

        train["upload"].upload(on_upload, train["upload"], [fields["data.dataset_name"], train["preview_summary"]])

        def preview(values: dict, oauth: gr.OAuthToken | None):
            from trainer.hub import resolve_token

            return preview_data(keyed(values), resolve_token(oauth.token if oauth is not None else None))

        train["preview"].click(preview, set(field_list), [train["preview_summary"], train["preview_rows"]])
        train["export"].click(
            lambda v: export_yaml(keyed(v)), set(field_list), [train["yaml_file"], train["yaml_view"], train["errors"]]
        )

        def start(values: dict, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
            from trainer.hub import resolve_token

            token = resolve_token(oauth.token if oauth is not None else None)
            cfg, problems = config_from_form(keyed(values))
            if not problems:
                problems = check_before_queueing(cfg, on_gpu, token)
            if problems:
                return [problems_markdown(problems), *field_updates(problems), gr.skip(), gr.skip()]
            job = manager.submit(cfg, owner=owner_of(profile), token=token)
            picker = gr.update(choices=job_choices(manager, owner_of(profile)), value=str(job.id))
            return ["", *field_updates([]), gr.Tabs(selected="runs"), picker]

        train["start"].click(start, set(field_list), [train["errors"], *field_list, tabs, runs["picker"]])

        # --- Runs tab wiring
        outputs = [
            runs["status"],
            runs["progress"],
            runs["plot"],
            runs["eval_plot"],
            runs["metrics"],
            runs["log"],
            runs["samples"],
            runs["cancel"],
            runs["resume"],
            runs["retry_push"],
            runs["delete"],
            runs["picker"],
            runs["seen"],
        ]

        def refresh(job_id, seen: dict, profile: gr.OAuthProfile | None):
            """Re-read the selected run's folder; skip the plot and picker when nothing changed (no flicker)."""
            owner = owner_of(profile)
            job = manager.store.get(int(job_id)) if job_id and str(job_id).isdigit() else None
            if job is not None and owner not in (None, job.owner):
                job = None  # another user's run
            choices = job_choices(manager, owner)
            picker = gr.skip() if choices == seen.get("choices") else gr.update(choices=choices)
            if job is None:
                return [
                    status_markdown(manager, None),
                    "",
                    loss_frame([]),
                    loss_frame([], "eval_loss"),
                    "",
                    "",
                    "",
                    *_buttons(None),
                    picker,
                    {"choices": choices},
                ]
            run_dir = Path(job.run_dir)
            events = rf.read_events(run_dir)
            status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
            unchanged = seen.get("job") == job.id and seen.get("n_events") == len(events)
            return [
                status_markdown(manager, job),
                progress_html(job, events),
                gr.skip() if unchanged else loss_frame(events),
                gr.skip() if unchanged else loss_frame(events, "eval_loss"),
                metrics_markdown(events, status),
                log_tail(run_dir),
                samples_markdown(run_dir),
                *_buttons(job),
                picker,
                {"job": job.id, "n_events": len(events), "choices": choices},
            ]

        def refresh_picker(current, profile: gr.OAuthProfile | None):
            choices = job_choices(manager, owner_of(profile))
            ids = [c[1] for c in choices]
            value = current if current in ids else (ids[0] if ids else None)
            return gr.update(choices=choices, value=value)

        runs["timer"].tick(
            refresh, [runs["picker"], runs["seen"]], outputs, concurrency_limit=None, show_progress="hidden"
        )
        runs["picker"].change(
            refresh, [runs["picker"], runs["seen"]], outputs, concurrency_limit=None, show_progress="hidden"
        )
        runs["reload"].click(refresh_picker, runs["picker"], runs["picker"], queue=False)

        def act(action):
            def handler(job_id, profile: gr.OAuthProfile | None):
                if job_id:
                    try:
                        action(int(job_id))
                    except ValueError as exc:
                        gr.Warning(str(exc))
                return refresh_picker(job_id, profile)

            return handler

        runs["cancel"].click(act(manager.cancel), runs["picker"], runs["picker"])
        runs["resume"].click(act(manager.resume), runs["picker"], runs["picker"])
        runs["delete"].click(act(manager.delete), runs["picker"], runs["picker"])

        def retry_push(job_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
            from trainer.hub import HubError

            try:
                manager.retry_push(int(job_id), oauth.token if oauth is not None else None)
            except (HubError, ValueError) as exc:
                gr.Warning(str(exc))
            return refresh_picker(job_id, profile)

        runs["retry_push"].click(retry_push, runs["picker"], runs["picker"])
        app.load(refresh_picker, runs["picker"], runs["picker"])  # reattach to the latest run after a reload

        # --- Compare tab wiring: one engine (base model + adapter) at a time, loaded on first use
        engines = EngineCache()

        def adapter_choices(profile: gr.OAuthProfile | None):
            runs_ = [j for j in manager.store.list(owner_of(profile)) if j.status in ("succeeded", "push_failed")]
            choices = [(f"run #{j.id} · {j.name}", j.run_dir) for j in runs_]
            return gr.update(choices=choices, value=choices[0][1] if choices else None)

        def send(prompt, base_hist, tuned_hist, source, hub_id, max_new, temperature, top_p, greedy, system):
            from trainer.chat import ChatError, GenerationSettings

            if not (prompt or "").strip():
                raise gr.Error("Type a prompt first.")
            if on_gpu and any(j.status == "running" for j in manager.store.list()):
                raise gr.Error("A training run is using the GPU; the comparison can load once it finishes.")
            wanted = (hub_id or "").strip() or source
            if wanted and not engines.holds(wanted):
                gr.Info(f"Loading the base model and the adapter of {wanted}…")
            try:
                engine = engines.get(wanted)
            except (ChatError, ValueError, OSError) as exc:
                raise gr.Error(str(exc)) from exc
            settings = GenerationSettings(
                max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), greedy=bool(greedy)
            )
            system_turn = [{"role": "system", "content": system}] if (system or "").strip() else []
            user = {"role": "user", "content": prompt}
            base_hist, tuned_hist = [*chat_messages(base_hist), user], [*chat_messages(tuned_hist), user]
            for base_reply, tuned_reply in engine.stream_pair(
                system_turn + base_hist, system_turn + tuned_hist, settings, stop=engines.stop
            ):
                yield (
                    base_hist + [{"role": "assistant", "content": base_reply}],
                    tuned_hist + [{"role": "assistant", "content": tuned_reply}],
                    "",
                )

        def label_panes(source, hub_id):
            """Name the two models above the panes (read from the run's config; no model is loaded here)."""
            from trainer.config import load_yaml

            wanted = (hub_id or "").strip() or source
            if not wanted:
                return ""
            config_file = Path(wanted) / rf.CONFIG_FILE
            base = load_yaml(config_file).model.model_name_or_path if config_file.exists() else "the adapter's base"
            name = Path(wanted).name if config_file.exists() else wanted
            return f"**Left, base:** `{base}` · **Right, tuned:** `{base}` + adapter `{name}`"

        gen_inputs = [
            compare["prompt"],
            compare["base_chat"],
            compare["tuned_chat"],
            compare["adapter"],
            compare["hub_id"],
            compare["max_new_tokens"],
            compare["temperature"],
            compare["top_p"],
            compare["greedy"],
            compare["system"],
        ]
        gen_outputs = [compare["base_chat"], compare["tuned_chat"], compare["prompt"]]
        for trigger in (compare["send"].click, compare["prompt"].submit):  # one chain, two triggers
            trigger(engines.reset_stop, None, None, queue=False).then(
                label_panes, [compare["adapter"], compare["hub_id"]], compare["models"], queue=False
            ).then(send, gen_inputs, gen_outputs, concurrency_id="gpu", concurrency_limit=1)

        def regenerate(base_hist, tuned_hist, *rest):
            base_hist, tuned_hist = chat_messages(base_hist), chat_messages(tuned_hist)
            last = next((m["content"] for m in reversed(base_hist) if m["role"] == "user"), "")
            cut = max((i for i, m in enumerate(base_hist) if m["role"] == "user"), default=0)
            tuned_cut = max((i for i, m in enumerate(tuned_hist) if m["role"] == "user"), default=0)
            yield from send(last, base_hist[:cut], tuned_hist[:tuned_cut], *rest)

        compare["regenerate"].click(engines.reset_stop, None, None, queue=False).then(
            regenerate, gen_inputs[1:], gen_outputs, concurrency_id="gpu", concurrency_limit=1
        )
        compare["stop"].click(lambda: engines.stop.set(), None, None, queue=False)
        compare["clear"].click(lambda: ([], [], ""), None, gen_outputs, queue=False)
        compare_tab.select(adapter_choices, None, compare["adapter"])

        def example_prompts(run_dir):
            """Prompts of the run's held-out rows (its samples.json), to try on both sides."""
            samples = rf.read_json(Path(run_dir) / rf.SAMPLES_FILE, []) if run_dir else []
            prompts = list(dict.fromkeys(s["prompt"] for s in samples or [] if s.get("prompt")))
            return gr.update(choices=prompts, value=None)

        compare["adapter"].change(example_prompts, compare["adapter"], compare["examples"], queue=False)
        compare["examples"].change(
            lambda p: gr.update(value=p) if p else gr.skip(), compare["examples"], compare["prompt"], queue=False
        )
        app.load(adapter_choices, None, compare["adapter"])
    return app


def build_train_tab(preset: str, cfg: RunConfig) -> dict[str, Any]:
    """The Train tab: preset, dataset source, the generated form, preview, start and YAML export."""
    c: dict[str, Any] = {"fields": {}}
    with gr.Row():
        with gr.Column(scale=3):
            c["preset"] = gr.Dropdown(
                choices=[(f"{n}: {PRESETS[n][0]}", n) for n in PRESETS], value=preset, label="Preset", elem_id="preset"
            )
            with gr.Group():
                c["example"] = gr.Dropdown(
                    choices=list(BUNDLED_EXAMPLES),
                    value=None,
                    label="Bundled example",
                    info="Fill the dataset with an example shipped with the app.",
                    elem_id="example",
                )
                c["upload"] = gr.File(
                    label="…or upload a dataset file (.jsonl, .json, .csv, .parquet)", elem_id="upload", height=110
                )
            specs = form_fields()
            for section in FORM_SECTIONS:
                with gr.Group(), gr.Row(equal_height=True):
                    for spec in (s for s in specs if s.section == section and not s.meta["advanced"]):
                        c["fields"][spec.key] = make_widget(spec, spec.get(cfg))
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                for section in FORM_SECTIONS:
                    gr.Markdown(f"**{SECTION_TITLES[section]}**")
                    with gr.Row(equal_height=True):
                        for spec in (s for s in specs if s.section == section and s.meta["advanced"]):
                            c["fields"][spec.key] = make_widget(spec, spec.get(cfg))
        with gr.Column(scale=2):
            c["errors"] = gr.Markdown(elem_id="form-errors")
            c["start"] = gr.Button("Start training", variant="primary", elem_id="start")
            c["preview"] = gr.Button("Preview data", elem_id="preview")
            c["preview_summary"] = gr.Markdown(elem_id="preview-summary")
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


def build_runs_tab() -> dict[str, Any]:
    """The Runs tab: run picker, status, progress, loss plot, metrics, samples, log tail and actions."""
    c: dict[str, Any] = {}
    with gr.Row():
        c["picker"] = gr.Dropdown(choices=[], label="Run", elem_id="run-picker", scale=4, allow_custom_value=True)
        c["reload"] = gr.Button("Refresh", elem_id="reload-runs", scale=0, min_width=90)
        c["cancel"] = gr.Button("Cancel", elem_id="cancel", scale=0, min_width=90, interactive=False)
        c["resume"] = gr.Button("Resume", elem_id="resume", scale=0, min_width=90, interactive=False)
        c["retry_push"] = gr.Button("Retry push", elem_id="retry-push", scale=0, min_width=110, interactive=False)
        c["delete"] = gr.Button("Delete", elem_id="delete", scale=0, min_width=90, interactive=False, variant="stop")
    c["status"] = gr.Markdown(elem_id="run-status")
    c["progress"] = gr.HTML(elem_id="run-progress")
    c["metrics"] = gr.Markdown(elem_id="run-metrics")
    with gr.Row():  # one series per chart: Gradio 6 leaves a series that appears mid-run without a color
        c["plot"] = gr.LinePlot(x="step", y="loss", title="Train loss", elem_id="loss-plot", height=280)
        c["eval_plot"] = gr.LinePlot(
            x="step", y="eval_loss", y_title="loss", title="Eval loss (held out)", elem_id="eval-plot", height=280
        )
    c["samples"] = gr.Markdown(elem_id="run-samples")
    c["log"] = gr.Code(label="log.txt (tail)", language=None, elem_id="run-log", lines=10, max_lines=20)
    c["timer"] = gr.Timer(REFRESH_S)
    c["seen"] = gr.State({})  # what this browser tab last drew: job id, number of events, picker choices
    return c


def build_compare_tab() -> dict[str, Any]:
    """The Compare tab: base on the left, tuned on the right, one prompt box, generation settings."""
    c: dict[str, Any] = {}
    with gr.Row():
        c["adapter"] = gr.Dropdown(
            choices=[], label="Tuned adapter (a finished run)", elem_id="compare-adapter", scale=3
        )
        c["hub_id"] = gr.Textbox(
            label="…or an adapter repo on the Hub",
            placeholder="alice/phi3-pirate-lora",
            elem_id="compare-hub-id",
            scale=2,
        )
    c["examples"] = gr.Dropdown(
        choices=[], label="Example prompts (held-out rows of the run)", elem_id="compare-examples"
    )
    c["models"] = gr.Markdown(elem_id="compare-models")
    with gr.Row():
        c["base_chat"] = gr.Chatbot(label="Base model", elem_id="base-chat", height=380)
        c["tuned_chat"] = gr.Chatbot(label="Tuned (base + adapter)", elem_id="tuned-chat", height=380)
    with gr.Row():
        c["prompt"] = gr.Textbox(
            label="Prompt (both sides get it)",
            elem_id="compare-prompt",
            scale=5,
            placeholder="Tell me about the moon.",
        )
        c["send"] = gr.Button("Send", variant="primary", elem_id="compare-send", scale=0, min_width=90)
        c["stop"] = gr.Button("Stop", elem_id="compare-stop", scale=0, min_width=80)
        c["regenerate"] = gr.Button("Regenerate", elem_id="compare-regenerate", scale=0, min_width=110)
        c["clear"] = gr.Button("Clear", elem_id="compare-clear", scale=0, min_width=80)
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            c["max_new_tokens"] = gr.Number(value=128, precision=0, label="Max new tokens")
            c["temperature"] = gr.Number(value=0.7, label="Temperature")
            c["top_p"] = gr.Number(value=0.9, label="Top-p")
            c["greedy"] = gr.Checkbox(value=True, label="Greedy (same answer every time)")
        c["system"] = gr.Textbox(label="System prompt (both sides)", value="")
    return c


def chat_messages(history: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """A Chatbot's value as plain role/content messages (Gradio may hand content back as a list of text parts)."""
    out = []
    for message in history or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        out.append({"role": message["role"], "content": str(content or "")})
    return out


class EngineCache:
    """The one chat engine in memory (base + adapter); loading another source replaces it. Plus the Stop flag."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._source: str | None = None
        self._engine = None
        self.stop = threading.Event()

    def holds(self, source: str) -> bool:
        """True when the engine for source is already in memory."""
        return self._source == source and self._engine is not None

    def reset_stop(self) -> None:
        self.stop.clear()

    def get(self, source: str | None):
        """The engine for a run folder or an adapter repo ID, loading it (and freeing the previous one) if needed."""
        from trainer.chat import ChatEngine, ChatError
        from trainer.hub import resolve_token

        if not source:
            raise ChatError("Pick a finished run, or type an adapter repo ID.")
        with self._lock:
            if source != self._source:
                self._engine = None  # free the old model before loading the next one
                self._engine = ChatEngine.from_source(source, token=resolve_token())
                self._source = source
            return self._engine


def _buttons(job) -> list[Any]:
    """Cancel / Resume / Retry push / Delete enabled by the selected run's state."""
    if job is None:
        return [gr.update(interactive=False)] * 4
    return [
        gr.update(interactive=job.status in ("queued", "running")),
        gr.update(interactive=job.resumable),
        gr.update(interactive=job.status == "push_failed"),
        gr.update(interactive=job.finished),
    ]


def launch(**kwargs: Any) -> None:
    """Build the app and serve it (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set)."""

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app()
    app.queue(default_concurrency_limit=4)
    app.launch(
        theme=gr.themes.Soft(),
        css=CSS,
        allowed_paths=[str(rf.data_dir())],
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        **kwargs,
    )
