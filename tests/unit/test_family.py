"""The Phi family's table (trainer.family): each member built from its config on the meta device has the parameters
the estimate counts, the fused projections LoRA targets, and its own attention shape (grouped-query attention, head
size, partial rotary factor); the estimate reads that shape without a download.

Sources (no Hub here; read 2026-12-08): Phi-3-mini's config.json is the bundled one; Phi-3-medium's, Phi-4-mini's and
Phi-4's as quoted in public code (see trainer/family.py). Known totals: Phi-3-mini 3,821,079,552 (keras-hub's preset
metadata), Phi-3-medium ~14 B, Phi-4-mini 3.8 B, Phi-4 14.7 B (their model cards)."""

from __future__ import annotations

import pytest
import torch

from trainer.estimate.memory import ModelShape, model_shape
from trainer.family import FAMILY

PROJECTIONS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


def _meta_model(config: dict):
    from transformers import Phi3Config, Phi3ForCausalLM

    with torch.device("meta"):
        return Phi3ForCausalLM(Phi3Config(**config))


@pytest.mark.parametrize("model_id", list(FAMILY))
def test_each_member_has_the_parameters_and_projections_the_estimate_counts(model_id):
    member = FAMILY[model_id]
    model = _meta_model(member.config)
    real = sum(p.numel() for p in model.parameters())
    assert model_shape(model_id).n_params == ModelShape.from_config(member.config).n_params == real
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert set(PROJECTIONS) <= names  # LoRA's targets exist in every member


@pytest.mark.parametrize(
    ("model_id", "billions", "qkv_out", "head_dim", "rotary_dim"),
    [
        ("microsoft/Phi-3-mini-4k-instruct", 3.82, 3 * 3072, 96, 96),
        ("microsoft/Phi-3.5-mini-instruct", 3.82, 3 * 3072, 96, 96),
        ("microsoft/Phi-3-medium-4k-instruct", 13.96, (40 + 2 * 10) * 128, 128, 128),  # grouped-query attention
        ("microsoft/Phi-4-mini-instruct", 3.84, (24 + 2 * 8) * 128, 128, 96),  # partial rotary 0.75
        ("microsoft/phi-4", 14.66, (40 + 2 * 10) * 128, 128, 128),
    ],
)
def test_the_attention_shape_of_each_member(model_id, billions, qkv_out, head_dim, rotary_dim):
    member = FAMILY[model_id]
    model = _meta_model(member.config)
    attention = model.model.layers[0].self_attn
    assert attention.qkv_proj.out_features == qkv_out == model_shape(model_id).linears()["qkv_proj"][1]
    assert attention.head_dim == head_dim == model_shape(model_id).head_dim
    assert model.model.rotary_emb.inv_freq.shape[0] * 2 == rotary_dim  # rotary frequencies: half the rotated dims
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.01)


def test_grouped_query_attention_makes_the_kv_cache_smaller_in_the_estimate():
    medium, full = (
        model_shape("microsoft/Phi-3-medium-4k-instruct"),
        ModelShape.from_config({**FAMILY["microsoft/Phi-3-medium-4k-instruct"].config, "num_key_value_heads": 40}),
    )
    assert medium.kv_heads == 10 and full.kv_heads == 40
    assert medium.n_params < full.n_params  # 10 key/value heads, not 40: fewer qkv weights


def test_phi4_minis_embeddings_are_tied_and_counted_once():
    shape = model_shape("microsoft/Phi-4-mini-instruct")
    assert shape.tied and shape.vocab == 200064
    untied = ModelShape.from_config({**FAMILY["microsoft/Phi-4-mini-instruct"].config, "tie_word_embeddings": False})
    assert untied.n_params - shape.n_params == 200064 * 3072
