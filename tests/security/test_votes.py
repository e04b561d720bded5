"""Blind votes on a Space: only a run's owner shares it for votes; a vote link shows a signed-in person the prompts
and the two answers of its evaluation, as A and B, and nothing else; one vote per person and prompt; a visitor, a
forged link or an ended one votes on nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.runs import folder as rf

from .conftest import ALICE_OAUTH, BOB_OAUTH, oauth, profile

ALICE, BOB, CY = profile("alice"), profile("bob"), profile("cy")
ROWS = [
    {"prompt": f"secret prompt {i}", "reference": "-", "base": {"text": f"plain {i}"}, "tuned": {"text": f"Ahoy {i}"}}
    for i in range(3)
]


class Page:
    """A page load's request, as Gradio hands it to a handler."""

    def __init__(self, query: dict[str, str] | None = None, session: str = "s1"):
        self.query_params, self.session_hash, self.url = query or {}, session, None


def _evaluated(space, owner: str = "alice"):
    run = space.run_of(owner)
    rf.write_json_atomic(Path(run.run_dir) / rf.EVAL_DIR / rf.EVAL_RESULTS_FILE, {"rows": ROWS})
    return run


def _share(space, run, who=ALICE) -> str:
    shown = space.fns["share_votes"](str(run.id), who, Page())
    return shown.split("?vote=", 1)[1].split("`", 1)[0]


def _open(space, token: str, who):
    """The Vote tab as the link opens it: [tab, token, index, prompt, A, B, progress, reveal, 4 buttons, next]."""
    return space.fns["open_link"](who, Page({"vote": token}))


def test_only_an_evaluated_run_of_ones_own_is_shared(space):
    run = space.run_of("alice")
    with pytest.warns(UserWarning, match="has no evaluation yet"):
        space.fns["share_votes"](str(run.id), ALICE, Page())
    _evaluated(space)
    with pytest.warns(UserWarning, match="not yours"):
        space.fns["share_votes"](str(run.id), BOB, Page())
    assert "?vote=" in space.fns["share_votes"](str(run.id), ALICE, Page())


def test_a_vote_link_shows_its_prompts_and_answers_as_a_and_b_and_nothing_else(space):
    run = _evaluated(space)
    token = _share(space, run)
    opened = _open(space, token, BOB)
    assert opened[0].selected == "vote" and opened[1] == token and opened[2] == 0
    prompt, a, b = opened[3:6]
    assert "secret prompt 0" in prompt
    assert {a.split("\n\n", 1)[1], b.split("\n\n", 1)[1]} == {"plain 0", "Ahoy 0"}
    shown = " ".join(str(o) for o in opened[2:])
    assert "alice-run" not in shown and str(run.run_dir) not in shown and "tuned" not in shown.lower()


def test_each_vote_counts_once_per_person_and_prompt_and_then_the_sides_are_revealed(space):
    run = _evaluated(space)
    token = _share(space, run)
    index = _open(space, token, BOB)[2]
    reveal = space.fns["cast_vote"]("a", token, index, BOB)[0]
    assert "was the tuned model" in reveal and "You said: A is better" in reveal
    space.fns["cast_vote"]("b", token, index, BOB)  # bob changes his mind on the same prompt
    space.fns["cast_vote"]("tie", token, index, CY)
    counts = space.fns["refresh_eval"](str(run.id), {}, ALICE, Page())[0]
    assert "2 votes by 2 people" in counts  # bob once (his second vote replaced the first), cy once
    assert _open(space, token, BOB)[2] == 1  # bob's next prompt is the second one


def test_the_owner_sees_the_tally_and_the_link_and_nobody_else_does(space):
    run = _evaluated(space)
    token = _share(space, run)
    space.fns["cast_vote"]("a", token, 0, BOB)
    owner = space.fns["refresh_eval"](str(run.id), {}, ALICE, Page())
    assert "Blind votes:" in owner[0] and token in owner[1]
    other = space.fns["refresh_eval"](str(run.id), {}, BOB, Page())
    assert other[:2] == ["", ""]  # bob voted through the link: he sees nothing of the run


@pytest.mark.parametrize("case", ["visitor", "forged", "ended", "index"])
def test_a_visitor_a_forged_or_ended_link_and_a_prompt_outside_it_vote_on_nothing(space, case):
    run = _evaluated(space)
    token = _share(space, run)
    who, index = (None if case == "visitor" else BOB), (7 if case == "index" else 0)
    if case == "forged":
        token = token[:-2] + ("aa" if not token.endswith("aa") else "bb")
    if case == "ended":
        assert space.fns["unshare_votes"](str(run.id), ALICE).startswith("Vote link ended")
    opened = _open(space, token, who)
    if case != "index":
        assert opened[2] is None and "secret prompt" not in " ".join(map(str, opened[3:6]))
    with pytest.warns(UserWarning):
        space.fns["cast_vote"]("a", token, index, who)
    assert "Blind votes" not in space.fns["refresh_eval"](str(run.id), {}, ALICE, Page())[0]


def test_another_user_cannot_end_a_runs_vote_link(space):
    run = _evaluated(space)
    token = _share(space, run)
    with pytest.warns(UserWarning, match="not yours"):
        space.fns["unshare_votes"](str(run.id), BOB)
    assert _open(space, token, BOB)[2] == 0  # still open


def test_a_blind_vote_in_compare_needs_a_prompt_answered_for_this_session_and_run(space):
    run = space.run_of("alice")
    blind = space.fns["blind_vote"].__self__
    with pytest.warns(UserWarning, match="Send a prompt first"):
        space.fns["blind_vote"]("a", str(run.id), ALICE, oauth(ALICE_OAUTH), Page(session="s1"))
    blind.pending["s1"] = {"run_id": str(run.id), "prompt": "hi", "replies": ("Ahoy", "hi"), "tuned_is": "a"}
    with pytest.warns(UserWarning, match="Send a prompt first"):  # another session's prompt is not this one's
        space.fns["blind_vote"]("a", str(run.id), ALICE, oauth(ALICE_OAUTH), Page(session="s2"))
    bob_run = space.run_of("bob")
    with pytest.warns(UserWarning, match="Send a prompt first"):  # nor is it a vote on another run
        space.fns["blind_vote"]("a", str(bob_run.id), BOB, oauth(BOB_OAUTH), Page(session="s1"))
    reveal = space.fns["blind_vote"]("a", str(run.id), ALICE, oauth(ALICE_OAUTH), Page(session="s1"))[0]
    assert reveal.startswith("**A was the tuned model, B the base.**") and "1 votes by 1 person" in reveal
    assert "s1" not in blind.pending  # one vote per answered prompt


def test_a_links_order_differs_between_voters_so_a_is_not_always_the_tuned_answer(space):
    run = _evaluated(space)
    token = _share(space, run)
    tuned_first = {_open(space, token, profile(f"voter{i}"))[4].endswith("Ahoy 0") for i in range(30)}
    assert tuned_first == {True, False}  # 30 voters all seeing it on one side: once in half a billion
