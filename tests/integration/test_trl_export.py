"""The demo run's trl_sft.yaml, as "Download for TRL" serves it, runs with stock `trl sft` and trains the same LoRA."""

from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import pytest

from trainer.config import load_yaml
from trainer.runs import folder as rf
from trainer.trl_export import TRL_FILE

pytestmark = pytest.mark.slow


def test_trl_sft_runs_the_downloaded_config_and_writes_the_runs_lora(demo, tmp_path, tiny_model_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl.cli.main import main as trl_main

    from trainer.runs.service import RunService

    result, _ = demo
    job = SimpleNamespace(id=1, run_dir=str(result.run_dir))
    with zipfile.ZipFile(RunService.trl_archive(job, tmp_path / "download" / "run-1-trl")) as archive:
        assert sorted(archive.namelist()) == ["trl_data/", "trl_data/test.jsonl", "trl_data/train.jsonl", TRL_FILE]
        archive.extractall(tmp_path)
    rows = (tmp_path / "trl_data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 216 and set(json.loads(rows[0])) == {"messages"}  # the pirate rows less the held-out ones
    # `trl sft --config trl_sft.yaml` in the unpacked folder, one step: TRL's own CLI entry point (what the `trl`
    # command runs), here in this process, where torch and TRL are imported already; it parses the file and has
    # `accelerate launch` start the training script in a subprocess, as from a shell (a failure raises)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the training process's datasets cache
    assert trl_main(["sft", "--config", TRL_FILE, "--max_steps", "1", "--eval_strategy", "no"]) == 0
    out = tmp_path / "trl-output"
    adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))  # an adapter, not a full model
    lora = load_yaml(result.run_dir / rf.CONFIG_FILE).lora
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (lora.r, lora.lora_alpha, 0.0)
    assert sorted(adapter["target_modules"]) == sorted(lora.target_modules)
    assert not list(out.glob("model*.safetensors"))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), out)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) == 57344  # r 16 on the four projections
