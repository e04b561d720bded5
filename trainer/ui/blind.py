"""Compare's *Blind A/B* mode: the two replies to a prompt are shown as A and B in an order chosen at random on the
server for each prompt, with nothing in the page that tells which is which; the person votes (A, B, tie, both bad)
and only then are the sides revealed. The vote is kept for the run (`RunService.votes`).

The order and the replies wait in this process, per browser session, until the vote: never in the page, its element
ids or an event's answer. A/B panes have fixed ids (`blind-a`, `blind-b`); which model answers in each is the secret.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import gradio as gr

from trainer.runs.service import AccessError
from trainer.ui.context import AppContext, caller, gpu_call, plain

VERDICT_BUTTONS = (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))


def session_key(request: gr.Request | None) -> str:
    return (request.session_hash if request is not None else None) or ""


class BlindPanel:
    """The Blind A/B handlers (public methods the page's events call, and tests call by name)."""

    def __init__(self, ctx: AppContext):
        self.service, self.engines = ctx.service, ctx.engines
        self.pending: dict[str, dict[str, Any]] = {}  # session -> the prompt waiting for its vote (server only)
        self._lock = threading.Lock()
        self.blind_send = gpu_call(self._blind_send)  # on ZeroGPU inside a GPU allocation, like Compare's Send

    @staticmethod
    def blind_mode(on: bool) -> list[Any]:
        """Blind on: the A/B panel shows, and the named panes, their header and their prompt hide (and back)."""
        return [gr.update(visible=bool(on)), *[gr.update(visible=not on)] * 3]

    @staticmethod
    def blind_reset() -> list[Any]:
        """A new prompt: no vote until both replies are in, and the last reveal goes."""
        return [*[gr.update(interactive=False)] * 4, ""]

    def _blind_send(
        self,
        prompt,
        run_id,
        max_new,
        temperature,
        top_p,
        greedy,
        system,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
        request: gr.Request | None = None,
    ):
        """Both models answer the prompt; the replies stream into A and B in this prompt's random order."""
        from trainer.chat import ChatError, GenerationSettings

        session, who = session_key(request), caller(profile, oauth)
        with self._lock:
            self.pending.pop(session, None)  # a new prompt: an earlier one not voted on is dropped
        try:
            if not (prompt or "").strip():
                raise ValueError("Type a prompt first.")
            run = self.service.find(who, run_id)  # blind votes are kept per run: the caller's own
            source = self.service.chat_source(who, run_id)
            token, local = self.service.hub_token(who), not self.service.space_mode()
            engine = self.engines.get(source, token=token, who=who.name, local_base=local)
            settings = GenerationSettings(
                max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), greedy=bool(greedy)
            )
        except (AccessError, ChatError, ValueError, TypeError, OSError) as exc:
            gr.Warning(str(exc))
            yield gr.skip(), gr.skip(), gr.skip()
            return
        tuned_is = "a" if secrets.randbelow(2) == 0 else "b"  # chosen here, per prompt; the page never learns it
        messages = [{"role": "system", "content": system}] if (system or "").strip() else []
        messages.append({"role": "user", "content": prompt})
        user = {"role": "user", "content": prompt}
        a = b = ""
        for base_reply, tuned_reply in engine.stream_pair(messages, messages, settings):
            a, b = (tuned_reply, base_reply) if tuned_is == "a" else (base_reply, tuned_reply)
            yield [user, {"role": "assistant", "content": a}], [user, {"role": "assistant", "content": b}], ""
        with self._lock:
            self.pending[session] = {"run_id": str(run.id), "prompt": prompt, "replies": (a, b), "tuned_is": tuned_is}

    def blind_ready(self, request: gr.Request | None = None) -> list[Any]:
        """After the replies: the vote buttons, enabled while a prompt waits for this session's vote."""
        with self._lock:
            waiting = session_key(request) in self.pending
        return [gr.update(interactive=waiting)] * 4

    def blind_vote(
        self,
        verdict: str,
        run_id,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
        request: gr.Request | None = None,
    ) -> list[Any]:
        """Keep the vote for the run, then reveal which side was which and the run's tally."""
        from trainer.evaluation.metrics import VERDICT_WORDS, tally_text

        with self._lock:
            waiting = self.pending.get(session_key(request))
        if waiting is None or str(run_id) != waiting["run_id"]:
            gr.Warning("Send a prompt first: the vote is on the two replies to it.")
            return [gr.skip(), *[gr.update(interactive=False)] * 4]
        try:
            counts = self.service.votes.record(
                caller(profile, oauth),
                run_id,
                waiting["prompt"],
                waiting["replies"],
                waiting["tuned_is"],
                verdict,
            )
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return [gr.skip(), *[gr.update(interactive=False)] * 4]
        with self._lock:
            self.pending.pop(session_key(request), None)
        tuned = waiting["tuned_is"].upper()
        base = "B" if tuned == "A" else "A"
        reveal = (
            f"**{tuned} was the tuned model, {base} the base.** Your vote: {VERDICT_WORDS[verdict]}. "
            f"This run so far: {plain(tally_text(counts))}."
        )
        return [reveal, *[gr.update(interactive=False)] * 4]


def switch(c: dict[str, Any]) -> None:
    """The Blind switch (laid out above the panes)."""
    c["blind"] = gr.Checkbox(
        label="Blind A/B: hide which reply is the tuned model until I vote", elem_id="blind-switch", value=False
    )


def panel(c: dict[str, Any]) -> None:
    """The A/B panes, their prompt and the vote buttons (laid out where the named panes are; hidden until Blind)."""
    with gr.Column(visible=False, variant="panel", elem_id="blind-panel") as c["blind_panel"]:
        with gr.Row():
            c["blind_a"] = gr.Chatbot(label="A", elem_id="blind-a", height=320)
            c["blind_b"] = gr.Chatbot(label="B", elem_id="blind-b", height=320)
        with gr.Row():
            c["blind_prompt"] = gr.Textbox(label="Prompt (both get it)", elem_id="blind-prompt", scale=5)
            c["blind_send"] = gr.Button("Send", variant="primary", elem_id="blind-send", scale=0, min_width=90)
        with gr.Row():
            c["votes"] = [
                gr.Button(text, elem_id=f"vote-{key}", interactive=False, min_width=110)
                for key, text in VERDICT_BUTTONS
            ]
        c["blind_reveal"] = gr.Markdown(elem_id="blind-reveal")


def build(ctx: AppContext, c: dict[str, Any]) -> BlindPanel:
    """Wire the Blind switch and panel (laid out by `switch` and `panel`) to the Compare tab's run picker and
    generation settings, all in `c`."""
    h = BlindPanel(ctx)
    settings = [c["max_new_tokens"], c["temperature"], c["top_p"], c["greedy"], c["system"]]
    named = [c["panes"], c["models"], c["prompt_row"]]
    c["blind"].change(h.blind_mode, c["blind"], [c["blind_panel"], *named], queue=False)
    votes, reveal = c["votes"], c["blind_reveal"]
    for trigger in (c["blind_send"].click, c["blind_prompt"].submit):
        trigger(h.blind_reset, None, [*votes, reveal], queue=False).then(
            h.blind_send,
            [c["blind_prompt"], c["adapter"], *settings],
            [c["blind_a"], c["blind_b"], c["blind_prompt"]],
            concurrency_id="gpu",
            concurrency_limit=1,
        ).then(h.blind_ready, None, votes, queue=False)
    for (key, _), button in zip(VERDICT_BUTTONS, votes, strict=True):
        button.click(h.blind_vote, [gr.State(key), c["adapter"]], [reveal, *votes], queue=False)
    return h
