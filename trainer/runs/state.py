"""A run's state: `RunState`, the only spelling of it (the job table, status.json, the Runs tab, the CLI).

A `StrEnum`, so a state is stored and shown as its plain value (``"push_failed"``) and a value read back from the
job table or a run folder compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PUSH_FAILED = "push_failed"
    """Trained and saved here; the push to the Hub failed (retry it from the Runs tab or the CLI)."""
    INTERRUPTED = "interrupted"
    """The server stopped under it (resumable from a checkpoint)."""
    TIME_LIMIT = "time_limit"
    """Stopped at the per-run training limit, with a checkpoint (resumable)."""

    @property
    def finished(self) -> bool:
        """The run is over, one way or another."""
        return self in FINISHED

    @property
    def trained(self) -> bool:
        """Training finished and the adapter is saved: it can be chatted with, pushed, continued."""
        return self in TRAINED


ACTIVE = frozenset({RunState.QUEUED, RunState.RUNNING})
"""Runs that count against a user's limit of runs queued or training."""
FINISHED = frozenset(RunState) - ACTIVE
TRAINED = frozenset({RunState.SUCCEEDED, RunState.PUSH_FAILED})
RESUMABLE = frozenset({RunState.FAILED, RunState.CANCELLED, RunState.INTERRUPTED, RunState.TIME_LIMIT})
"""Runs that stopped before the end; with a checkpoint they can be resumed."""


def state_of(value: object) -> RunState | None:
    """The state a stored value names (a run folder may be from another version, or damaged), else None."""
    try:
        return RunState(value)
    except ValueError:
        return None
