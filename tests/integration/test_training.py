"""The training path end to end on the tiny Phi-3 (CPU): LoRA semantics, the demo's learning, events, resume."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import load_config, load_yaml, preset_config
from trainer.modeling import load_base_model, load_tokenizer, lora_config
from trainer.phi3 import END_ID
from trainer.runs import folder as rf
from trainer.runs.folder import loss_drop
from trainer.training import count_parameters, run

pytestmark = pytest.mark.slow

R = 16
HIDDEN, INTERMEDIATE, LAYERS = 128, 256, 2
# (in, out) of Phi-3's fused projections: qkv_proj, o_proj, gate_up_proj, down_proj
PROJECTIONS = [(HIDDEN, 3 * HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 2 * INTERMEDIATE), (INTERMEDIATE, HIDDEN)]
LORA_PARAMS = LAYERS * sum(R * (i + o) for i, o in PROJECTIONS)


def test_only_lora_parameters_are_trainable(tiny_model_path):
    from peft import get_peft_model

    cfg = preset_config("tiny-demo")
    model = get_peft_model(load_base_model(cfg.model), lora_config(cfg.lora))
    trainable, total = count_parameters(model)
    assert trainable == LORA_PARAMS == 57344
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_A" in n or "lora_B" in n for n in names)
    assert total - trainable == sum(p.numel() for p in load_base_model(cfg.model).parameters())


def test_saved_adapter_holds_only_lora_tensors(demo):
    result, _ = demo
    tensors = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert len(tensors) == LAYERS * len(PROJECTIONS) * 2  # an A and a B per adapted module
    assert all(".lora_A." in k or ".lora_B." in k for k in tensors)
    assert sum(t.numel() for t in tensors.values()) == LORA_PARAMS
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == R and sorted(config["target_modules"]) == sorted(
        ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    )


@pytest.fixture(scope="module")
def short_run(tiny_model_path, tmp_path_factory):
    """A short tiny-demo run trained in this process, its model kept in memory (the shared demo keeps none)."""
    overrides = ["max_steps=10", "eval_fraction=0", "sample_prompts=0", "save_steps=10"]
    run_dir = tmp_path_factory.mktemp("short") / "run"
    return run(load_config(preset="tiny-demo", overrides=overrides), run_dir=run_dir, return_model=True)


def test_reloaded_adapter_gives_the_trained_logits_and_base_is_untouched(short_run):
    from peft import PeftModel

    result = short_run
    cfg = preset_config("tiny-demo")
    tokenizer = load_tokenizer(cfg.model)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me about the moon."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    trained = result.model.eval()
    fresh_base = load_base_model(cfg.model, for_training=False)
    reloaded = PeftModel.from_pretrained(fresh_base, result.adapter_dir).eval()
    with torch.no_grad():
        expected = trained(**ids).logits
        actual = reloaded(**ids).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    # the frozen base weights inside the trained model equal a fresh copy of the base; the adapters moved
    base_state = load_base_model(cfg.model).state_dict()
    for name, param in trained.named_parameters():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        torch.testing.assert_close(param.detach(), base_state[key], rtol=0, atol=0)
    assert any(p.abs().sum() > 0 for n, p in trained.named_parameters() if "lora_B" in n)


def test_demo_lowers_held_out_eval_loss_by_at_least_30_percent(demo):
    result, _ = demo
    assert result.eval_loss_before is not None and result.eval_loss_after is not None
    assert loss_drop(result.eval_loss_before, result.eval_loss_after) >= 0.30, (
        result.eval_loss_before,
        result.eval_loss_after,
    )


def test_demo_samples_show_the_persona_after_and_not_before(demo):
    result, _ = demo
    assert len(result.samples) == 3
    for sample in result.samples:
        assert sample["after"].startswith("Ahoy!") and "matey." in sample["after"], sample
        assert sample["after_stopped"]  # generation stopped at the end-of-turn token ...
        assert "<|" not in sample["after"] + sample["before"]  # ... and the replies read as a person reads them
        assert not sample["before"].startswith("Ahoy"), sample
    saved = json.loads((result.run_dir / rf.SAMPLES_FILE).read_text())
    assert [s["after"] for s in saved] == [s["after"] for s in result.samples]


def test_run_folder_contract(demo, demo_pid):
    result, events = demo
    folder = result.run_dir
    assert load_yaml(folder / rf.CONFIG_FILE) == preset_config("tiny-demo")
    status = json.loads((folder / rf.STATUS_FILE).read_text())
    assert status["state"] == "succeeded" and status["step"] == 80
    assert status["eval_loss_after"] == pytest.approx(result.eval_loss_after)
    versions = json.loads((folder / rf.VERSIONS_FILE).read_text())
    assert {"torch", "transformers", "trl", "peft"} <= versions.keys()
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {
        p.name for p in result.adapter_dir.iterdir()
    }
    assert (folder / rf.CHECKPOINTS_DIR / "checkpoint-80").is_dir()
    assert "trainable parameters: 57344" in (folder / rf.LOG_FILE).read_text()
    assert rf.read_events(folder) == events
    assert status["name"] == "tiny-phi3: pirate_chat" and status["pid"] == demo_pid  # the process that trained


def test_the_run_says_which_phase_it_is_in(demo):
    result, _ = demo
    log = (result.run_dir / rf.LOG_FILE).read_text()
    phases = re.findall(r"phase: (.+)", log)
    assert phases == [
        "preparing data",
        "loading the model",
        "evaluating before",
        "training",
        "evaluating after",
        "saving",
    ]
    assert set(phases) <= set(rf.PHASES)
    assert rf.read_json(result.run_dir / rf.STATUS_FILE)["phase"] == "saving"


def test_events_carry_the_metrics(demo):
    _, events = demo
    train = [e for e in events if "loss" in e]
    assert [e["step"] for e in train] == list(range(5, 81, 5))
    for e in train:
        assert e["total_steps"] == 80 and e["lr"] > 0 and e["grad_norm"] >= 0 and e["epoch"] > 0
        assert e["tokens_per_s"] > 0 and e["eta_s"] >= 0
    assert train[-1]["eta_s"] == 0
    evals = [e for e in events if "eval_loss" in e]
    assert [e["step"] for e in evals] == [0, 20, 40, 60, 80]  # before training, then every eval_steps


def test_resume_continues_step_numbers(tiny_model_path, tmp_path):
    cfg = load_config(
        preset="tiny-demo",
        overrides=["max_steps=12", "save_steps=4", "logging_steps=1", "eval_steps=100", "sample_prompts=1"],
    )

    def crash_at_step_6(event):
        if event.get("step") == 6 and "loss" in event:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, on_event=crash_at_step_6, run_dir=tmp_path)
    first = json.loads((tmp_path / rf.STATUS_FILE).read_text())
    assert first["state"] == "failed"
    assert (tmp_path / rf.CHECKPOINTS_DIR / "checkpoint-4").is_dir()

    result = run(cfg, run_dir=tmp_path, resume=True)
    assert result.global_step == 12
    events = rf.read_events(tmp_path)
    assert [e["step"] for e in events if "loss" in e] == list(range(1, 13))
    assert any(e.get("message") == "resumed from checkpoint at step 4" for e in events)
    kept = sorted(p.name for p in (tmp_path / rf.CHECKPOINTS_DIR).glob("checkpoint-*"))
    assert kept == ["checkpoint-12", "checkpoint-8"]  # save_total_limit 2
    assert result.eval_loss_before is not None  # carried over from the first attempt
    assert json.loads((tmp_path / rf.STATUS_FILE).read_text())["started_at"] == first["started_at"]


def test_a_stop_request_saves_a_checkpoint_and_the_run_resumes_from_it(tiny_model_path, tmp_path):
    """Cancel in-process: the trainer itself checkpoints at the step it stops (no other save is due)."""
    from trainer.training import RunCancelled, request_stop

    cfg = load_config(
        preset="tiny-demo",
        overrides=["max_steps=8", "save_steps=1000", "logging_steps=1", "eval_steps=1000", "sample_prompts=0"],
    )

    def stop_at_step_3(event):
        if event.get("step") == 3 and "loss" in event:
            request_stop()  # what the worker's SIGTERM handler does

    with pytest.raises(RunCancelled, match="cancelled at step 4"):  # asked during step 3's log: stops after step 4
        run(cfg, on_event=stop_at_step_3, run_dir=tmp_path)
    assert rf.read_json(tmp_path / rf.STATUS_FILE)["state"] == "cancelled"
    assert sorted(p.name for p in (tmp_path / rf.CHECKPOINTS_DIR).glob("checkpoint-*")) == ["checkpoint-4"]
    assert not (tmp_path / rf.ADAPTER_DIR).exists()  # a cancelled run saves no final adapter
    result = run(cfg, run_dir=tmp_path, resume=True)
    assert result.global_step == 8
    assert [e["step"] for e in rf.read_events(tmp_path) if "loss" in e] == list(range(1, 9))


def test_generation_stops_at_end_of_turn(tiny_model_path):
    from trainer.phi3 import configure_generation

    cfg = preset_config("tiny-demo")
    tokenizer = load_tokenizer(cfg.model)
    model = load_base_model(cfg.model, for_training=False)
    configure_generation(model, tokenizer)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is rain?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=40, do_sample=False)[0, ids["input_ids"].shape[1] :].tolist()
    assert out[-1] == END_ID and END_ID not in out[:-1] and len(out) < 40
    assert tokenizer.pad_token_id not in (END_ID, 32000)


def test_labels_mask_everything_but_assistant_tokens(tiny_model_path, tmp_path):
    from datasets import Dataset

    from trainer.phi3 import ASSISTANT_ID, ENDOFTEXT_ID
    from trainer.training import make_trainer

    cfg = preset_config("tiny-demo")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Rain?"},
        {"role": "assistant", "content": "Wet."},
    ]
    trainer = make_trainer(
        cfg,
        tmp_path,
        load_base_model(cfg.model),
        load_tokenizer(cfg.model),
        Dataset.from_dict({"messages": [messages]}),
        None,
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    # expected: each assistant reply from the token after <|assistant|> through its <|end|>, then the final eos
    expected, inside = [], False
    for i, token in enumerate(ids):
        if inside:
            expected.append(i)
        inside = (inside and token != END_ID) or token == ASSISTANT_ID
    expected.append(len(ids) - 1)
    assert ids[-1] == ENDOFTEXT_ID and ids.count(ASSISTANT_ID) == 2
    assert [i for i, label in enumerate(labels) if label != -100] == expected
    assert all(labels[i] == ids[i] for i in expected)
    assert len(expected) < len(ids) / 2  # system, user and role tokens carry no loss
