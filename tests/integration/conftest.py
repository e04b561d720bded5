"""Shared integration fixtures: one full tiny-demo run per session."""

from __future__ import annotations

import pytest

from trainer.config import preset_config
from trainer.training import run


@pytest.fixture(scope="session")
def demo(tiny_model_path, tmp_path_factory):
    """One full tiny-demo run (the same as `python -m trainer demo`): (RunResult with the model, events)."""
    events = []
    result = run(
        preset_config("tiny-demo"), on_event=events.append, run_dir=tmp_path_factory.mktemp("demo"), return_model=True
    )
    return result, events
