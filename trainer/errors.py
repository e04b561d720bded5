"""How failures travel: the worker's exit codes and walking an exception's cause chain.

The lowest floor of the package, beside `trainer.paths`: it imports nothing from `trainer`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
"""Bad config, data, Hub access or chat setup, found before any model is loaded (the message says the fix)."""
EXIT_CANCELLED = 3
"""The run was cancelled (SIGTERM): a checkpoint was saved and the run can be resumed."""
EXIT_PUSH_FAILED = 4
"""Trained and saved locally; the push to the Hub failed (retry with `python -m trainer push RUN_DIR`)."""
EXIT_TIME_LIMIT = 5
"""Stopped at the per-run training time limit (a Space's limit): a checkpoint was saved, the run can be resumed."""


def exception_chain(exc: BaseException) -> list[BaseException]:
    """exc, then its cause (or context), then that one's ..., each once (libraries wrap the error that matters)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
