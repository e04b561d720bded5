"""What the model is really fed in a run: padding-free batches by default, packed rows with packing, padded rows
when padding-free is off. Checked with a hook on the model's forward inside `run()`, not on TRL's collator alone."""

from __future__ import annotations

import pytest

from trainer.config import load_config
from trainer.phi3 import UNK_ID

pytestmark = pytest.mark.slow
BATCH = 8


def _batches(monkeypatch, tmp_path, *overrides: str) -> list[dict]:
    """Run 2 training steps and record every training forward's input_ids and position_ids."""
    import trainer.training as training

    seen: list[dict] = []
    real = training.make_trainer

    def recording(*args, **kwargs):
        trainer = real(*args, **kwargs)

        def hook(module, args, kwargs):
            if module.training:  # evaluation and sample generation run in eval mode
                seen.append({k: kwargs.get(k) for k in ("input_ids", "position_ids", "attention_mask")})

        trainer.model.register_forward_pre_hook(hook, with_kwargs=True)
        return trainer

    monkeypatch.setattr(training, "make_trainer", recording)
    cfg = load_config(
        preset="tiny-demo",
        overrides=["max_steps=2", "eval_steps=100", "save_steps=100", "sample_prompts=0", *overrides],
    )
    training.run(cfg, run_dir=tmp_path / "run")
    assert len(seen) == 2
    return seen


def _sequences(position_ids) -> int:
    """Rows flattened into one sequence: each starts again at position 0."""
    return int((position_ids == 0).sum())


def test_default_runs_feed_padding_free_batches(tiny_model_path, tmp_path, monkeypatch):
    for batch in _batches(monkeypatch, tmp_path):
        ids, positions = batch["input_ids"], batch["position_ids"]
        assert ids.shape[0] == 1 and _sequences(positions) == BATCH  # 8 rows, one flat sequence, no padding
        assert UNK_ID not in ids.tolist()[0]  # no pad token anywhere


def test_packing_feeds_packed_rows(tiny_model_path, tmp_path, monkeypatch):
    for batch in _batches(monkeypatch, tmp_path, "packing=true"):
        positions = batch["position_ids"]
        assert _sequences(positions) > 2 * BATCH  # each of the 8 packed rows holds several conversations
        assert batch["input_ids"].numel() > 4 * BATCH * 27  # far more tokens than 8 unpacked (~27-token) rows


def test_padding_free_off_feeds_padded_rows(tiny_model_path, tmp_path, monkeypatch):
    for batch in _batches(monkeypatch, tmp_path, "padding_free=false"):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape[0] == BATCH and mask is not None and int((mask == 0).sum()) > 0  # padded to the longest
