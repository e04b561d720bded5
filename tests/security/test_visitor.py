"""A signed-out visitor on a Space may look, fill in the form, preview public data and download the YAML; nothing
that reads a run, spends the Space's GPU or uses its token."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pytest

from .conftest import SPACE_TOKEN, oauth, profile

SIGN_IN = "Sign in with Hugging Face"


def test_a_visitor_sees_no_runs(space):
    outputs = space.fns["refresh"](None, {}, None, None)
    assert SIGN_IN in outputs[0] and outputs[-2]["choices"] == []
    assert space.fns["refresh_picker"](None, None)["choices"] == []


@pytest.mark.parametrize("owner", ["alice", "bob"])
def test_a_visitor_cannot_open_a_run_by_its_id(space, owner):
    outputs = space.fns["refresh"](str(space.run_of(owner).id), {}, None, None)
    shown = " ".join(str(o) for o in outputs[:7])
    assert "alice" not in shown and "bob" not in shown and SIGN_IN in outputs[0]


@pytest.mark.parametrize("action", ["cancel", "resume", "delete"])
def test_a_visitor_cannot_act_on_a_run(space, action):
    before = space.manager.store.list()
    with pytest.warns(UserWarning, match=SIGN_IN):
        space.action(action)(str(space.run_of("alice").id), None, None)
    assert space.manager.store.list() == before and (space.data_dir / "runs" / "alice-run").is_dir()


def test_a_visitor_cannot_retry_a_push(space, monkeypatch):
    calls = []
    monkeypatch.setattr(space.manager, "retry_push", lambda *a: calls.append(a))
    with pytest.warns(UserWarning, match=SIGN_IN):
        space.fns["retry_push"](str(space.run_of("alice").id), None, None)
    assert calls == []


def test_a_visitor_cannot_download_an_adapter(space):
    with pytest.warns(UserWarning, match=SIGN_IN):
        update = space.fns["download"](str(space.run_of("alice").id), None)
    assert update["value"] is None


def test_a_visitor_is_asked_to_sign_in_to_train_and_nothing_is_queued(space):
    before = len(space.manager.store.list())
    outputs = space.fns["start"](space.form(), None, None)
    assert outputs[0] == "### Sign in with Hugging Face to train."
    assert len(space.manager.store.list()) == before


def test_a_visitor_cannot_upload(space, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"messages": []}\n')
    _, error = space.fns["upload"](str(data), None)
    assert SIGN_IN in error and not (space.data_dir / "uploads").exists()


def test_a_visitor_previews_public_data_without_any_token(space, monkeypatch):
    import trainer.data

    tokens = []
    real = trainer.data.preview

    def spy(cfg, tokenizer, max_length, n=3, token=None, **kwargs):
        tokens.append(token)
        return real(cfg, tokenizer, max_length, n=n, token=token, **kwargs)

    monkeypatch.setattr(trainer.data, "preview", spy)
    summary, rows, estimate = space.fns["preview"](space.form(dataset_name="examples/pirate_chat.jsonl"), None, None)
    assert "240 usable of 240" in summary and "<|assistant|>" in rows and "**Memory:**" in estimate
    assert tokens == [False]  # no token at all: None reads as the Space's HF_TOKEN (tests/hub/test_space_tokens.py)
    assert SPACE_TOKEN not in summary + rows + estimate


def test_a_visitor_cannot_preview_a_file_on_the_server(space):
    secret = space.data_dir / "uploads" / "bob" / "0123456789abcdef.jsonl"
    secret.parent.mkdir(parents=True)
    secret.write_text(
        '{"messages": [{"role": "user", "content": "bob secret"}, {"role": "assistant", "content": "x"}]}\n'
    )
    summary, rows, estimate = space.fns["preview"](space.form(dataset_name=str(secret)), None, None)
    assert "a file you uploaded" in summary and "bob secret" not in summary + rows + estimate


def test_a_visitor_downloads_the_config_as_a_fresh_copy(space):
    export = space.fns["export"]
    update, text, errors = export(space.form())
    assert errors == "" and "model_name_or_path: tiny-phi3" in text
    assert Path(update["value"]).read_text() == text
    assert space.data_dir not in Path(update["value"]).parents  # not a file of the data dir


def test_a_visitor_cannot_compare(space):
    assert space.fns["adapter_choices"](None, None)["choices"] == []
    with pytest.warns(UserWarning, match="Sign in with Hugging Face to compare models"):
        outputs = list(
            space.fns["send"]("Hi", [], [], str(space.run_of("alice").id), "", 16, 0.7, 0.9, True, "", None, None)
        )
    assert outputs == [(gr.skip(), gr.skip(), gr.skip())]
    assert space.fns["examples"](str(space.run_of("alice").id), None)["choices"] == []


def test_a_visitor_s_preview_never_reads_the_hub_with_the_space_s_token(space, monkeypatch):
    import transformers

    seen = []

    def spy(name, *args, **kwargs):
        seen.append((name, kwargs.get("token", "<implicit>")))
        raise OSError("not on this Hub")

    import importlib
    import threading

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    preview_module = importlib.import_module("trainer.data.preview")  # (trainer.data.preview is also a function)
    monkeypatch.setattr(preview_module, "_THREAD", threading.local())  # no bundled tokenizer loaded in this thread
    form = space.form(dataset_name="examples/pirate_chat.jsonl", model_name_or_path="someone/private-phi3")
    with pytest.raises(OSError):  # the bundled tokenizer stands in when the model's is not readable: spied too
        space.fns["preview"](form, None, None)
    hub_reads = [(name, token) for name, token in seen if name == "someone/private-phi3"]
    assert hub_reads and all(token is False for _, token in hub_reads), seen  # False: no token, not even HF_TOKEN
    assert all(Path(name).is_dir() for name, _ in seen if name != "someone/private-phi3")  # the bundled tokenizer


@pytest.mark.parametrize("model", ["{data_dir}", "trainer/assets", "/etc", "../main"])
def test_a_folder_on_the_server_is_never_a_base_model_on_a_space(space, model, monkeypatch):
    import trainer.data

    monkeypatch.setattr(trainer.data, "preview_tokenizer", lambda *a, **k: 1 / 0)  # never reached
    model = model.format(data_dir=space.data_dir)
    summary, _, estimate = space.fns["preview"](space.form(model_name_or_path=model), None, None)
    assert "base model is a Hub model ID" in summary and estimate == ""
    outputs = space.fns["start"](space.form(model_name_or_path=model), profile("alice"), oauth("hf_oauthALICE1111"))
    assert "base model is a Hub model ID" in outputs[0]


def test_a_visitors_oversized_inputs_are_refused_before_any_work(space):
    summary, rows, estimate = space.fns["preview"](space.form(dataset_name="x" * 200_000), None, None)
    assert "200,000 characters, more than the 500 it takes" in summary and rows == estimate == ""
    export = space.fns["export"]
    update, text, errors = export(space.form(system_prompt="s" * 30_000_000))
    assert "more than the 20,000 it takes" in errors and text in ("", None)


def test_a_datasets_own_text_in_a_preview_problem_shows_as_text_not_markdown(tmp_path):
    """Column names that are Markdown (an image, a link) show escaped: they render nothing; the fix keeps its form."""
    from trainer.config import preset_config
    from trainer.runs.access import Caller
    from trainer.ui.form import form_fields, widget_value
    from trainer.ui.train_tab import preview_data

    data = tmp_path / "columns.jsonl"
    data.write_text('{"![x](http://evil.example/i.png)": "a", "[click](http://evil.example)": "b"}\n' * 3)
    values = {s.key: widget_value(s, s.get(preset_config("tiny-demo"))) for s in form_fields()}
    values["data.dataset_name"] = str(data)
    summary, _, _ = preview_data(values, Caller(name=None, token=None, admin=True, local=True))
    assert "!\\[x\\](http://evil.example/i.png)" in summary and "\\[click\\](http://evil.example)" in summary
    mapping = "`![x](http://evil.example/i.png)=user, [click](http://evil.example)=assistant`"
    assert f"set **Column mapping** to {mapping}" in summary  # a code span shows its text as written
    assert "![x](" not in re.sub(r"`[^`]*`", "", summary)  # and nowhere else is it Markdown


def test_one_session_runs_one_preview_at_a_time_and_never_holds_back_another(space, monkeypatch):
    import threading
    from types import SimpleNamespace

    import trainer.ui.train_tab

    started, release = threading.Event(), threading.Event()
    real = trainer.ui.train_tab.preview_data

    def slow(values, who, flavor=None):
        if values["data.dataset_name"] == "examples/pirate_chat.jsonl":
            started.set()
            release.wait(10)
        return real(values, who, flavor)

    monkeypatch.setattr(trainer.ui.train_tab, "preview_data", slow)
    mallory, other = SimpleNamespace(session_hash="mallory"), SimpleNamespace(session_hash="someone-else")
    form = space.form(dataset_name="examples/pirate_chat.jsonl")
    first = threading.Thread(target=space.fns["preview"], args=(form, None, None, mallory))
    first.start()
    assert started.wait(10)
    again = space.fns["preview"](form, None, None, mallory)  # the same session, while its first one runs
    assert "A preview of yours is still running" in again[0]
    shown = space.fns["preview"](space.form(dataset_name="examples/pirate_alpaca.json"), None, None, other)
    assert "usable of" in shown[0]  # another session's preview is not held back
    release.set()
    first.join(10)
    assert "usable of" in space.fns["preview"](form, None, None, mallory)[0]  # free again once it ended
