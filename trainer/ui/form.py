"""The Train tab's form, generated from RunConfig: a widget per setting, values back to a config, problems per field.

No default, range or label is written here: each widget is made from its field's metadata (label, help, bounds,
choices), so the form, the CLI flags and the YAML always agree.
"""

from __future__ import annotations

import typing
from typing import Any

import gradio as gr

from trainer.config import FieldSpec, RunConfig, apply_value, iter_fields
from trainer.config.hints import render_hints

FORM_SECTIONS = ("model", "data", "lora", "training", "hub")
SECTION_TITLES = {"model": "Model", "data": "Data", "lora": "LoRA", "training": "Training", "hub": "Publish"}


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
    """The list of problems, each led by the field label it belongs to, fixes named by field label (not by flag)."""
    if not problems:
        return ""
    labels = {spec.key: spec.meta["label"] for spec in iter_fields()}
    lines = []
    for problem in problems:
        key, _, text = problem.partition(": ")
        lines.append(f"- **{labels.get(key, key)}** (`{key}`): {render_hints(text, 'ui')}")
    return "### Fix these before training\n" + "\n".join(lines)


def field_updates(problems: list[str]) -> list[Any]:
    """Per-field updates: the problem shown under the field it concerns, the help text under the others."""
    by_key: dict[str, str] = {}
    for problem in problems:
        key, _, text = problem.partition(": ")
        by_key.setdefault(key, render_hints(text, "ui"))
    return [gr.update(info=f"⚠️ {by_key[s.key]}" if s.key in by_key else help_text(s)) for s in form_fields()]
