"""GRPO on the tiny Phi-3 (CPU): the tiny-demo-grpo preset raises its mean reward on held-out prompts, logs each
reward function, records completions with the rewards they earned, and saves only the LoRA weights; a local reward
module adds its functions; data a reward cannot be computed on is refused before any model loads."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from tests.cli import run_cli
from trainer.config import load_config
from trainer.runs import folder as rf
from trainer.training import run

pytestmark = pytest.mark.slow

MODULE = """
def reward_ends_with_a_full_stop(completions, **kwargs):
    return [1.0 if c[0]["content"].strip().endswith(".") else 0.0 for c in completions]
"""


@pytest.fixture(scope="module")
def grpo_run(tiny_model_path, tmp_path_factory):
    """The tiny-demo-grpo preset, trained for half its steps: (RunResult, events, status)."""
    events: list[dict] = []
    run_dir = tmp_path_factory.mktemp("grpo") / "run"
    cfg = load_config(preset="tiny-demo-grpo", overrides=["max_steps=30", "sample_prompts=1"])
    result = run(cfg, on_event=events.append, run_dir=run_dir)
    return result, events, rf.read_json(run_dir / rf.STATUS_FILE)


def test_grpo_raises_the_mean_reward_on_held_out_prompts(grpo_run):
    _, _, status = grpo_run
    before, after = status["reward_before"], status["reward_after"]
    # measured 2026-12-07 (2 cores, 30 steps): 0.483 -> 0.742 (length_target 0.400 -> 0.596, words 0.167 -> 0.292)
    assert before["prompts"] == after["prompts"] == 24  # the held-out tenth of the 240 prompts, greedy completions
    assert after["reward"] > before["reward"] + 0.15, (before, after)
    assert after["rewards/length_target"] > before["rewards/length_target"]
    weighted = after["rewards/length_target"] + 0.5 * after["rewards/words"]  # the preset's weights: 1.0 and 0.5
    assert after["reward"] == pytest.approx(weighted, abs=1e-3)


def test_trl_trains_on_the_weighted_rewards_and_logs_each_function(grpo_run):
    _, events, _ = grpo_run
    logged = [e for e in events if "loss" in e]
    assert logged and all("rewards/length_target/mean" in e and "rewards/words/mean" in e for e in logged)
    for e in logged:  # TRL's total is the weighted sum: the weights reached GRPOConfig.reward_weights
        assert e["reward"] == pytest.approx(e["rewards/length_target/mean"] + 0.5 * e["rewards/words/mean"], abs=1e-3)
        assert {"reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio"} <= set(e)
    lengths = [e["completions/mean_length"] for e in logged]
    assert sum(lengths[-3:]) / 3 > sum(lengths[:3]) / 3  # rewarded for length, the completions grew


def test_completions_are_recorded_every_few_logs_with_the_rewards_they_earned(grpo_run):
    _, events, _ = grpo_run
    recorded = [e for e in events if "completions" in e]
    assert [e["step"] for e in recorded] == [2, 12, 22]  # the first log, then every 5th (logging_steps 2)
    for event in recorded:
        assert len(event["completions"]) == 4
        for c in event["completions"]:
            assert c["prompt"].endswith("?") and c["completion"] and not c["completion"].startswith(c["prompt"])
            words = len(c["completion"].split())
            assert c["rewards"]["length_target"] == pytest.approx(max(0.0, 1 - abs(words - 20) / 20), abs=1e-3)
            assert c["reward"] == pytest.approx(c["rewards"]["length_target"] + 0.5 * c["rewards"]["words"], abs=1e-3)


def test_a_grpo_run_saves_only_the_lora_weights_and_answers_its_sample(grpo_run):
    from trainer.methods import result_summary

    result, _, status = grpo_run
    tensors = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert tensors and all(".lora_A." in k or ".lora_B." in k for k in tensors)
    assert len(result.samples) == 1 and result.samples[0]["before"] and result.samples[0]["after"]
    assert status["state"] == "succeeded" and result.eval_loss_before is None  # no loss to report: the reward is
    (line,) = result_summary(result.run_dir)
    assert line.startswith(f"mean reward on 24 held-out prompts: {status['reward_before']['reward']:.3f} -> ")


def test_a_local_reward_module_adds_its_functions(tiny_model_path, tmp_path):
    module = tmp_path / "my_rewards.py"
    module.write_text(MODULE)
    overrides = ["max_steps=2", "sample_prompts=0", f"grpo.reward_module={module}", "eval_fraction=0.02"]
    events: list[dict] = []
    run(load_config(preset="tiny-demo-grpo", overrides=overrides), events.append, tmp_path / "run")
    assert all("rewards/reward_ends_with_a_full_stop/mean" in e for e in events if "loss" in e)
    status = rf.read_json(tmp_path / "run" / rf.STATUS_FILE)
    assert "rewards/reward_ends_with_a_full_stop" in status["reward_after"]


def test_a_reward_module_is_refused_on_a_space_and_its_flag_does_not_exist_there(tmp_path):
    module = tmp_path / "my_rewards.py"
    ran = tmp_path / "ran"
    module.write_text(f"import pathlib; pathlib.Path({str(ran)!r}).write_text('the module ran')\n" + MODULE)
    space = {"OAUTH_CLIENT_ID": "x", "SPACE_ID": "owner/studio"}
    no_flag = run_cli("train", "--preset", "tiny-demo-grpo", "--reward-module", str(module), env=space)
    assert no_flag.returncode == 2 and "unrecognized arguments: --reward-module" in no_flag.stderr
    by_set = run_cli("train", "--preset", "tiny-demo-grpo", "--set", f"grpo.reward_module={module}", env=space)
    assert by_set.returncode == 2 and "only a local run may name one" in by_set.stderr + by_set.stdout
    assert not ran.exists()  # never imported
    local = run_cli("train", "--help")
    assert "--reward-module" in local.stdout  # locally the flag is there


def test_a_reward_whose_column_is_missing_is_refused_before_any_model_loads(tiny_model_path, tmp_path, monkeypatch):
    import trainer.modeling
    from trainer.data import DataError
    from trainer.preflight import check_before_queueing

    cfg = load_config(preset="tiny-demo-grpo", overrides=["grpo.rewards=answer_match:1.0, length_target:0.5"])
    (problem,) = check_before_queueing(cfg, on_gpu=False)
    assert problem.startswith("grpo.answer_column: reward answer_match needs a column with the reference answer")
    assert "no 'answer' column (it has prompt, completion)" in problem

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(trainer.modeling, "load_base_model", no_model)
    with pytest.raises(DataError, match="reward answer_match needs a column"):
        run(cfg, run_dir=tmp_path / "run")
    cfg.grpo.answer_column = "completion"  # the pirate reply as the reference: now it can be computed
    assert check_before_queueing(cfg, on_gpu=False) == []


def test_the_card_names_grpo_its_rewards_and_weights_and_the_reward_before_and_after(grpo_run):
    from huggingface_hub import ModelCard

    from trainer.hub import model_card

    result, _, status = grpo_run
    text = model_card(result.run_dir, "alice/phi3-grpo")
    card = ModelCard(text)
    assert "grpo" in card.data.tags and "TRL's `GRPOTrainer`" in text
    assert "Method GRPO: rewards length_target (weight 1), words (weight 0.5); 4 completions per prompt" in text
    before, after = status["reward_before"]["reward"], status["reward_after"]["reward"]
    assert "| | mean reward (held-out prompts) |" in text
    assert f"| base model (before training) | {before:.4f} |" in text and f"| {after:.4f} |" in text
    assert f"Mean reward on 24 held-out prompts: {before:.3f} -> {after:.3f} (length_target" in text


def test_a_published_config_names_a_reward_module_by_its_file_name_only():
    from trainer.hub.card import public_config_text

    text = public_config_text("grpo:\n  reward_module: /home/alice/secret/my_rewards.py\n")
    assert "my_rewards.py" in text and "/home/alice" not in text


def test_stock_trl_grpo_runs_the_download_with_the_same_rewards(grpo_run, tmp_path, monkeypatch):
    """`trl grpo --config trl_grpo.yaml` in the unpacked "Download for TRL" zip: TRL imports the run's rewards from
    the folder and, from the same seed, its first two steps score what the studio's first two steps scored."""
    import json
    import zipfile
    from types import SimpleNamespace

    from trl.cli.main import main as trl_main

    from trainer.runs.service import RunService

    result, events, _ = grpo_run
    job = SimpleNamespace(id=1, run_dir=str(result.run_dir))
    with zipfile.ZipFile(RunService.trl_archive(job, tmp_path / "download" / "run-1-trl")) as archive:
        names = sorted(archive.namelist())
        archive.extractall(tmp_path)
    assert names == sorted(
        ["trl_data/", "trl_data/test.jsonl", "trl_data/train.jsonl", "trl_grpo.yaml", "trl_rewards.py"]
        + ["studio_rewards.py"]
    )
    assert "reward_weights:\n- 1.0\n- 0.5\n" in (tmp_path / "trl_grpo.yaml").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert trl_main(["grpo", "--config", "trl_grpo.yaml", "--max_steps", "2", "--eval_strategy", "no"]) == 0
    state = json.loads((tmp_path / "trl-output" / "checkpoint-2" / "trainer_state.json").read_text(encoding="utf-8"))
    trl_first = state["log_history"][0]
    ours = next(e for e in events if "reward" in e)
    assert ours["step"] == trl_first["step"] == 2
    for key in ("reward", "rewards/length_target/mean", "rewards/words/mean"):
        assert trl_first[key] == pytest.approx(ours[key], abs=1e-6), key


def test_grpo_on_a_4bit_base_and_after_sft_from_its_adapter(demo, tmp_path):
    """QLoRA GRPO (bitsandbytes' CPU backend), and GRPO continuing the SFT demo's adapter (its LoRA settings kept)."""
    from trainer.training import continued_from

    base = ["max_steps=2", "sample_prompts=0", "eval_fraction=0.02"]
    four_bit = load_config(preset="tiny-demo-grpo", overrides=[*base, "model.load_in_4bit=true"])
    qlora = run(four_bit, None, tmp_path / "q")
    assert qlora.global_step == 2 and "4-bit True" in (tmp_path / "q" / rf.LOG_FILE).read_text()
    sft, _ = demo
    cfg = load_config(preset="tiny-demo-grpo", overrides=[*base, f"model.adapter_name_or_path={sft.run_dir}"])
    parent, cfg = continued_from(cfg)
    events: list[dict] = []
    result = run(cfg, events.append, tmp_path / "c")
    assert result.global_step == 2 and parent["name"]
    assert any("rewards/length_target/mean" in e for e in events)
    assert "reward_after" in rf.read_json(tmp_path / "c" / rf.STATUS_FILE)
