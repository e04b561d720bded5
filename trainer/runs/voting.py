"""Blind A/B votes behind the run service (`RunService.votes`): the owner's votes in Compare, and vote links that
let signed-in people vote on the fixed prompts of a run's evaluation, each answer pair shown as A and B in an order
they cannot know. The tally (the tuned model's win rate with its 95 % Wilson interval) is written to the run folder's
`eval/votes.json` after every vote, counts only, for the Runs tab and the card.

Every action takes the caller; a run is looked up with the service's `find` (its owner checked) or through a vote
link, which shows a voter the prompts and the two answers of its evaluation and nothing else of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.evaluation.metrics import VERDICTS, tally
from trainer.evaluation.report import eval_dir, read_rows
from trainer.runs import folder as rf
from trainer.runs.access import AccessError, Caller
from trainer.runs.store import Job
from trainer.runs.votes import VoteStore, prompt_key

BAD_LINK = "This vote link is not valid: it may have ended. Ask the run's owner for a new one."


@dataclass(frozen=True)
class Ballot:
    """One prompt of a vote link and its two answers as this voter sees them (which is the tuned one stays here)."""

    index: int  # the prompt's place in the link's prompt set
    total: int
    done: int  # prompts this voter has voted on
    prompt: str
    a: str
    b: str


def voter(who: Caller) -> str:
    """Who a vote is counted for: the signed-in name, or the person at the machine."""
    return who.name or "local"


class Votes:
    """The blind-vote actions of the run service."""

    def __init__(self, service, store: VoteStore):
        self.service = service  # the RunService that holds this (its `find` and job table)
        self.store = store

    @staticmethod
    def _name(run: Job) -> str:
        return Path(run.run_dir).name

    def _check(self, verdict: str, tuned_is: str) -> None:
        if verdict not in VERDICTS or tuned_is not in ("a", "b"):
            raise ValueError(f"a vote is one of {', '.join(VERDICTS)}.")

    def counts(self, run: Job) -> dict[str, Any]:
        """The run's tally now (call with a run from `find`)."""
        return tally(self.store.votes(self._name(run)))

    def _counted(self, run: Job) -> dict[str, Any]:
        """The run's tally after a vote, also written to its eval/votes.json (the card's)."""
        counts = self.counts(run)
        rf.write_json_atomic(eval_dir(Path(run.run_dir)) / rf.EVAL_VOTES_FILE, counts)
        return counts

    def record(
        self, who: Caller, run_id: object, prompt: str, replies: tuple[str, str], tuned_is: str, verdict: str
    ) -> dict[str, Any]:
        """The caller's blind vote in Compare on their own run: the two replies as shown (A, B), where the tuned one
        was, and the verdict. Returns the run's tally."""
        who.require("vote")
        run = self.service.find(who, run_id)
        self._check(verdict, tuned_is)
        self.store.record(self._name(run), voter(who), prompt, replies, tuned_is, verdict, "compare")
        return self._counted(run)

    # --- vote links

    def _owned(self, who: Caller, run_id: object) -> Job:
        run = self.service.find(who, run_id)
        if not (who.local or run.owner == who.owner):  # an admin may look at a run; only its owner shares it
            raise AccessError("Only the run's owner can share it for votes.")
        return run

    def share(self, who: Caller, run_id: object) -> str:
        """A vote link token for the caller's own evaluated run (the same one until sharing stops).

        Raises:
            AccessError: not the caller's run. ValueError: the run has no evaluation to vote on.
        """
        who.require("share a run for votes")
        run = self._owned(who, run_id)
        if not read_rows(run.run_dir):
            raise ValueError(f"run #{run.id} has no evaluation yet: evaluate it first; people vote on its answers.")
        return self.store.share(self._name(run), who.owner)

    def shared(self, who: Caller, run: Job) -> str | None:
        """The run's vote link token, None when it is not shared (call with a run from `find`)."""
        return self.store.shared(self._name(run)) if (who.local or run.owner == who.owner) else None

    def unshare(self, who: Caller, run_id: object) -> None:
        """End the run's vote link (the votes cast stay)."""
        self.store.unshare(self._name(self._owned(who, run_id)))

    def _linked(self, token: object) -> tuple[Job, list[dict[str, Any]]]:
        """The run a vote link names and its evaluation's rows, one per prompt."""
        name = self.store.run_of(str(token or ""))
        runs = [j for j in self.service.queue.store.list() if not j.on_a_run and Path(j.run_dir).name == name]
        run = runs[0] if runs else None
        if name is None or run is None:
            raise AccessError(BAD_LINK)
        rows, seen = [], set()
        for row in read_rows(run.run_dir):
            if row.get("prompt") and row["prompt"] not in seen:
                seen.add(row["prompt"])
                rows.append(row)
        return run, rows

    def _shown(self, token: str, who: Caller, row: dict[str, Any]) -> tuple[str, tuple[str, str]]:
        """Where the tuned answer is for this voter and prompt, and the two answers in that order."""
        tuned_is = self.store.tuned_side(token, voter(who), row["prompt"])
        tuned, base = row["tuned"]["text"], row["base"]["text"]
        return tuned_is, ((tuned, base) if tuned_is == "a" else (base, tuned))

    def ballot(self, who: Caller, token: object) -> Ballot | None:
        """The next prompt of the link this person has not voted on, None when they have voted on every one.

        Raises:
            AccessError: not signed in (on a Space), or the link is not valid.
        """
        who.require("vote")
        run, rows = self._linked(token)
        voted = self.store.voted(self._name(run), voter(who))
        for index, row in enumerate(rows):
            if prompt_key(row["prompt"]) not in voted:
                _, (a, b) = self._shown(str(token), who, row)
                done = sum(prompt_key(r["prompt"]) in voted for r in rows)
                return Ballot(index, len(rows), done, row["prompt"], a, b)
        return None

    def cast(self, who: Caller, token: object, index: object, verdict: str) -> str:
        """This person's vote through a link on the prompt at `index`: counted once per person and prompt (a second
        vote replaces the first). Returns which side the tuned answer was on ("a" or "b"), revealed after the vote.

        Raises:
            AccessError: not signed in, or the link is not valid. ValueError: no such prompt or verdict.
        """
        who.require("vote")
        run, rows = self._linked(token)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(rows):
            raise ValueError("no such prompt in this vote link.")
        tuned_is, replies = self._shown(str(token), who, rows[index])
        self._check(verdict, tuned_is)
        self.store.record(self._name(run), voter(who), rows[index]["prompt"], replies, tuned_is, verdict, "link")
        self._counted(run)
        return tuned_is
