"""The Train form's decisions, as pure functions: empty optional numbers, rows, field marks, the Advanced section,
and the GPU-only options a machine cannot offer (the same facts as the server's checks)."""

from __future__ import annotations

import importlib.util

import gradio as gr
import pytest

from trainer.config import ModelConfig, preset_config
from trainer.preflight import FLASH_CHOICE, QLORA_KEYS, unavailable_options
from trainer.ui.form import (
    FORM_SECTIONS,
    PER_ROW,
    advanced_keys,
    config_from_form,
    field_rows,
    field_updates,
    form_fields,
    help_text,
    make_widget,
    opens_advanced,
    preset_updates,
    widget_value,
)


def _spec(key: str):
    return next(s for s in form_fields() if s.key == key)


def _form(**changes) -> dict:
    cfg = preset_config("tiny-demo")
    return {s.key: widget_value(s, s.get(cfg)) for s in form_fields()} | changes


# --------------------------------------------------------------------------- an optional number left empty


def test_an_optional_number_is_a_text_box_that_starts_empty():
    """Gradio's number box turns an empty value into 0 when drawn; a text box stays empty."""
    widget = make_widget(_spec("data.max_rows"), None)
    assert isinstance(widget, gr.Textbox) and widget.value == ""
    assert isinstance(make_widget(_spec("training.max_steps"), -1), gr.Number)  # required numbers keep the box


@pytest.mark.parametrize("sent", [None, 0, 0.0, ""])
def test_an_untouched_optional_number_means_not_set(sent):
    """Whatever the widget reports for an empty optional number (None, 0 from a number box, '') is not a value."""
    cfg, problems = config_from_form(_form(**{"data.max_rows": sent}))
    assert problems == [] and cfg.data.max_rows is None


def test_a_typed_optional_number_and_a_required_zero_are_still_checked():
    cfg, problems = config_from_form(_form(**{"data.max_rows": "25"}))
    assert problems == [] and cfg.data.max_rows == 25
    _, problems = config_from_form(_form(**{"data.max_rows": "0"}))  # typed by a person: refused, not dropped
    assert [p.split(":")[0] for p in problems] == ["data.max_rows"]
    _, problems = config_from_form(_form(**{"lora.r": 0}))  # a required setting's 0 is never "not set"
    assert [p.split(":")[0] for p in problems] == ["lora.r"]
    cfg, problems = config_from_form(_form(**{"training.seed": 0}))  # 0 is valid where the minimum is 0
    assert problems == [] and cfg.training.seed == 0


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("advanced", [False, True])
@pytest.mark.parametrize("section", FORM_SECTIONS)
def test_fields_are_laid_out_in_short_rows_with_the_checkboxes_together(section, advanced):
    specs = [s for s in form_fields() if s.section == section and s.meta["advanced"] == advanced]
    rows = field_rows(specs)
    assert [s.key for row in rows for s in row] == [s.key for s in specs if s.type is not bool] + [
        s.key for s in specs if s.type is bool
    ]
    assert all(1 <= len(row) <= PER_ROW for row in rows)
    if len(rows) > 1:  # never a checkbox squeezed between wide fields
        assert all(len({s.type is bool for s in row}) == 1 for row in rows)


def test_field_rows_for_the_training_section():
    specs = [s for s in form_fields() if s.section == "training" and s.meta["advanced"]]
    shapes = [[s.type is bool for s in row] for row in field_rows(specs)]
    assert shapes == [[False] * 3] * 4 + [[True] * 3, [True]]
    assert field_rows([]) == []


def test_widgets_show_their_bounds_from_the_start_and_have_room():
    for spec in form_fields():
        widget = make_widget(spec, spec.default)
        assert widget.info == help_text(spec) and widget.min_width >= 200, spec.key
    assert make_widget(_spec("training.learning_rate"), 2e-4).info.endswith("(min 1e-07, max 0.1)")


# --------------------------------------------------------------------------- problems: marks and Advanced


def test_a_problem_marks_its_field_and_the_next_clean_check_clears_it():
    problems = ["training.learning_rate: 0.0 is below the minimum 1e-07. Use a value >= 1e-07."]
    updates = dict(zip([s.key for s in form_fields()], field_updates(problems), strict=True))
    assert updates["training.learning_rate"]["elem_classes"] == ["field-error"]
    assert updates["training.learning_rate"]["info"] == "⚠️ 0.0 is below the minimum 1e-07. Use a value >= 1e-07."
    assert updates["lora.r"]["elem_classes"] == [] and updates["lora.r"]["info"] == help_text(_spec("lora.r"))
    cleared = field_updates([])
    assert all(u["elem_classes"] == [] for u in cleared)
    assert [u["info"] for u in cleared] == [help_text(s) for s in form_fields()]


def test_a_clean_check_keeps_why_an_option_is_not_available(machine):
    machine(cuda=False, bnb=False, flash=False)
    unavailable = unavailable_options(on_gpu=False)
    updates = dict(zip([s.key for s in form_fields()], field_updates([], unavailable), strict=True))
    assert updates["model.load_in_4bit"]["info"] == f"Not available here: {unavailable['model.load_in_4bit']}"


def test_only_a_problem_in_an_advanced_setting_opens_advanced_settings():
    assert "data.max_rows" in advanced_keys() and "training.learning_rate" not in advanced_keys()
    assert advanced_keys() == {s.key for s in form_fields() if s.meta["advanced"]}
    assert opens_advanced(["data.max_rows: 0 is below the minimum 1. Use a value >= 1."])
    assert opens_advanced(["data.dataset_name: empty. Give one.", "training.seed: -1 is below the minimum 0."])
    assert not opens_advanced(["training.learning_rate: 0.0 is below the minimum 1e-07."])
    assert not opens_advanced([])


# --------------------------------------------------------------------------- what this machine cannot offer


@pytest.fixture
def machine(monkeypatch):
    """Set what the machine has: CUDA, bitsandbytes, flash-attn (as the server's checks ask for them)."""
    import transformers.utils

    import trainer.modeling

    real_find_spec = importlib.util.find_spec

    def set_(cuda: bool, bnb: bool, flash: bool) -> None:
        monkeypatch.setattr(trainer.modeling, "cuda_available", lambda: cuda)
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: (
                (real_find_spec("json") if bnb else None) if name == "bitsandbytes" else real_find_spec(name, *a)
            ),
        )
        monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: flash)

    return set_


def _server_refuses_4bit() -> bool:
    from trainer.modeling import environment_problems

    return bool(environment_problems(ModelConfig(load_in_4bit=True)))


def test_the_offline_demo_offers_qlora_but_not_flash_attention(machine):
    machine(cuda=False, bnb=True, flash=True)
    found = unavailable_options(on_gpu=False)
    assert set(found) == {FLASH_CHOICE}  # QLoRA runs on bitsandbytes' CPU backend
    assert "CUDA GPU" in found[FLASH_CHOICE]
    assert not _server_refuses_4bit()  # the server agrees: 4-bit is accepted at Start here


@pytest.mark.parametrize(
    ("cuda", "bnb", "flash"), [(c, b, f) for c in (True, False) for b in (True, False) for f in (True, False)]
)
def test_an_option_is_offered_exactly_when_the_server_accepts_it(machine, cuda, bnb, flash):
    machine(cuda=cuda, bnb=bnb, flash=flash)
    found = unavailable_options(on_gpu=cuda)
    assert ("model.load_in_4bit" in found) == _server_refuses_4bit() == (not bnb)
    assert all((key in found) == (not bnb) for key in QLORA_KEYS)
    if not bnb:
        assert "bitsandbytes" in found["model.load_in_4bit"]
    assert (FLASH_CHOICE in found) == (not (cuda and flash))


def test_the_form_locks_what_the_machine_cannot_use(machine):
    machine(cuda=False, bnb=False, flash=False)
    unavailable = unavailable_options(on_gpu=False)
    box = make_widget(_spec("model.load_in_4bit"), False, unavailable)
    assert box.interactive is False and box.info.startswith("Not available here: QLoRA needs bitsandbytes")
    assert make_widget(_spec("model.bnb_4bit_quant_type"), "nf4", unavailable).interactive is False
    attention = make_widget(_spec("model.attn_implementation"), "flash_attention_2", unavailable)
    assert [v for _, v in attention.choices] == ["auto", "sdpa", "eager"] and attention.value == "auto"
    free = make_widget(_spec("model.load_in_4bit"), False, {})
    assert free.interactive is None and "flash_attention_2" in [
        v for _, v in make_widget(_spec("model.attn_implementation"), "auto", {}).choices
    ]


def test_a_preset_that_turns_qlora_on_leaves_it_changeable_where_it_cannot_run(machine):
    """Else a person who picked a QLoRA preset where bitsandbytes is missing could never turn it off again."""
    machine(cuda=False, bnb=False, flash=False)
    unavailable = unavailable_options(on_gpu=False)
    keys = [s.key for s in form_fields()]
    qlora = dict(zip(keys, preset_updates(preset_config("qlora"), unavailable), strict=True))
    assert qlora["model.load_in_4bit"]["value"] is True and qlora["model.load_in_4bit"]["interactive"] is True
    lora = dict(zip(keys, preset_updates(preset_config("lora"), unavailable), strict=True))
    assert lora["model.load_in_4bit"]["value"] is False and lora["model.load_in_4bit"]["interactive"] is False
    assert "interactive" not in lora["lora.r"]
    assert (
        "interactive"
        not in dict(zip(keys, preset_updates(preset_config("qlora"), {}), strict=True))["model.load_in_4bit"]
    )


def test_the_page_styles_a_marked_field():
    from trainer.ui.app import CSS
    from trainer.ui.form import ERROR_CLASS

    assert f".{ERROR_CLASS} " in CSS and f".{ERROR_CLASS} .info-text {{color: #b91c1c" in CSS
