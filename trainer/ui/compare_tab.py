"""The Compare tab: the base model (left) and base + adapter (right) answer the same prompt, side by side.

One engine (base model + adapter) is in memory at a time, loaded on first use; both panes stream from one batched
`generate` (see trainer.chat). One Clear empties both panes together; Stop ends only the caller's own generation (a
Stop flag per browser session, keyed by Gradio's session hash). A refused request (out of bounds, not the caller's
run, an adapter that cannot be read) is a message, a toast and in the header, never an error state of the panes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gradio as gr

from trainer.runs.service import AccessError
from trainer.ui import blind
from trainer.ui.context import AppContext, adapter_update, caller, gpu_call, plain, zero_gpu

# Gradio 6.31's Chatbot always shows its own trash button once it holds messages (its `buttons` option covers only
# share / copy / copy_all), and that button clears its own pane only. So the two panes sit in a gr.HTML whose CSS,
# scoped to it, hides that button (the first two lines undo the wrapper's own padding and gaps): the one Clear below
# empties both. Each chatbot's own clear event is wired to that Clear as well, should the button ever show.
PANES_CSS = """
gap: 0;
.html-container:has(> &) { padding: 0; }
button[aria-label="Clear"] { display: none; }
"""


NO_PROMPT = "Type a prompt first."


class Refused(Exception):
    """An expected refusal of a Compare request: shown as a message (see `shown_as_message`), no server traceback."""


def not_compared(message: str) -> str:
    """The header above the panes after a refused request: its reason, and no model named (none was compared)."""
    return f"**Not compared:** {plain(message)}"


def session_of(request: gr.Request | None) -> str:
    """The browser session a handler serves (Gradio's per-page-load session hash); "" when called outside one."""
    return (request.session_hash if request is not None else None) or ""


def chat_messages(history: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """A Chatbot's value as plain role/content messages (Gradio may hand content back as a list of text parts)."""
    out = []
    for message in history or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        out.append({"role": message["role"], "content": str(content or "")})
    return out


def pane_labels(base: str | None, adapter: str | None, repo: str | None = None) -> str:
    """Name the two models above the panes: a run's base model and its folder's name, or a Hub adapter repo."""
    if repo:
        return f"**Left, base:** the adapter's base · **Right, tuned:** base + adapter `{repo}`"
    if not base:
        return ""
    return f"**Left, base:** `{base}` · **Right, tuned:** `{base}` + adapter `{adapter}`"


def example_prompts(samples: list[dict[str, Any]]) -> Any:
    """Prompts of the run's held-out rows (its samples.json), to try on both sides."""
    prompts = list(dict.fromkeys(s["prompt"] for s in samples or [] if s.get("prompt")))
    return gr.update(choices=prompts, value=None)


def make_adapter_picker() -> gr.Dropdown:
    """The run picker of the Compare tab, made before the tabs (unrendered) so the Runs tab can open a run in it."""
    return gr.Dropdown(
        choices=[], label="Tuned adapter (a finished run)", elem_id="compare-adapter", scale=3, render=False
    )


PROMPT_LIMIT = 20_000
"""Characters of a prompt, or of a system prompt, that Compare takes."""
MAX_NEW_TOKENS = 2_048
"""The most new tokens Compare generates per reply."""


def request_problem(prompt: str, system: str | None, max_new: object) -> str | None:
    """What is out of bounds in a Compare request (checked before a model is loaded), or None."""
    if len(prompt) > PROMPT_LIMIT or len(system or "") > PROMPT_LIMIT:
        return f"A prompt or a system prompt here is at most {PROMPT_LIMIT:,} characters; shorten it."
    try:
        tokens = int(float(max_new))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        tokens = 0
    if not 1 <= tokens <= MAX_NEW_TOKENS:
        return f"Max new tokens is a whole number from 1 to {MAX_NEW_TOKENS:,}."
    return None


class CompareTab:
    """The Compare tab's handlers: each a public method that Gradio calls (and tests call by name).

    The chat engine cache holds one base model with the adapters; every source is chosen through the run service, so
    only the caller's own runs (by id) or a Hub repo are ever loaded.
    """

    def __init__(self, ctx: AppContext):
        self.service, self.engines, self.on_gpu = ctx.service, ctx.engines, ctx.on_gpu
        self.refusals: dict[str, str] = {}  # session -> its last refused request, until `refused_header` shows it
        self.components: dict[str, Any] = {}  # the tab's widgets by name, once built
        self.blind: blind.BlindPanel | None = None  # its Blind A/B mode
        self.send = self._registered(self._send, "send")
        self.regenerate = self._registered(self._regenerate, "regenerate")

    def _registered(self, handler, name: str):
        """A generating handler as the page registers it: on ZeroGPU inside its GPU call, and with a refusal shown
        as a message (see `on_gpu`, `shown_as_message`)."""
        registered = shown_as_message(on_gpu(handler, self.engines), self.refusals)
        registered.__name__ = name
        return registered

    def adapter_choices(self, current: str | None, profile: gr.OAuthProfile | None):
        """The caller's finished runs, keeping the one chosen."""
        return adapter_update(self.service, caller(profile), current)

    def labels(self, run_id, hub_id, profile: gr.OAuthProfile | None):
        """The header naming the two models now chosen ("" when nothing the caller may load is chosen)."""
        who = caller(profile)
        try:
            source = self.service.chat_source(who, run_id, hub_id)
            if (hub_id or "").strip():
                return pane_labels(None, None, source)
            base = self.service.config_of(self.service.find(who, run_id)).model.model_name_or_path
            return pane_labels(base, Path(source).name)
        except (AccessError, ValueError, OSError):
            return ""

    def examples(self, run_id, profile: gr.OAuthProfile | None):
        """The chosen run's held-out prompts, to try on both sides."""
        try:
            return example_prompts(self.service.view(self.service.find(caller(profile), run_id)).samples)
        except AccessError:
            return example_prompts([])

    def _send(
        self,
        prompt,
        base_hist,
        tuned_hist,
        run_id,
        hub_id,
        max_new,
        temperature,
        top_p,
        greedy,
        system,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
        request: gr.Request | None = None,
    ):
        """Stream both replies to the prompt; this session's Stop (or Clear) ends it, and its flag is dropped after."""
        from trainer.chat import ChatError, GenerationSettings

        service, engines = self.service, self.engines
        who, session = caller(profile, oauth), session_of(request)
        try:
            if not (prompt or "").strip():  # a slip, not a failure: a note, and the panes stay as they are
                gr.Warning(NO_PROMPT)
                yield gr.skip(), gr.skip(), gr.skip()
                return
            if problem := request_problem(prompt, system, max_new):  # before anything is loaded or generated
                raise Refused(problem)
            try:
                source = service.chat_source(who, run_id, hub_id)
            except AccessError as exc:
                raise Refused(str(exc)) from exc
            if self.on_gpu and service.training_here():
                raise Refused("A training run is using the GPU; the comparison can load once it finishes.")
            if not engines.holds(source, who.name):
                gr.Info(f"Loading the base model and the adapter of {Path(source).name if not hub_id else source}…")
            try:
                engine = engines.get(
                    source, token=service.hub_token(who), who=who.name, local_base=not service.space_mode()
                )
            except (ChatError, ValueError, OSError) as exc:  # e.g. a repo that does not exist or is not readable
                raise Refused(str(exc)) from exc
            settings = GenerationSettings(
                max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), greedy=bool(greedy)
            )
            system_turn = [{"role": "system", "content": system}] if (system or "").strip() else []
            user = {"role": "user", "content": prompt}
            base_hist, tuned_hist = [*chat_messages(base_hist), user], [*chat_messages(tuned_hist), user]
            stop = engines.stop_event(session)
            for base_reply, tuned_reply in engine.stream_pair(
                system_turn + base_hist, system_turn + tuned_hist, settings, stop=stop
            ):
                if not stop.is_set():  # after Stop or Clear, nothing more is shown
                    yield (
                        base_hist + [{"role": "assistant", "content": base_reply}],
                        tuned_hist + [{"role": "assistant", "content": tuned_reply}],
                        "",
                    )
            if stop.is_set():
                # The panes stay as they are (Clear has emptied them): Gradio sends a generator's last output again
                # when it ends, so the last one must change nothing.
                yield gr.skip(), gr.skip(), gr.skip()
        finally:
            engines.forget_stop(session)

    def _regenerate(
        self,
        base_hist,
        tuned_hist,
        run_id,
        hub_id,
        max_new,
        temperature,
        top_p,
        greedy,
        system,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
        request: gr.Request | None = None,
    ):
        """Answer the last prompt again on both sides, in place of the last replies."""
        base_hist, tuned_hist = chat_messages(base_hist), chat_messages(tuned_hist)
        last = next((m["content"] for m in reversed(base_hist) if m["role"] == "user"), "")
        cut = max((i for i, m in enumerate(base_hist) if m["role"] == "user"), default=0)
        tuned_cut = max((i for i, m in enumerate(tuned_hist) if m["role"] == "user"), default=0)
        settings = (run_id, hub_id, max_new, temperature, top_p, greedy, system)
        yield from self._send(last, base_hist[:cut], tuned_hist[:tuned_cut], *settings, profile, oauth, request)

    def start_generation(self, request: gr.Request | None = None) -> None:
        """A new generation of the caller's session starts with its Stop flag cleared (a Stop pressed while it
        waits in the queue or loads still counts); other sessions' flags are untouched."""
        self.engines.stop_event(session_of(request)).clear()

    def stop_generation(self, request: gr.Request | None = None) -> None:
        """Stop: ends the caller's own generation, never another session's."""
        self.engines.stop(session_of(request))

    def clear_both(self, request: gr.Request | None = None) -> tuple[list, list, str]:
        """Clear: empties both panes (and the prompt) together, and stops the caller's generation so that it cannot
        refill them. The histories live only in the two panes; the server keeps none per session."""
        self.engines.stop(session_of(request))
        return [], [], ""

    def refused_header(self, request: gr.Request | None = None) -> Any:
        """After a generation: a refused request's reason in place of the models' names; else the header stays."""
        refusal = self.refusals.pop(session_of(request), None)
        return gr.skip() if refusal is None else not_compared(refusal)

    @staticmethod
    def pick_example(prompt: str | None) -> Any:
        """An example prompt picked: it fills the prompt box."""
        return gr.update(value=prompt) if prompt else gr.skip()


def build(ctx: AppContext, app: gr.Blocks, tab: gr.Tab) -> CompareTab:
    """Build the Compare tab's components and wire them to its handlers (send, stream, stop, regenerate, clear)."""
    c = _layout(ctx.chat_adapter)
    h = CompareTab(ctx)
    gen_inputs = [
        c["prompt"],
        c["base_chat"],
        c["tuned_chat"],
        c["adapter"],
        c["hub_id"],
        c["max_new_tokens"],
        c["temperature"],
        c["top_p"],
        c["greedy"],
        c["system"],
    ]
    gen_outputs = [c["base_chat"], c["tuned_chat"], c["prompt"]]
    for trigger in (c["send"].click, c["prompt"].submit):  # one chain, two triggers
        trigger(h.start_generation, None, None, queue=False).then(
            h.labels, [c["adapter"], c["hub_id"]], c["models"], queue=False
        ).then(
            h.send,
            gen_inputs,
            gen_outputs,
            concurrency_id="gpu",
            concurrency_limit=1,
        ).then(h.refused_header, None, c["models"], queue=False)
    c["regenerate"].click(h.start_generation, None, None, queue=False).then(
        h.regenerate,
        gen_inputs[1:],
        gen_outputs,
        concurrency_id="gpu",
        concurrency_limit=1,
    ).then(h.refused_header, None, c["models"], queue=False)
    c["stop"].click(h.stop_generation, None, None, queue=False)
    for clear in (c["clear"].click, c["base_chat"].clear, c["tuned_chat"].clear):  # a pane's own clear: both too
        clear(h.clear_both, None, gen_outputs, queue=False)
    tab.select(h.adapter_choices, c["adapter"], c["adapter"])
    c["adapter"].change(h.examples, c["adapter"], c["examples"], queue=False)
    for field in (c["adapter"], c["hub_id"]):  # the header names what is chosen now: clearing the field resets it
        field.change(h.labels, [c["adapter"], c["hub_id"]], c["models"], queue=False, show_progress="hidden")
    c["examples"].change(h.pick_example, c["examples"], c["prompt"], queue=False)
    app.load(h.adapter_choices, c["adapter"], c["adapter"])
    h.blind = blind.build(ctx, c)
    h.components = c
    return h


def shown_as_message(handler, refusals: dict[str, str]):
    """A Compare generator as registered, whose `Refused` (raised here, or on ZeroGPU inside its GPU call and passed
    on) becomes a toast, kept in `refusals` under the caller's session for the header; the panes and the prompt
    stay as they are and usable (no error state, as a raised gr.Error would leave on every output)."""

    @functools.wraps(handler)
    def guarded(*args):
        try:
            yield from handler(*args)
        except Refused as exc:
            refusals[session_of(next((a for a in args if isinstance(a, gr.Request)), None))] = str(exc)
            gr.Warning(str(exc))
            yield gr.skip(), gr.skip(), gr.skip()

    return guarded


def on_gpu(handler, engines):
    """A Compare generator as registered: itself, or on ZeroGPU inside `spaces.GPU`, which runs it in a child process
    that never sees this process's Stop flags, so its replies are passed on here only until the caller's Stop or
    Clear (the child's models are loaded in that call, as ZeroGPU gives the GPU to nothing else)."""
    if not zero_gpu():
        return handler
    inside = gpu_call(handler)

    @functools.wraps(handler)
    def forward(*args):
        session = session_of(next((a for a in args if isinstance(a, gr.Request)), None))
        stop = engines.stop_event(session)
        try:
            for outputs in inside(*args):
                if stop.is_set():
                    yield gr.skip(), gr.skip(), gr.skip()
                    return
                yield outputs
        finally:
            engines.forget_stop(session)

    return forward


def _layout(adapter: gr.Dropdown) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["adapter"] = adapter.render()
        c["hub_id"] = gr.Textbox(
            label="…or an adapter repo on the Hub",
            placeholder="alice/phi3-pirate-lora",
            elem_id="compare-hub-id",
            scale=2,
        )
    c["examples"] = gr.Dropdown(
        choices=[], label="Example prompts (held-out rows of the run)", elem_id="compare-examples"
    )
    blind.switch(c)
    c["models"] = gr.Markdown(elem_id="compare-models")
    with gr.HTML(html_template="@children", css_template=PANES_CSS, js_on_load=None, elem_id="compare-panes") as c[
        "panes"
    ]:
        with gr.Row():
            c["base_chat"] = gr.Chatbot(label="Base model", elem_id="base-chat", height=380)
            c["tuned_chat"] = gr.Chatbot(label="Tuned (base + adapter)", elem_id="tuned-chat", height=380)
    blind.panel(c)
    with gr.Row() as c["prompt_row"]:
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
            c["max_new_tokens"] = gr.Number(
                value=128, precision=0, minimum=1, maximum=MAX_NEW_TOKENS, label="Max new tokens"
            )
            c["temperature"] = gr.Number(value=0.7, label="Temperature")
            c["top_p"] = gr.Number(value=0.9, label="Top-p")
            c["greedy"] = gr.Checkbox(value=True, label="Greedy (same answer every time)")
        c["system"] = gr.Textbox(label="System prompt (both sides)", value="")
    return c
