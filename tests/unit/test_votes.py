"""Blind votes: the win rate and its Wilson interval, one vote per person and prompt, a vote link's hidden order."""

from __future__ import annotations

import pytest

from trainer.evaluation.metrics import tally, tally_text, wilson
from trainer.runs.votes import VoteStore


@pytest.mark.parametrize(
    ("wins", "n", "low", "high"),
    [  # Wilson's 95 % interval, worked by hand from its formula (and found in the usual tables)
        (8, 10, 0.4902, 0.9433),
        (0, 5, 0.0, 0.4345),
        (5, 5, 0.5655, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_the_wilson_interval_is_exact_on_known_counts(wins, n, low, high):
    assert wilson(wins, n) == pytest.approx((low, high), abs=5e-5)


def test_no_decisive_vote_has_no_interval():
    assert wilson(0, 0) is None
    counts = tally([{"voter": "a", "tuned_is": "a", "verdict": "tie"}])
    assert counts["win_rate"] is None and counts["interval"] is None and counts["tie"] == 1


def test_the_tally_counts_each_vote_for_the_side_that_was_tuned():
    votes = [
        {"voter": "ann", "tuned_is": "a", "verdict": "a"},  # tuned shown as A, A chosen: tuned wins
        {"voter": "ann", "tuned_is": "b", "verdict": "b"},  # tuned as B, B chosen: tuned wins
        {"voter": "bo", "tuned_is": "b", "verdict": "a"},  # tuned as B, A chosen: the base wins
        {"voter": "dee", "tuned_is": "b", "verdict": "b"},  # tuned as B, B chosen: tuned wins
        {"voter": "bo", "tuned_is": "a", "verdict": "tie"},
        {"voter": "cy", "tuned_is": "a", "verdict": "both_bad"},
    ]
    counts = tally(votes)
    assert (counts["tuned"], counts["base"], counts["tie"], counts["both_bad"]) == (3, 1, 1, 1)
    assert counts["votes"] == 6 and counts["voters"] == 4
    assert counts["win_rate"] == 0.75
    assert counts["interval"] == pytest.approx([0.3006, 0.9544], abs=1e-4)  # Wilson, 3 of 4
    assert tally_text(counts).startswith("tuned preferred in 3 of 4 decisive votes (75 %, 95 % CI 30–95 %)")


def test_a_second_vote_by_the_same_person_on_the_same_prompt_replaces_the_first(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    store.record("run-1", "ann", "What is rain?", ("Ahoy!", "Rain."), "a", "b", "link")
    store.record("run-1", "ann", "What is rain?", ("Ahoy!", "Rain."), "a", "a", "link")  # she changed her mind
    store.record("run-1", "bo", "What is rain?", ("Rain.", "Ahoy!"), "b", "b", "link")  # another person: counted
    store.record("run-2", "ann", "What is rain?", ("Ahoy!", "Rain."), "a", "tie", "compare")  # another run
    counts = tally(store.votes("run-1"))
    assert counts["votes"] == 2 and counts["tuned"] == 2 and counts["base"] == 0
    assert [v["verdict"] for v in store.votes("run-1") if v["voter"] == "ann"] == ["a"]
    assert tally(store.votes("run-2"))["tie"] == 1


def test_a_vote_link_names_one_run_and_ends_when_unshared(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    token = store.share("run-1", "alice")
    assert store.share("run-1", "alice") == token  # one link per run
    assert store.run_of(token) == "run-1" and store.run_of("not-a-token") is None and store.run_of("") is None
    store.unshare("run-1")
    assert store.run_of(token) is None


def test_a_links_order_is_fixed_per_voter_and_prompt_random_across_them_and_not_from_the_token(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    one, two = store.share("run-1", "alice"), store.share("run-2", "alice")
    prompts = [f"prompt {i}" for i in range(64)]
    sides = [store.tuned_side(one, "bo", p) for p in prompts]
    assert sides == [store.tuned_side(one, "bo", p) for p in prompts]  # the same on every visit
    assert 8 < sides.count("a") < 56  # both sides, about half each (64 fair draws fall outside once in 10^8)
    assert sides != [store.tuned_side(one, "cy", p) for p in prompts]  # another voter, another order
    assert sides != [store.tuned_side(two, "bo", p) for p in prompts]  # another link, another order
    with pytest.raises(KeyError):
        store.tuned_side("ended-or-forged", "bo", "prompt 0")
