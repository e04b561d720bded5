"""What the model is really fed in a run: padding-free batches by default, packed rows with packing, padded rows
when padding-free is off. Checked with a hook on the model's forward inside `run()`, not on TRL's collator alone."""

from __future__ import annotations

import pytest

from trainer.config import load_config
from trainer.phi3 import UNK_ID
from trainer.training import RunResult

pytestmark = pytest.mark.slow
BATCH = 8


def _batches(monkeypatch, tmp_path, *overrides: str, steps: int = 2) -> tuple[RunResult, list[dict]]:
    """Run `steps` training steps and record every training forward's input_ids and position_ids."""
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
        overrides=[f"max_steps={steps}", "eval_steps=100", "save_steps=100", "sample_prompts=0", *overrides],
    )
    result = training.run(cfg, run_dir=tmp_path / "run")
    assert len(seen) == steps
    return result, seen


@pytest.fixture(scope="module")
def packed(tiny_model_path, tmp_path_factory) -> tuple[RunResult, list[dict]]:
    """One packed run, read by two tests: 3 steps, evaluated before and after."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        overrides = ("packing=true", "eval_steps=3", "save_steps=3")
        return _batches(monkeypatch, tmp_path_factory.mktemp("packed"), *overrides, steps=3)


def _sequences(position_ids) -> int:
    """Rows flattened into one sequence: each starts again at position 0."""
    return int((position_ids == 0).sum())


def test_default_runs_feed_padding_free_batches(tiny_model_path, tmp_path, monkeypatch):
    for batch in _batches(monkeypatch, tmp_path)[1]:
        ids, positions = batch["input_ids"], batch["position_ids"]
        assert ids.shape[0] == 1 and _sequences(positions) == BATCH  # 8 rows, one flat sequence, no padding
        assert UNK_ID not in ids.tolist()[0]  # no pad token anywhere


def test_packing_feeds_packed_rows(packed):
    for batch in packed[1]:
        positions = batch["position_ids"]
        assert _sequences(positions) > 2 * BATCH  # each of the 8 packed rows holds several conversations
        assert batch["input_ids"].numel() > 4 * BATCH * 27  # far more tokens than 8 unpacked (~27-token) rows


def test_padding_free_off_feeds_padded_rows(tiny_model_path, tmp_path, monkeypatch):
    for batch in _batches(monkeypatch, tmp_path, "padding_free=false")[1]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape[0] == BATCH and mask is not None and int((mask == 0).sum()) > 0  # padded to the longest


def test_packed_training_runs_on_cpu(packed):
    result, _ = packed
    assert result.global_step == 3 and result.eval_loss_after < result.eval_loss_before
