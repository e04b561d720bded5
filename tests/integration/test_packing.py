"""Correctness guard for the fast path: padding-free / packed batches give the same loss as padded batches.

Several samples flattened into one sequence must not attend across their boundaries: the per-sample position_ids
that TRL's padding-free collator emits make transformers build a block-diagonal causal mask (sdpa here, FlashAttention
varlen on a GPU). The negative control shows the test would catch cross-sample attention.
"""

from __future__ import annotations

import pytest
import torch

from trainer import data
from trainer.config import preset_config
from trainer.modeling import load_base_model, load_tokenizer

pytestmark = pytest.mark.slow


def _summed_loss(model, batch) -> tuple[float, int]:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss.item(), int((labels != -100).sum())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_batch_matches_padded_batch(tiny_model_path, attn):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # here, not at collection (4 s on 2 cores)

    cfg = preset_config("tiny-demo")
    cfg.model.attn_implementation = attn
    tokenizer = load_tokenizer(cfg.model)
    model = load_base_model(cfg.model).eval()
    rows = data.prepare(cfg.data).train["messages"][:8]
    features = [
        {"input_ids": list(tokenizer.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"])}
        for m in rows
    ]
    assert len({len(f["input_ids"]) for f in features}) > 1  # unequal lengths, so the padded batch has padding

    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(features)
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(features)
    assert flat["input_ids"].shape[0] == 1 and "attention_mask" not in flat  # one row, no padding at all

    padded_loss, padded_tokens = _summed_loss(model, padded)
    flat_loss, flat_tokens = _summed_loss(model, flat)
    assert flat_tokens == padded_tokens
    assert flat_loss == pytest.approx(padded_loss, rel=1e-5)

    # negative control: the same flat row without per-sample positions attends across samples and differs
    leaky = {"input_ids": flat["input_ids"], "labels": flat["labels"]}
    leaky_loss, _ = _summed_loss(model, leaky)
    assert abs(leaky_loss - padded_loss) / padded_loss > 0.01
