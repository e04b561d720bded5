"""The Train tab's form, generated from RunConfig: a widget per setting, values back to a config, problems per field.

No default, range or label is written here: each widget is made from its field's metadata (label, help, bounds,
choices), so the form, the CLI flags and the YAML always agree.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import gradio as gr

from trainer.config import PRESETS, FieldSpec, RunConfig, apply_value, iter_fields
from trainer.config.hints import render_hints
from trainer.config.methods import PREFERENCE_METHODS

FORM_SECTIONS = ("run", "model", "data", "lora", "training", "preference", "grpo", "hub")
SECTION_TITLES = {
    "run": "Run",
    "model": "Model",
    "data": "Data",
    "lora": "LoRA",
    "training": "Training",
    "preference": "Preference methods (DPO, KTO, ORPO)",
    "grpo": "GRPO: rewards",
    "hub": "Publish",
}
CLI_ONLY = ("grpo.reward_module",)
"""Settings the form never shows: a Python file of reward functions is run by a local CLI run only (on a Space the
service refuses it, see `trainer.runs.access.reward_module_problem`)."""
METHOD_SECTIONS = {"preference": PREFERENCE_METHODS, "grpo": ("grpo",)}
"""The sections shown only for some methods."""
PER_ROW = 3
"""Widgets per row at most (each at least MIN_WIDTH wide; a narrow page wraps them)."""
MIN_WIDTH = 200
ERROR_CLASS = "field-error"
"""The CSS class of a widget whose value has a problem (red border and info; see the app's CSS)."""


def form_fields() -> list[FieldSpec]:
    """The settings shown in the form, in RunConfig order."""
    return [spec for spec in iter_fields() if spec.section in FORM_SECTIONS and spec.key not in CLI_ONLY]


def section_shown(section: str, method: str) -> bool:
    """Whether a form section shows for a method (the preference section for DPO, KTO and ORPO; grpo for GRPO)."""
    return method in METHOD_SECTIONS.get(section, (method,))


def widget_value(spec: FieldSpec, value: Any) -> Any:
    """A config value as its widget shows it (lists and mappings as comma-separated text, None as empty text)."""
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if value is None:
        return ""
    return value


def _is_number(spec: FieldSpec) -> bool:
    types = [t for t in typing.get_args(spec.type) if t is not type(None)] or [spec.type]
    return any(t in (int, float) for t in types) and spec.choices is None


def _unset_number(spec: FieldSpec, value: Any) -> bool:
    """An optional number left empty, as a number box reports it: None, or 0 where 0 is not a valid value.

    Gradio's number box turns an empty value into 0 when it is first drawn (e.g. when Advanced settings opens),
    so for an optional setting whose minimum is 1 or more, 0 means "not set" (the form shows these as text boxes,
    which stay empty; this covers a number sent by another client).
    """
    low = spec.meta.get("min")
    return spec.optional and _is_number(spec) and low is not None and low >= 1 and value in (None, 0)


def field_rows(specs: list[FieldSpec], per_row: int = PER_ROW) -> list[list[FieldSpec]]:
    """The settings laid out in rows of at most per_row widgets: the other widgets first, then the checkboxes
    together (a checkbox between wide fields gets squeezed); a group that fits on one row keeps one row."""
    others = [s for s in specs if s.type is not bool]
    boxes = [s for s in specs if s.type is bool]
    if len(specs) <= per_row:
        return [others + boxes] if specs else []
    return [group[i : i + per_row] for group in (others, boxes) for i in range(0, len(group), per_row)]


def offered_choices(spec: FieldSpec, unavailable: Mapping[str, str]) -> list[Any]:
    """A setting's choices less those this machine cannot use (`unavailable`: see preflight.unavailable_options)."""
    return [c for c in spec.choices or () if f"{spec.key}={c}" not in unavailable]


def offered_value(spec: FieldSpec, value: Any, unavailable: Mapping[str, str]) -> Any:
    """The value to put in the widget: a choice this machine cannot use becomes the setting's default."""
    return spec.default if spec.choices is not None and f"{spec.key}={value}" in unavailable else value


def field_info(spec: FieldSpec, unavailable: Mapping[str, str]) -> str:
    """What is shown under a widget when nothing is wrong: its help with bounds, or why it cannot be used here."""
    reason = unavailable.get(spec.key)
    return f"Not available here: {reason}" if reason else help_text(spec)


def field_interactive(spec: FieldSpec, value: Any, unavailable: Mapping[str, str]) -> bool | None:
    """False for a setting this machine cannot use (None: Gradio decides, as for any input).

    One that holds a value other than its default (a preset set it, e.g. QLoRA on) stays changeable, so it can be
    set back; Start says why it cannot stay.
    """
    if spec.key not in unavailable:
        return None
    return value != spec.default


def make_widget(spec: FieldSpec, value: Any, unavailable: Mapping[str, str] | None = None) -> gr.Component:
    """The Gradio component for one setting, built from its metadata and what this machine can use.

    Args:
        spec: the setting.
        value: its value (from the starting preset).
        unavailable: settings (`key`) and choices (`key=choice`) this machine cannot use, with why
            (`trainer.preflight.unavailable_options`).
    """
    unavailable = unavailable or {}
    meta = spec.meta
    value = offered_value(spec, value, unavailable)
    common = {
        "label": meta["label"],
        "info": field_info(spec, unavailable),
        "elem_id": f"field-{spec.unique_name}",
        "value": widget_value(spec, value),
        "min_width": MIN_WIDTH,
        "interactive": field_interactive(spec, value, unavailable),
    }
    if spec.choices is not None:
        return gr.Dropdown(choices=offered_choices(spec, unavailable), **common)
    if spec.type is bool:
        return gr.Checkbox(**common)
    if _is_number(spec) and not spec.optional:  # an optional number is a text box: a number box never stays empty
        is_int = int in (spec.type, *typing.get_args(spec.type))
        # bounds are checked by RunConfig (all problems at once, next to their fields), not by the widget
        return gr.Number(step=meta.get("step") or (1 if is_int else None), precision=0 if is_int else None, **common)
    return gr.Textbox(**common)


def preset_updates(cfg: RunConfig, unavailable: Mapping[str, str] | None = None) -> list[Any]:
    """Per-field updates that fill the form with a preset's config (what this machine can use of it)."""
    unavailable = unavailable or {}
    updates = []
    for spec in form_fields():
        value = offered_value(spec, spec.get(cfg), unavailable)
        update = {"value": widget_value(spec, value)}
        if (interactive := field_interactive(spec, value, unavailable)) is not None:
            update["interactive"] = interactive
        updates.append(gr.update(**update))
    return updates


AS_MEANT = ("cookbook-lora-notebook", "cookbook-qlora-notebook")
"""Presets whose source's code trains fewer layers than it meant (unfused target names Phi-3 does not have): the form
offers, in one click, LoRA on all four of Phi-3's projections."""
AS_MEANT_LABEL = "Train all four projections, as the notebook meant"
AS_MEANT_NOTE = (
    "LoRA on all four projections: 25,165,824 trainable parameters on Phi-3-mini instead of the notebook code's "
    "8,912,896; on the tiny demo the held-out loss ends at 0.048 instead of 0.307 (benchmarks/cookbook-parity)."
)


def as_meant_targets() -> Any:
    """The LoRA targets field's value for all four fused projections (what the notebooks' lists were meant to be)."""
    from trainer.config import find_field
    from trainer.phi3 import PHI3_PROJECTIONS

    return widget_value(find_field("lora.target_modules"), list(PHI3_PROJECTIONS))


def preset_markdown(name: str) -> str:
    """What a preset is for, shown beside the preset picker."""
    return PRESETS[name][0] if name in PRESETS else ""


def help_text(spec: FieldSpec) -> str:
    """The field's help with its bounds, as shown under the widget."""
    bounds = [f"{k} {spec.meta[k]:g}" for k in ("min", "max") if spec.meta.get(k) is not None]
    return spec.meta["help"] + (f" ({', '.join(bounds)})" if bounds else "")


def config_from_form(values: dict[str, Any], validate: bool = True) -> tuple[RunConfig, list[str]]:
    """Build a RunConfig from the form's values ({setting key: widget value}); return it with every problem.

    With `validate=False`, only the values that cannot be read as their setting's type are problems: Start hands
    the config to the run service, which validates it (once, there).
    """
    cfg, errors = RunConfig(), []
    specs = {spec.key: spec for spec in form_fields()}
    for key, value in values.items():
        if key in specs and _unset_number(specs[key], value):
            value = None
        apply_value(cfg, key, value, errors)
    if not validate:
        return cfg, errors
    bad = {e.split(":", 1)[0] for e in errors}
    return cfg, errors + [p for p in cfg.problems() if p.split(":", 1)[0] not in bad]


def field_labels() -> dict[str, str]:
    """{setting key: its label in the form}."""
    return {spec.key: spec.meta["label"] for spec in iter_fields()}


def problems_markdown(problems: list[str]) -> str:
    """The list of problems, each led by the field label it belongs to, fixes named by field label (not by flag)."""
    if not problems:
        return ""
    labels = field_labels()
    lines = []
    for problem in problems:
        key, _, text = problem.partition(": ")
        lines.append(f"- **{labels.get(key, key)}** (`{key}`): {render_hints(text, 'ui', plain=True)}")
    return "### Fix these before training\n" + "\n".join(lines)


def labelled(message: str, plain: bool = True) -> str:
    """A ``<key>: <problem>. <fix>`` message as Markdown for the page: led by the field's label as the form shows
    it, its fixes named by field label (`render_hints`; `plain`: the text may quote a user's data, escaped)."""
    key, sep, text = message.partition(": ")
    label = field_labels().get(key)
    if not (sep and label):
        return render_hints(message, "ui", plain=plain)
    return f"**{label}:** {render_hints(text, 'ui', plain=plain)}"


def without(problems: list[str], keys: set[str]) -> list[str]:
    """The problems that do not concern any of `keys` (their cause changed: they go from the page)."""
    return [p for p in problems if p.partition(": ")[0] not in keys]


def problems_by_key(problems: list[str]) -> dict[str, str]:
    """{setting key: its first problem, worded for the form} (problems are '<key>: <problem>. <fix>')."""
    by_key: dict[str, str] = {}
    for problem in problems:
        key, _, text = problem.partition(": ")
        by_key.setdefault(key, render_hints(text, "ui"))
    return by_key


def advanced_keys() -> set[str]:
    """The keys of the settings under Advanced settings (collapsed at first)."""
    return {spec.key for spec in form_fields() if spec.meta["advanced"]}


def opens_advanced(problems: list[str]) -> bool:
    """Whether a problem concerns a setting under Advanced settings (so the section must be opened to show it)."""
    return not advanced_keys().isdisjoint(problems_by_key(problems))


def field_updates(problems: list[str], unavailable: Mapping[str, str] | None = None) -> list[Any]:
    """Per-field updates: the problem shown under the field it concerns and the field marked (red), the others
    unmarked with their help text (or why this machine cannot use them) under them."""
    by_key, unavailable = problems_by_key(problems), unavailable or {}
    return [
        gr.update(info=f"⚠️ {by_key[s.key]}", elem_classes=[ERROR_CLASS])
        if s.key in by_key
        else gr.update(info=field_info(s, unavailable), elem_classes=[])
        for s in form_fields()
    ]
