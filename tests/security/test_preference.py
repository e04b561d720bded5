"""Preference runs follow the same access policy as any run: a visitor starts nothing, and a method the data cannot
serve is refused at Start, before anything is queued."""

from __future__ import annotations

from .conftest import ALICE_OAUTH, oauth, profile

ALICE = profile("alice")
PAIRS = "examples/pirate_pairs.jsonl"


def test_a_visitor_starts_no_dpo_run(space):
    before = space.manager.store.list()
    outputs = space.fns["start"](space.form(method="dpo", dataset_name=PAIRS), None, None)
    assert "Sign in with Hugging Face" in outputs[0]
    assert space.manager.store.list() == before


def test_dpo_on_data_without_pairs_is_refused_before_it_is_queued(space):
    before = space.manager.store.list()
    outputs = space.fns["start"](
        space.form(method="dpo", dataset_name="examples/pirate_chat.jsonl"), ALICE, oauth(ALICE_OAUTH)
    )
    assert "DPO trains on preferences, but this data is 'messages' rows" in outputs[0]
    assert "Use method sft for it" in outputs[0]
    assert space.manager.store.list() == before  # nothing queued, no GPU time spent


def test_kto_labels_for_orpo_are_refused_with_the_method_that_fits(space):
    rows = space.data_dir / "uploads" / "alice" / "0123456789abcdef.jsonl"  # a file alice uploaded
    rows.parent.mkdir(parents=True, exist_ok=True)
    rows.write_text('{"prompt": "Hi", "completion": "Ahoy!", "label": true}\n' * 4)
    before = space.manager.store.list()
    outputs = space.fns["start"](space.form(method="orpo", dataset_name=str(rows)), ALICE, oauth(ALICE_OAUTH))
    assert "ORPO needs a chosen and a rejected reply" in outputs[0] and "Use method kto" in outputs[0]
    assert space.manager.store.list() == before
