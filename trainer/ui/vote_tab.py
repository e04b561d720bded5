"""The Vote tab: a run's owner shares a vote link (`?vote=<token>`), and a signed-in person opening it votes on the
prompts of that run's evaluation, one at a time, each pair of answers shown as A and B in an order they cannot
know; after each vote the sides are revealed. They see the prompts and the answers, nothing else of the run.

The link's token and the prompt being voted on are kept on the server (gr.State); the order is worked out there at
each step from the link's secret, so nothing the page holds says which answer is the tuned model's.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from trainer.runs.service import AccessError, Ballot, RunService
from trainer.ui.context import AppContext, caller, plain

INTRO = "Open a vote link that a run's owner shared with you: its prompts and two answers to each are shown here."
DONE = "**Thank you:** you have voted on every prompt of this link."
BUTTONS = (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))


def answer_markdown(label: str, text: str) -> str:
    """One answer as shown: its letter and its text, as plain text."""
    return f"**{label}**\n\n{plain(text)}"


class VoteTab:
    """The Vote tab's handlers (public methods the page's events call, and tests call by name)."""

    def __init__(self, service: RunService):
        self.service = service

    def _show(self, ballot: Ballot | None, note: str = "") -> list[Any]:
        """The outputs for a ballot: [prompt index, prompt, A, B, progress, reveal, 4 vote buttons, Next]."""
        if ballot is None:
            return [None, note or DONE, "", "", "", "", *[gr.update(interactive=False)] * 4, gr.update(visible=False)]
        progress = f"Prompt {ballot.done + 1} of {ballot.total} · the order of A and B is random for each prompt."
        return [
            ballot.index,
            f"### Prompt\n\n{plain(ballot.prompt)}",
            answer_markdown("A", ballot.a),
            answer_markdown("B", ballot.b),
            progress,
            "",
            *[gr.update(interactive=True)] * 4,
            gr.update(visible=False),
        ]

    def open_link(self, profile: gr.OAuthProfile | None, request: gr.Request | None = None) -> list[Any]:
        """On page load: a `?vote=` link opens this tab on its first prompt not yet voted on; no link, nothing."""
        token = (request.query_params.get("vote") if request is not None else None) or None
        if not token:
            return [gr.skip(), None, *self._show(None, INTRO)]
        return [gr.Tabs(selected="vote"), token, *self.next_ballot(token, profile)]

    def next_ballot(self, token, profile: gr.OAuthProfile | None) -> list[Any]:
        """The next prompt of the link this person has not voted on."""
        try:
            return self._show(self.service.votes.ballot(caller(profile), token))
        except AccessError as exc:
            return self._show(None, f"**{plain(str(exc))}**")

    def cast_vote(self, verdict: str, token, index, profile: gr.OAuthProfile | None) -> list[Any]:
        """Count the vote (once per person and prompt: a second one replaces the first), then reveal the sides."""
        from trainer.evaluation.metrics import VERDICT_WORDS

        try:
            tuned_is = self.service.votes.cast(caller(profile), token, index, verdict)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return [gr.skip(), *[gr.update(interactive=False)] * 4, gr.update(visible=False)]
        tuned = tuned_is.upper()
        base = "B" if tuned == "A" else "A"
        reveal = f"**{tuned} was the tuned model, {base} the base.** You said: {VERDICT_WORDS[verdict]}."
        return [reveal, *[gr.update(interactive=False)] * 4, gr.update(visible=True)]


def build(ctx: AppContext, app: gr.Blocks) -> VoteTab:
    """The Vote tab's widgets, and its wiring: the link is read when the page loads."""
    h = VoteTab(ctx.service)
    token, index = gr.State(None), gr.State(None)  # kept on the server, never sent to the page
    prompt = gr.Markdown(INTRO, elem_id="ballot-prompt")
    with gr.Row():
        a = gr.Markdown(elem_id="ballot-a")
        b = gr.Markdown(elem_id="ballot-b")
    progress = gr.Markdown(elem_id="ballot-progress")
    with gr.Row():
        buttons = [gr.Button(text, elem_id=f"cast-{key}", interactive=False, min_width=110) for key, text in BUTTONS]
    reveal = gr.Markdown(elem_id="ballot-reveal")
    next_button = gr.Button("Next prompt", elem_id="ballot-next", visible=False, variant="primary")
    shown = [index, prompt, a, b, progress, reveal, *buttons, next_button]
    app.load(h.open_link, None, [ctx.tabs, token, *shown])
    next_button.click(h.next_ballot, token, shown, queue=False)
    for (key, _), button in zip(BUTTONS, buttons, strict=True):
        button.click(h.cast_vote, [gr.State(key), token, index], [reveal, *buttons, next_button], queue=False)
    return h
