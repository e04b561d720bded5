"""The model card's usage snippet, run as written, gives the tuned model's reply (on a run where tuning changed it)."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from trainer.hub import model_card
from trainer.runs import folder as rf

pytestmark = pytest.mark.slow


def test_the_card_snippet_reproduces_the_tuned_reply(demo):
    result, _ = demo
    sample = rf.read_json(result.run_dir / rf.SAMPLES_FILE)[0]
    assert sample["after"] != sample["before"]  # the demo run changed the reply, so base-only would be caught
    card = model_card(result.run_dir, repo_id=str(result.adapter_dir))  # a local adapter folder stands in for a repo
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "model-card-snippet", "exec"), {})
    assert sample["after_stopped"]
    assert printed.getvalue().strip() == sample["after"]
