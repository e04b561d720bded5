"""Merged export: the adapter merged into an unquantised base is pushed as a full model with its own card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("qlora", [False, True])
def test_merged_model_loads_by_id_and_matches_base_plus_adapter(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path, qlora_run_template, tmp_path, qlora: bool
):
    if qlora:  # a QLoRA run (trained on its 4-bit base) merges into the full-precision base
        trained_run = Path(shutil.copytree(qlora_run_template[0], tmp_path / "qlora-run"))
        assert yaml.safe_load((trained_run / "config.yaml").read_text())["model"]["load_in_4bit"]
    result = hub_client(f"""
        import torch
        from pathlib import Path
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trainer.hub import push_merged
        from trainer.tiny import ensure_tiny_model

        run = Path({str(trained_run)!r})
        url = push_merged(run, "alice/pirate", {ALICE_TOKEN!r}, backoff_s=0.01)
        tok = AutoTokenizer.from_pretrained("alice/pirate-merged", token={ALICE_TOKEN!r})  # private by default
        ids = tok.apply_chat_template([{{"role": "user", "content": "Tell me about the moon."}}],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True)
        merged = AutoModelForCausalLM.from_pretrained("alice/pirate-merged", token={ALICE_TOKEN!r}).eval()
        base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model()).eval()
        with torch.no_grad():
            plain = base(**ids).logits
            tuned_model = PeftModel.from_pretrained(base, run / "adapter").eval()
            tuned = tuned_model(**ids).logits
            got = merged(**ids).logits
            greedy = dict(max_new_tokens=16, do_sample=False)
            replies = [m.generate(**ids, **greedy)[0].tolist() for m in (merged, tuned_model)]
        emit(url=url, diff=float((got - tuned).abs().max()), moved=float((tuned - plain).abs().max()),
             same_reply=replies[0] == replies[1])
    """)
    assert result["url"].endswith("/alice/pirate-merged")
    assert result["diff"] < 1e-4 and result["moved"] > 1e-3  # the merge is the adapter, not the plain base
    assert result["same_reply"]  # the merged model's greedy reply is base + adapter's, in full precision
    files = hub_server.files("alice/pirate-merged")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert "adapter_config.json" not in files
    card = files["README.md"].decode()
    assert "library_name: transformers" in card and "- merged" in card and "alice/pirate" in card
    assert (trained_run / "merged" / "model.safetensors").exists()
