"""Merged export: the adapter merged into an unquantised base is pushed as a full model with its own card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow


def test_merged_model_loads_by_id_and_matches_base_plus_adapter(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path, qlora_run_template, tmp_path
):
    """A LoRA run and a QLoRA run (trained on its 4-bit base), each merged into the full-precision base, in one
    client process."""
    qlora_run = Path(shutil.copytree(qlora_run_template[0], tmp_path / "qlora-run"))
    assert yaml.safe_load((qlora_run / "config.yaml").read_text())["model"]["load_in_4bit"]
    runs = {"alice/pirate": trained_run, "alice/qpirate": qlora_run}
    folders = {repo: str(run) for repo, run in runs.items()}
    result = hub_client(f"""
        import torch
        from pathlib import Path
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trainer.hub import push_merged
        from trainer.tools.tiny import ensure_tiny_model

        for repo, folder in {folders!r}.items():
            run = Path(folder)
            url = push_merged(run, repo, {ALICE_TOKEN!r}, backoff_s=0.01)
            tok = AutoTokenizer.from_pretrained(repo + "-merged", token={ALICE_TOKEN!r})  # private by default
            ids = tok.apply_chat_template([{{"role": "user", "content": "Tell me about the moon."}}],
                                          add_generation_prompt=True, return_tensors="pt", return_dict=True)
            merged = AutoModelForCausalLM.from_pretrained(repo + "-merged", token={ALICE_TOKEN!r}).eval()
            base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model()).eval()
            with torch.no_grad():
                plain = base(**ids).logits
                tuned_model = PeftModel.from_pretrained(base, run / "adapter").eval()
                tuned = tuned_model(**ids).logits
                got = merged(**ids).logits
                greedy = dict(max_new_tokens=16, do_sample=False)
                replies = [m.generate(**ids, **greedy)[0].tolist() for m in (merged, tuned_model)]
            emit(**{{repo: dict(url=url, diff=float((got - tuned).abs().max()),
                               moved=float((tuned - plain).abs().max()), same_reply=replies[0] == replies[1])}})
    """)
    for repo, run in runs.items():
        found = result[repo]
        assert found["url"].endswith(f"/{repo}-merged")
        assert found["diff"] < 1e-4 and found["moved"] > 1e-3  # the merge is the adapter, not the plain base
        assert found["same_reply"]  # the merged model's greedy reply is base + adapter's, in full precision
        files = hub_server.files(f"{repo}-merged")
        assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
        assert "adapter_config.json" not in files
        card = files["README.md"].decode()
        assert "library_name: transformers" in card and "- merged" in card and repo in card
        assert (run / "merged" / "model.safetensors").exists()
