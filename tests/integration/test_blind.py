"""Compare's Blind A/B on the tiny pirate demo: the order is drawn per prompt, nothing the page receives says which
reply is the tuned model's, and the vote reveals it and is kept for the run."""

from __future__ import annotations

import shutil

import pytest

from trainer.runs.state import RunState

pytestmark = pytest.mark.slow


class Page:
    def __init__(self, session: str):
        self.session_hash, self.query_params, self.url = session, {}, None


@pytest.fixture(scope="module")
def studio(demo, tmp_path_factory):
    """The app on a fresh job table holding one finished copy of the demo run: (studio, the run's id)."""
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService
    from trainer.ui import build_studio

    result, _ = demo
    folder = tmp_path_factory.mktemp("blind")
    run_dir = shutil.copytree(result.run_dir, folder / "runs" / "demo")
    service = RunService(RunQueue(JobStore(folder / "jobs.sqlite")))
    job = service.queue.store.create(run_dir, name="pirate demo")
    service.queue.store.update(job.id, status=RunState.SUCCEEDED)
    return build_studio(service, on_gpu=False), str(job.id)


def _send(studio, run_id: str, prompt: str, session: str) -> list[tuple]:
    """Every output the Send handler gives the page for one prompt."""
    handlers = studio[0].handlers()
    return list(handlers["blind_send"](prompt, run_id, 12, 0.7, 0.9, True, "", None, None, Page(session)))


def test_the_order_is_random_per_prompt_and_the_page_never_gets_it(studio):
    app, run_id = studio
    panel = app.handlers()["blind_vote"].__self__
    tuned_sides = []
    for i, topic in enumerate(["the moon", "rain", "coffee", "the sea", "cats"] * 4):
        outputs = _send(studio, run_id, f"Tell me about {topic}.", session=f"s{i}")
        a_chat, b_chat, prompt_box = outputs[-1]
        a, b = a_chat[-1]["content"], b_chat[-1]["content"]
        pending = panel.pending[f"s{i}"]
        tuned_sides.append(pending["tuned_is"])
        pirate = "a" if a.startswith("Ahoy") else "b"
        assert pending["tuned_is"] == pirate and not (a.startswith("Ahoy") and b.startswith("Ahoy"))
        assert pending["replies"] == (a, b)
        for output in outputs:  # what the page receives: the two panes' messages and an emptied prompt box
            a_msgs, b_msgs, box = output
            assert box == "" and all(set(m) == {"role", "content"} for m in [*a_msgs, *b_msgs])
            assert "tuned" not in repr(output).lower() and "base" not in repr(output).lower()
    assert set(tuned_sides) == {"a", "b"}  # 20 fair draws: all on one side once in half a million


def test_the_panes_are_a_and_b_whatever_the_order(studio):
    app, _ = studio
    labels = {c["props"].get("elem_id"): c["props"].get("label") for c in app.app.config["components"]}
    assert labels["blind-a"] == "A" and labels["blind-b"] == "B"


def test_the_vote_reveals_the_sides_and_is_kept_for_the_run(studio):
    app, run_id = studio
    _send(studio, run_id, "What is the moon?", session="voter")
    panel = app.handlers()["blind_vote"].__self__
    tuned = panel.pending["voter"]["tuned_is"]
    reveal, *buttons = app.handlers()["blind_vote"](tuned, run_id, None, None, Page("voter"))
    assert reveal.startswith(f"**{tuned.upper()} was the tuned model")
    assert "Your vote: " + ("A" if tuned == "a" else "B") + " is better" in reveal
    assert all(b["interactive"] is False for b in buttons)
    service = app.runs.service
    votes = service.votes.store.votes("demo")
    assert votes[-1]["tuned_is"] == tuned and votes[-1]["verdict"] == tuned and votes[-1]["via"] == "compare"
