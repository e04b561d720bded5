"""The Compare tab's handlers as Gradio calls them (local mode, a fake engine, no model): one Clear for both panes,
refused requests as messages (no error state, no server traceback), and a Stop that ends only the caller's own
generation."""

from __future__ import annotations

import inspect
import re

import gradio as gr
import pytest

from trainer.runs.queue import JobStore, RunQueue
from trainer.runs.service import RunService
from trainer.ui import build_studio
from trainer.ui.compare_tab import PANES_CSS, not_compared

TOKENS = 10
SETTINGS = (None, "alice/pirate-adapter", 16, 0.7, 0.9, True, "")  # run id, adapter repo, generation settings


class FakeEngine:
    """Streams TOKENS steps per side; once its Stop flag is set it ends after the step already in flight, as
    ChatEngine.stream_pair does."""

    def stream_pair(self, base_messages, tuned_messages, settings=None, adapter=None, stop=None):
        for n in range(1, TOKENS + 1):
            yield "b" * n, "t" * n
            if stop is not None and stop.is_set():
                yield "b" * (n + 1), "t" * (n + 1)
                return


@pytest.fixture
def compare(tmp_path, monkeypatch):
    """(the app's handlers by name, its components by elem_id, the app, its EngineCache), with a fake engine."""
    from trainer.chat import ChatEngine

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    monkeypatch.setattr(ChatEngine, "from_source", staticmethod(lambda *args, **kwargs: FakeEngine()))
    studio = build_studio(RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false")), on_gpu=False)
    components = {block.elem_id: block for block in studio.app.blocks.values() if block.elem_id}
    return studio.handlers(), components, studio, studio.compare.engines


def _events(studio, name: str) -> list[dict]:
    """The page's events whose handler is `name`, as Gradio describes them to the browser (its `api_name`: the
    handler's name, with `_1`, `_2` ... on a second and third registration)."""
    return [d for d in studio.app.config["dependencies"] if re.sub(r"_\d+$", "", d["api_name"] or "") == name]


def _elem(studio, component_id: int) -> str:
    return studio.app.blocks[component_id].elem_id


def _session(name: str) -> gr.Request:
    return gr.Request(session_hash=name)


def _send(fns, request: gr.Request, prompt: str = "Hi"):
    """What the Send button does for one browser session: clear its Stop flag, then stream."""
    fns["start_generation"](request)
    return fns["send"](prompt, [], [], *SETTINGS, None, None, request)


def _tuned_reply(outputs) -> str:
    return outputs[1][-1]["content"]


NOTHING_MORE = [
    (gr.skip(), gr.skip(), gr.skip())
]  # the last output changes nothing (Gradio sends it again at the end)


def test_one_clear_empties_both_panes_and_the_chatbots_have_no_clear_of_their_own(compare):
    fns, components, studio, _ = compare
    base, tuned, prompt = components["base-chat"], components["tuned-chat"], components["compare-prompt"]
    assert fns["clear_both"](_session("a")) == ([], [], "")
    # the Clear button, and each pane's own clear event too, run that one handler into both panes and the prompt
    clears = _events(studio, "clear_both")
    wired = {(_elem(studio, target), event) for d in clears for target, event in d["targets"]}
    assert wired == {("compare-clear", "click"), ("base-chat", "clear"), ("tuned-chat", "clear")}
    assert all(d["outputs"] == [base._id, tuned._id, prompt._id] for d in clears)
    # Gradio 6.31's Chatbot has no option to leave out its trash button: CSS scoped to the panes' wrapper hides it
    panes = components["compare-panes"]
    assert (
        PANES_CSS in panes.css_template and 'button[aria-label="Clear"]' in PANES_CSS and "display: none" in PANES_CSS
    )

    def inside(block, container) -> bool:
        return any(child is block or inside(block, child) for child in getattr(container, "children", []))

    assert inside(base, panes) and inside(tuned, panes)


def test_clear_during_a_generation_stops_it_so_the_panes_stay_empty(compare):
    fns, _, _, engines = compare
    a, b = _session("a"), _session("b")
    gen_a, gen_b = _send(fns, a), _send(fns, b)
    next(gen_a), next(gen_b)
    fns["clear_both"](a)
    assert list(gen_a) == NOTHING_MORE  # A's panes stay empty after its Clear
    assert _tuned_reply(list(gen_b)[-1]) == "t" * TOKENS  # B's generation is untouched
    assert engines._stops == {}


@pytest.mark.parametrize(
    "prompt, settings, message",
    [
        ("Hi", (None, "", *SETTINGS[2:]), "Pick a finished run"),
        ("Hi", (None, "not a repo id!", *SETTINGS[2:]), "adapter repo"),
        ("Hi", (None, SETTINGS[1], 0, *SETTINGS[3:]), "Max new tokens"),
    ],
)
def test_a_refused_request_is_a_message_that_leaves_the_panes_as_they_are(compare, prompt, settings, message):
    fns, _, _, engines = compare
    request = _session("a")
    fns["start_generation"](request)
    with pytest.warns(UserWarning, match=message):  # a toast: no gr.Error, so no error badges and no traceback
        outputs = list(fns["send"](prompt, [], [], *settings, None, None, request))
    assert outputs == NOTHING_MORE  # the panes and the prompt keep their values
    assert engines._stops == {}  # the session's Stop flag is dropped on a refusal too
    assert fns["refused_header"](request).startswith("**Not compared:**")  # the header says so, not the models


@pytest.mark.parametrize("handler", ["send", "regenerate"])
def test_no_prompt_is_a_note_that_leaves_the_panes_as_they_are(compare, handler):
    fns, _, _, engines = compare
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}]
    args = ("   ", history, history) if handler == "send" else ([], [])
    with pytest.warns(UserWarning, match="Type a prompt first."):  # a toast, no error badges, no traceback
        outputs = list(fns[handler](*args, *SETTINGS, None, None, _session("a")))
    assert outputs == [(gr.skip(), gr.skip(), gr.skip())]
    assert engines._stops == {}


@pytest.mark.parametrize("handler", ["send", "regenerate"])
def test_an_adapter_that_cannot_be_read_is_a_message_and_the_header_names_no_model(compare, monkeypatch, handler):
    """A Hub adapter refused at load (missing, private): a toast and a header that says so; the panes and the prompt
    keep their values, and clearing the field resets the header."""
    from trainer.chat import ChatEngine, ChatError

    refusal = "adapter alice/no-such-adapter: not an adapter repo that can be read (404 Not Found)."

    def refuse(*args, **kwargs):
        raise ChatError(refusal)

    monkeypatch.setattr(ChatEngine, "from_source", staticmethod(refuse))
    fns, components, studio, _ = compare
    request, history = _session("a"), [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}]
    settings = (None, "alice/no-such-adapter", *SETTINGS[2:])
    assert "Right, tuned:** base + adapter `alice/no-such-adapter`" in fns["labels"](*settings[:2], None)  # chosen
    args = ("Hi", history, history) if handler == "send" else (history, history)
    with pytest.warns(UserWarning, match="that can be read"):
        outputs = list(fns[handler](*args, *settings, None, None, request))
    assert outputs == NOTHING_MORE
    header = fns["refused_header"](request)
    assert header == not_compared(refusal) and "Right, tuned" not in header  # the reason, no model named
    assert fns["refused_header"](request) == gr.skip()  # said once; the next Send names its models again
    assert fns["labels"](None, "", None) == ""  # the field cleared: the header names nothing
    # wiring: the header step follows each generation, and each change of the chosen adapter renames the models
    models = components["compare-models"]
    headers = _events(studio, "refused_header")
    after = {d["trigger_after"] for d in headers}
    assert {d["api_name"].split("_")[0] for d in studio.app.config["dependencies"] if d["id"] in after} == {
        "send",
        "regenerate",
    }
    assert all(d["outputs"] == [models._id] for d in headers)
    changed = [target for d in _events(studio, "labels") for target in d["targets"]]
    assert {(_elem(studio, t), e) for t, e in changed if t is not None} == {
        ("compare-adapter", "change"),
        ("compare-hub-id", "change"),
    }


def test_one_sessions_stop_does_not_stop_another_sessions_generation(compare):
    fns, _, _, engines = compare
    a, b = _session("a"), _session("b")
    gen_a, gen_b = _send(fns, a), _send(fns, b)
    assert _tuned_reply(next(gen_a)) == _tuned_reply(next(gen_b)) == "t"  # both sessions are streaming
    fns["stop_generation"](_session("c"))  # a session with no generation on presses Stop: nothing stops
    assert _tuned_reply(next(gen_a)) == _tuned_reply(next(gen_b)) == "tt"
    fns["stop_generation"](a)
    next(_send(fns, _session("d")))  # another session's Send (its own flag cleared) does not undo A's Stop
    assert list(gen_a) == NOTHING_MORE  # A's generation ends at its Stop
    assert _tuned_reply(list(gen_b)[-1]) == "t" * TOKENS  # B's runs to its end
    assert "a" not in engines._stops and "b" not in engines._stops  # each flag is dropped when its generation ends


def test_a_stop_pressed_while_waiting_in_the_queue_still_counts(compare):
    fns, _, _, _ = compare
    a = _session("a")
    fns["start_generation"](a)
    fns["stop_generation"](a)  # pressed before the queued generation started
    assert list(fns["send"]("Hi", [], [], *SETTINGS, None, None, a)) == NOTHING_MORE
    b = _session("b")
    assert _tuned_reply(list(_send(fns, b))[-1]) == "t" * TOKENS  # and another session is not affected


def test_on_zerogpu_the_compare_answers_run_inside_a_gpu_allocation(tmp_path, monkeypatch):
    """Off ZeroGPU the handlers are registered as they are; on it (SPACES_ZERO_GPU), inside `spaces.GPU`."""
    import functools
    import os
    import pickle
    import sys
    import types

    from trainer.ui.context import COMPARE_GPU_S, gpu_call

    def handler():
        return "answer"

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu_call(handler) is handler  # nothing imports `spaces` here

    allocations: list[int] = []

    def gpu(duration):  # `spaces.GPU(duration=...)`: the handler runs in a forked child, its outputs piped back
        def wrap(fn):
            @functools.wraps(fn)
            def inside(*args):
                allocations.append(duration)
                if not inspect.isgeneratorfunction(fn):
                    return fn(*args)
                return in_a_child(fn, args)

            inside.zero_gpu = duration
            return inside

        return wrap

    def in_a_child(fn, args):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own copy of the memory, Stop flags included
            try:
                with os.fdopen(write, "wb") as out:
                    for outputs in fn(*args):
                        pickle.dump(outputs, out)
            finally:
                os._exit(0)
        os.close(write)
        try:
            with os.fdopen(read, "rb") as pipe:
                while True:
                    try:
                        yield pickle.load(pipe)
                    except EOFError:
                        return
        finally:
            os.waitpid(pid, 0)

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu_call(handler)() == "answer" and allocations == [COMPARE_GPU_S]
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    studio = build_studio(RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false")), on_gpu=False)
    fns = studio.handlers()
    on_gpu = {name for name, fn in fns.items() if getattr(fn, "__wrapped__", None) is not None}
    assert on_gpu == {"send", "regenerate", "blind_send"}  # they answer with the models; nothing else holds the GPU

    # Stop pressed in this process ends what reaches the panes, though the child never sees the flag
    from trainer.chat import ChatEngine

    monkeypatch.setattr(ChatEngine, "from_source", staticmethod(lambda *args, **kwargs: FakeEngine()))
    request = _session("a")
    fns["start_generation"](request)
    replies = fns["send"]("Hi", [], [], *SETTINGS, None, None, request)
    first = next(replies)
    fns["stop_generation"](request)
    rest = list(replies)
    assert _tuned_reply(first) == "t" and rest == NOTHING_MORE  # the child's other TOKENS - 1 replies are dropped
    assert allocations == [COMPARE_GPU_S, COMPARE_GPU_S]  # the reply was written inside a GPU allocation
