"""The web app's real handlers (as Gradio calls them) in local mode: the person at the machine sees and manages every
run. (Space mode, with signed-in users and visitors, is tests/security.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import gradio as gr
import pytest

from trainer.config import find_field
from trainer.runs import folder as rf
from trainer.runs.queue import JobStore, RunQueue
from trainer.runs.service import RunService
from trainer.ui import build_app, build_studio
from trainer.ui.form import form_fields


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The app around a job table holding two finished runs (no worker is ever started)."""
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    store = JobStore(tmp_path / "jobs.sqlite")
    for owner in ("alice", None):
        run_dir = tmp_path / "runs" / f"run-{owner}"
        run_dir.mkdir(parents=True)
        rf.write_status(run_dir, "succeeded")
        rf.append_event(run_dir, {"step": 1, "total_steps": 1, "loss": 1.0})
        job = store.create(run_dir, name=f"pirates of {owner}", owner=owner)
        store.update(job.id, status="succeeded")
    studio = build_studio(RunService(RunQueue(store, python="/bin/false")), on_gpu=False)
    handlers = studio.handlers()  # the tabs' public methods, by name
    handlers["components"] = {block.elem_id: block for block in studio.app.blocks.values() if block.elem_id}
    handlers["studio"] = studio
    return handlers, store


def _events(studio) -> list[dict]:
    """The page's events as Gradio describes them to the browser: targets (component id, event), the handler's
    name (`api_name`; "js_fn" for a browser-only listener), its js, inputs and outputs (component ids)."""
    return studio.app.config["dependencies"]


def _wired(studio, component, event: str) -> list[dict]:
    """The events `event` of `component` triggers."""
    return [d for d in _events(studio) if (component._id, event) in [tuple(t) for t in d["targets"]]]


def _ids(update) -> list[str]:
    return [value for _, value in update["choices"]]


def test_locally_every_run_is_shown(app):
    handlers, store = app
    assert sorted(_ids(handlers["refresh_picker"](None, None))) == sorted(str(j.id) for j in store.list())
    first = store.list()[-1]
    assert "pirates of alice" in handlers["refresh"](str(first.id), {}, None, None)[0]


def test_a_run_started_with_the_cli_appears_in_the_run_list(app, tmp_path):
    handlers, store = app
    before = _ids(handlers["refresh_picker"](None, None))
    cli = tmp_path / "runs" / "20261130-101500-pirate_chat"  # what `python -m trainer demo` leaves behind
    cli.mkdir()
    (cli / rf.CONFIG_FILE).write_text("model: {}\n")
    rf.write_status(cli, "succeeded", name="tiny-demo: pirate_chat", started_at=1.0)
    update = handlers["refresh_picker"](None, None)
    (new,) = set(_ids(update)) - set(before)
    assert store.get(int(new)).run_dir == str(cli) and update["value"] == new  # listed, newest first
    labels = dict((value, label) for label, value in update["choices"])
    assert labels[new].endswith("succeeded · tiny-demo: pirate_chat")


def test_the_runs_actions_through_their_handlers(app, tmp_path):
    """Delete removes a finished run and refreshes the picker; a refused action warns and changes nothing."""
    handlers, store = app
    done = store.list()[0]
    with pytest.warns(UserWarning, match="only a stopped run with a checkpoint can be resumed"):
        picker = handlers["resume"](str(done.id), None, None)
    assert store.get(done.id).status == "succeeded" and str(done.id) in _ids(picker)
    picker = handlers["delete"](str(done.id), None, None)
    assert store.get(done.id) is None and not Path(done.run_dir).exists() and str(done.id) not in _ids(picker)


def test_compare_runs_with_one_run_is_a_message_that_leaves_the_charts_as_they_were(app):
    """A toast, not a gr.Error (which would put error badges on both charts and the table)."""
    handlers, store = app
    with pytest.warns(UserWarning, match="Pick two or more runs to compare"):
        outputs = handlers["show"]([str(store.list()[0].id)], None)
    assert outputs == (gr.skip(), gr.skip(), gr.skip())
    with pytest.warns(UserWarning, match="no such run"):
        assert handlers["show"]([str(store.list()[0].id), "999"], None) == (gr.skip(), gr.skip(), gr.skip())


def test_one_download_click_makes_the_zip_and_then_saves_it_in_the_browser(app):
    """Each Download button's click makes the zip on the server (owner checked there); the step after it saves that
    file in the browser, so one click downloads it (no second click on the file box)."""
    from trainer.ui.runs_tab import SAVE_FILE_JS

    handlers = app[0]
    studio, components = handlers["studio"], handlers["components"]
    for button, file, make in (
        ("download-adapter", "adapter-zip", "download"),
        ("download-trl", "trl-zip", "download_trl"),
    ):
        (click,) = _wired(studio, components[button], "click")
        assert click["api_name"] == make and click["outputs"] == [components[file]._id]
        (save,) = [d for d in _events(studio) if d["trigger_after"] == click["id"]]
        assert not save["backend_fn"] and save["js"] == SAVE_FILE_JS and save["inputs"] == [components[file]._id]
    assert "if (!file?.url) return;" in SAVE_FILE_JS  # a refused download (no file) saves nothing


def test_the_built_form_has_a_widget_for_every_setting(app):
    """Checked on the page Gradio builds, not on the list the form is generated from."""
    from trainer.config import iter_fields

    components = app[0]["components"]
    for spec in iter_fields():
        widget = components.get(f"field-{spec.unique_name}")
        if spec.key == "grpo.reward_module":  # a local file of code: CLI and YAML only, never in the form
            assert widget is None
            continue
        assert widget is not None, spec.key
        assert widget.label == spec.meta["label"]
        assert isinstance(widget, gr.Checkbox) == (spec.type is bool)


def _values(components, **changes) -> dict:
    """The form's values as Gradio hands them to a handler (keyed by component), from the tiny-demo preset."""
    from trainer.config import preset_config
    from trainer.ui.form import form_fields, widget_value

    cfg = preset_config("tiny-demo")
    values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()} | changes
    return {components[f"field-{find_field(key).unique_name}"]: value for key, value in values.items()}


def test_the_preset_picker_shows_names_and_the_chosen_preset_s_description(app):
    from trainer.config import PRESETS
    from trainer.ui.form import preset_markdown

    handlers, _ = app
    components = handlers["components"]
    assert [label for label, _ in components["preset"].choices] == list(PRESETS)  # names only: never cut off
    assert components["preset-description"].value == PRESETS["tiny-demo"][0]
    assert preset_markdown("qlora") == PRESETS["qlora"][0]


def _row_of(block) -> gr.Row:
    while not isinstance(block, gr.Row):
        block = block.parent
    return block


def test_the_built_form_lays_fields_out_in_short_rows(app):
    """Each row of the page holds the fields `field_rows` puts together (at most 3, checkboxes apart), no others."""
    from trainer.ui.form import FORM_SECTIONS, field_rows, form_fields

    components = app[0]["components"]
    built: dict[int, list[str]] = {}
    for spec in form_fields():
        widget = components[f"field-{spec.unique_name}"]
        assert widget.min_width >= 200, spec.key
        built.setdefault(id(_row_of(widget)), []).append(spec.key)
    planned = [
        [s.key for s in row]
        for section in FORM_SECTIONS
        for advanced in (False, True)
        for row in field_rows([s for s in form_fields() if s.section == section and s.meta["advanced"] == advanced])
    ]
    assert sorted(built.values()) == sorted(planned)
    assert max(len(keys) for keys in built.values()) == 3


def test_a_problem_in_an_advanced_setting_opens_advanced_settings(app):
    handlers, store = app
    components = handlers["components"]
    before = len(store.list())
    outputs = handlers["start"](_values(components, **{"data.max_rows": "0"}), None, None)
    assert "below the minimum 1" in outputs[0] and len(store.list()) == before
    advanced = outputs[-3]
    assert isinstance(advanced, gr.Accordion) and advanced.open is True
    opened = handlers["open_advanced"](_values(components, **{"data.max_rows": "0"}))  # Preview refuses it too
    assert isinstance(opened, gr.Accordion) and opened.open is True
    outputs = handlers["start"](_values(components, **{"training.learning_rate": 0}), None, None)
    assert outputs[-3] == gr.skip()  # a field outside Advanced: nothing to open
    assert handlers["open_advanced"](_values(components, **{"data.max_rows": ""})) == gr.skip()


def test_opening_advanced_settings_never_blocks_start_with_an_empty_number(app, monkeypatch):
    """The number box reports 0 for an empty Max rows once Advanced opens; Start must not refuse it."""
    import trainer.preflight

    handlers, store = app
    monkeypatch.setattr(trainer.preflight, "check_before_queueing", lambda *a, **k: [])
    monkeypatch.setattr(store, "create", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("queued")))
    for empty in (0, None, ""):
        with pytest.raises(RuntimeError, match="queued"):  # got as far as queueing the run
            handlers["start"](_values(handlers["components"], **{"data.max_rows": empty}), None, None)


def test_the_offline_demo_offers_qlora_but_not_flash_attention(app):
    handlers, _ = app
    components = handlers["components"]
    for name in ("load_in_4bit", "bnb_4bit_quant_type", "use_bnb_nested_quant"):
        assert components[f"field-{name}"].interactive is None, name  # bitsandbytes' CPU backend runs QLoRA
        assert "Not available" not in (components[f"field-{name}"].info or ""), name
    assert "flash_attention_2" not in [v for _, v in components["field-attn_implementation"].choices]
    qlora = dict(
        zip(
            [s.key for s in __import__("trainer.ui.form").ui.form.form_fields()],
            handlers["fill_preset"]("qlora"),
            strict=True,
        )
    )
    assert qlora["model.load_in_4bit"]["value"] is True and "interactive" not in qlora["model.load_in_4bit"]


def test_a_gpu_machine_with_everything_offers_every_option(tmp_path, monkeypatch):
    import transformers.utils

    import trainer.preflight

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(trainer.preflight, "unavailable_options", lambda on_gpu: {} if on_gpu else {"x": "y"})
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    blocks = build_app(RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false")), on_gpu=True)
    components = {b.elem_id: b for b in blocks.blocks.values() if b.elem_id}
    assert components["field-load_in_4bit"].interactive is None  # an input, as any other
    assert "flash_attention_2" in [v for _, v in components["field-attn_implementation"].choices]


def test_preview_shows_lengths_memory_and_time_before_the_start(app):
    handlers, _ = app
    summary, _, estimate = handlers["preview"](_values(handlers["components"]), None, None)
    assert "240 usable of 240" in summary
    assert "max_length 128** cuts 0 rows" in estimate  # the histogram's verdict on truncation
    assert "**Memory:** ✅ fits" in estimate and "CPU" in estimate  # the tiny demo on this machine
    assert "**Time:** about" in estimate and "80 steps" in estimate


def test_preview_on_a_jobs_flavour_estimates_on_its_gpus_with_the_cost(tmp_path, monkeypatch):
    from trainer.config import preset_config
    from trainer.runs.access import caller_from
    from trainer.runs.remote import Flavor
    from trainer.ui.form import form_fields, widget_value
    from trainer.ui.train_tab import preview_data

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    cfg = preset_config("lora")
    values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()} | {
        "data.dataset_name": "examples/pirate_chat.jsonl",
        "model.model_name_or_path": "tiny-phi3",  # the tiny model's shape and tokenizer, on an A10G
    }
    who = caller_from(None, None)
    _, _, estimate = preview_data(values, who, Flavor("a10g-largex2", "2x A10G", "2x A10G", 3.0))
    assert "on 2 × A10G" in estimate and "on Hugging Face Jobs a10g-largex2 at $3.00/h" in estimate
    _, _, here = preview_data(values, who)
    assert "**Cost:**" not in here and "CPU" in here  # this machine: nothing to pay for
    _, _, unknown = preview_data(values, who, Flavor("tpu-v9", "TPU v9", "1x TPU", 9.0))
    assert unknown.startswith("**Estimate:** none for Hugging Face Jobs tpu-v9 ($9.00/h)")


def test_start_warns_when_the_run_will_not_fit_and_names_the_change_that_fits():
    from trainer.config import load_config
    from trainer.ui.train_tab import memory_warning

    assert memory_warning(load_config(preset="tiny-demo")) is None
    huge = load_config(
        preset="lora",
        overrides=["per_device_train_batch_size=64", "max_length=4096", "gradient_checkpointing=false"],
    )
    warning = memory_warning(huge)  # on this CPU machine: against the Space's suggested GPU (README)
    assert warning.startswith("This run will likely not fit: about") and "A10G" in warning
    assert "gradient checkpointing" in warning.lower() or "batch" in warning.lower(), warning


def test_the_time_estimate_counts_only_the_rows_training_reads():
    import re

    from trainer.config import load_config
    from trainer.data import preview_tokenizer
    from trainer.ui.train_tab import estimate_panel

    rows = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]] * 100
    tokenizer = preview_tokenizer("tiny-phi3")
    cfg = load_config(preset="tiny-demo", overrides=["max_steps=-1", "num_train_epochs=1"])

    def steps(panel: str) -> int:
        return int(re.search(r"\(([\d,]+) steps", panel).group(1).replace(",", ""))

    whole = steps(estimate_panel(cfg, rows, tokenizer, total_rows=100_000))  # a streamed sample of a big split
    cfg.data.max_rows = 800
    assert steps(estimate_panel(cfg, rows, tokenizer, total_rows=100_000)) == 90  # 800 rows, 10 % held out, / 8
    assert whole > 90 * 100


def _forget(handlers, component):
    """The change handler of one form field that takes its problem off the page (each field has its own)."""
    from trainer.config import find_field

    (change,) = [d for d in _wired(handlers["studio"], component, "change") if d["api_name"].startswith("forget")]
    key = next(spec.key for spec in form_fields() if handlers["components"][_widget_id(spec)] is component)
    return lambda problems: handlers["forget"](find_field(key), problems)


def _widget_id(spec) -> str:
    return f"field-{spec.unique_name}"


def test_start_s_problems_leave_the_page_when_their_field_changes_or_a_preview_passes(app, tmp_path):
    handlers, _ = app
    studio, components = handlers["studio"], handlers["components"]
    missing = str(tmp_path / "old.jsonl")
    outputs = handlers["start"](_values(components, **{"data.dataset_name": missing}), None, None)
    problems = outputs[1]  # what the page shows now, kept for the clean-up
    assert "Fix these before training" in outputs[0] and [p.split(":")[0] for p in problems] == ["data.dataset_name"]

    errors, mark, left = _forget(handlers, components["field-dataset_name"])(problems)
    assert (errors, left) == ("", [])  # another dataset was picked or uploaded: the old error is gone
    assert mark["elem_classes"] == [] and "⚠️" not in mark["info"]  # the field is no longer marked
    assert _forget(handlers, components["field-name"])(problems) == (gr.skip(), gr.skip(), gr.skip())  # not its field

    by_id = {component._id: elem_id for elem_id, component in components.items()}

    def cleared(field: str) -> list:  # what a change of the field empties in the browser (a js-only listener)
        found = [d for d in _wired(studio, components[field], "change") if not d["backend_fn"]]
        return [by_id[output] for d in found for output in d["outputs"]]

    assert cleared("field-dataset_name") == ["preview-summary", "preview-rows", "estimate"]  # the old data's
    assert cleared("field-max_steps") == ["estimate"] and cleared("field-name") == []  # what it shaped, or nothing

    push = "hub.repo_id: you cannot push to bob/x. Push to your own namespace."
    errors, *marks, left = handlers["after_preview"]("# row 1\n<|user|>", [*problems, push])
    assert left == [push] and "dataset_name" not in errors and "hub.repo_id" in errors  # the data loads now
    assert handlers["after_preview"]("", problems)[0] == gr.skip()  # the preview failed: the problem stays


def test_the_bundled_example_always_names_the_dataset_field_s_file(app):
    from trainer.ui.train_tab import example_label

    handlers, _ = app
    studio, components = handlers["studio"], handlers["components"]
    assert components["example"].value == "Pirate persona: chat messages (.jsonl)"  # the preset's dataset
    (picks,) = [
        d
        for d in _wired(studio, components["field-dataset_name"], "change")
        if components["example"]._id in d["outputs"]
    ]
    assert picks["api_name"] == "example_of"
    picked = handlers["example_of"]
    assert picked("examples/pirate_alpaca.json")["value"] == "Pirate persona: Alpaca (.json)"  # Continue training
    assert picked("alice/pirates")["value"] is None == example_label("/data/uploads/x/mine.jsonl")


def test_a_notebook_preset_offers_the_layers_its_notebook_meant_in_one_click(app):
    from trainer.config import preset_config
    from trainer.ui.form import AS_MEANT, config_from_form, widget_value

    handlers, _ = app
    studio, components = handlers["studio"], handlers["components"]
    button, preset = components["as-meant"], components["preset"]
    (show,) = [d for d in _wired(studio, preset, "change") if button._id in d["outputs"]]
    assert show["api_name"] == "show_as_meant"
    shows = handlers["show_as_meant"]
    assert shows("cookbook-lora-notebook")["visible"] is True and shows("lora")["visible"] is False
    assert set(AS_MEANT) == {"cookbook-lora-notebook", "cookbook-qlora-notebook"}
    (click,) = _wired(studio, button, "click")
    assert click["api_name"] == "as_meant"
    notebook = preset_config("cookbook-lora-notebook")
    assert notebook.lora.target_modules == ["o_proj", "down_proj"]  # as the notebook's code trains
    form = {s.key: widget_value(s, s.get(notebook)) for s in form_fields()}
    cfg, problems = config_from_form(form | {"lora.target_modules": handlers["as_meant"]()["value"]})
    assert problems == []
    assert cfg.lora.target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # as it meant


def test_preview_tokenises_its_rows_once_and_hands_the_lengths_to_the_estimate(tmp_path, monkeypatch):
    """One tokenizer pass over the previewed rows serves both the length stats and the estimate (issue 29)."""
    from trainer.config import preset_config
    from trainer.estimate import render, tokens
    from trainer.runs.access import caller_from
    from trainer.ui.form import widget_value
    from trainer.ui.train_tab import preview_data

    preview_module = importlib.import_module("trainer.data.preview")  # the module (the package names a function so)

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    passes = []
    real = tokens.row_tokens

    def counted(tokenizer, rows):
        passes.append(len(rows))
        return real(tokenizer, rows)

    monkeypatch.setattr(tokens, "row_tokens", counted)  # what the preview measures with
    monkeypatch.setattr(render, "row_tokens", counted)  # what the estimate would measure with, given rows
    monkeypatch.setattr(preview_module, "token_lengths", lambda *a: passes.append("lengths") or [])
    cfg = preset_config("tiny-demo")
    values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()}
    summary, _, estimate = preview_data(values, caller_from(None, None))
    assert passes == [216 + 24]  # every previewed row, once (the pirate rows before the eval hold-out)
    assert "**Tokens per row:** min 24, median 27, p95 30, max 32" in summary  # the stats, from that one pass
    assert "**Time:**" in estimate and "0 of 4,484 reply tokens" in estimate  # the estimate, with its reply spans


def test_a_grpo_preview_shows_its_prompts_the_columns_its_rewards_read_and_the_generation(tmp_path, monkeypatch):
    from trainer.config import preset_config
    from trainer.runs.access import caller_from
    from trainer.ui.form import form_fields, widget_value
    from trainer.ui.train_tab import preview_data

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    cfg = preset_config("tiny-demo-grpo")
    values = {s.key: widget_value(s, s.get(cfg)) for s in form_fields()}
    summary, rendered, estimate = preview_data(values, caller_from(None, None))
    assert "**Format:** `prompts` · **rows:** 200 usable of 200" in summary and "**Tokens per prompt:**" in summary
    assert "over max length" not in summary and "Start is blocked" not in summary  # prompts are not cut
    assert rendered.endswith("<|assistant|>\n")  # each prompt as the model is prompted: the generation prompt last
    assert "**GRPO:** each prompt is answered **4** times, up to 32 tokens each" in estimate
    values["grpo.rewards"] = "answer_match:1.0, length_target:0.5"
    summary, _, _ = preview_data(values, caller_from(None, None))
    assert "### Start is blocked\n**Answer column:** reward answer\\_match needs a column" in summary  # by its label
