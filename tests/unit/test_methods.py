"""The training method reaches TRL: each method's config class gets the form's settings under TRL's names, and the
preference data is prepared for it (or refused, before any model loads)."""

from __future__ import annotations

import pytest

from trainer.callbacks import logged_metrics
from trainer.config import ConfigError, load_config, preset_config
from trainer.data import DataError
from trainer.data.preferences import convert, prepare_preferences
from trainer.methods import config_class, preference_config, preference_metrics, result_summary, sample_conversations


def _config(method: str, *overrides: str):
    return load_config(preset="tiny-demo-dpo", overrides=[f"training.method={method}", *overrides])


@pytest.mark.parametrize(("method", "name"), [("dpo", "DPOConfig"), ("kto", "KTOConfig"), ("orpo", "ORPOConfig")])
def test_each_method_gets_its_own_trl_config_with_the_forms_settings(method, name, tmp_path):
    cfg = _config(method, "preference.beta=0.3", "training.learning_rate=0.0005", "training.max_steps=7")
    args = preference_config(cfg, tmp_path, has_eval=True)
    assert type(args).__name__ == name and type(args) is config_class(method)
    assert (args.beta, args.learning_rate, args.max_steps, args.max_length) == (0.3, 0.0005, 7, 128)
    assert args.output_dir == str(tmp_path / "checkpoints") and args.eval_strategy == "steps"


def test_dpo_takes_its_loss_and_kto_its_weights(tmp_path):
    assert preference_config(_config("dpo", "preference.loss_type=ipo"), tmp_path, True).loss_type == ["ipo"]
    kto = preference_config(
        _config("kto", "preference.desirable_weight=1.5", "preference.undesirable_weight=3"), tmp_path, True
    )
    assert (kto.desirable_weight, kto.undesirable_weight) == (1.5, 3.0)


def test_a_bad_method_or_beta_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="training.method"):
        _config("ppo")
    with pytest.raises(ConfigError, match="preference.beta"):
        _config("dpo", "preference.beta=-1")


def test_the_bundled_pairs_are_prepared_as_trl_rows_with_a_held_out_share():
    prepared = prepare_preferences(preset_config("tiny-demo-dpo").data, "dpo")
    assert prepared.format == "prompt_pairs" and (len(prepared.train), len(prepared.eval)) == (216, 24)
    row = prepared.train[0]
    assert row["prompt"] == [{"role": "user", "content": "What do you think about rain?"}]
    assert row["chosen"][0]["content"].startswith("Ahoy!") and not row["rejected"][0]["content"].startswith("Ahoy")
    samples = sample_conversations(prepared.eval, 2)
    assert len(samples) == 2 and samples[0][-1]["content"].startswith("Ahoy!")  # answered as the chosen side


def test_kto_on_pairs_trains_both_the_desirable_and_the_undesirable_replies():
    prepared = prepare_preferences(preset_config("tiny-demo-dpo").data, "kto")
    labels = list(prepared.train["label"]) + list(prepared.eval["label"])
    assert len(labels) == 480 and labels.count(True) == labels.count(False) == 240


def test_sft_data_for_dpo_is_refused_before_anything_loads():
    cfg = preset_config("tiny-demo").data  # pirate_chat.jsonl: messages, no pairs
    with pytest.raises(DataError, match="training.method: DPO trains on preferences, but this data is 'messages'"):
        prepare_preferences(cfg, "dpo")


def test_a_system_prompt_goes_first_and_malformed_rows_are_counted():
    rows = [{"prompt": "Hi", "chosen": "Ahoy!", "rejected": "Hello."}, {"prompt": "Hi", "chosen": 3, "rejected": "x"}]
    out, account = convert(rows, "prompt_pairs", "dpo", system_prompt="Talk like a pirate.")
    assert out[0]["prompt"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert account.problems == ["row 2: chosen is int, expected text or a list of {role, content} messages"]
    assert "1 pairs" in account.notes[0] and account.numbers == [1]


def test_the_preference_metrics_are_kept_without_their_prefix():
    metrics = {"eval_loss": 0.7, "eval_rewards/accuracies": 0.75, "eval_rewards/margins": 1.23456, "epoch": 1}
    assert preference_metrics(metrics) == {"rewards/accuracies": 0.75, "rewards/margins": 1.2346}
    logs = {"loss": 0.6, "rewards/chosen": 0.5, "logps/rejected": -40.0, "kl": 0.1, "grad_norm": 2.0, "note": "x"}
    assert logged_metrics(logs) == {"rewards/chosen": 0.5, "logps/rejected": -40.0, "kl": 0.1}


def test_a_finished_run_prints_its_loss_and_for_a_preference_method_its_accuracy_and_margin(tmp_path):
    from trainer.runs import folder as rf

    rf.write_status(tmp_path, "succeeded", eval_loss_before=0.6931, eval_loss_after=0.0055)
    assert result_summary(tmp_path) == ["eval loss 0.6931 -> 0.0055 (99.2 % lower)"]  # SFT: the loss alone
    before = {"rewards/accuracies": 0.0, "rewards/margins": 0.0}
    rf.write_status(
        tmp_path,
        None,
        preference_before=before,
        preference_after={"rewards/accuracies": 1.0, "rewards/margins": 5.381},
    )
    assert result_summary(tmp_path)[1:] == [
        "held-out preference accuracy: 0.000 -> 1.000",
        "held-out reward margin: 0.000 -> 5.381",
    ]


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo"])
def test_every_preference_method_may_continue_from_an_adapter(method):
    assert _config(method, "model.adapter_name_or_path=alice/pirate-lora").training.method == method


def test_the_preview_of_preference_data_counts_measures_and_shows_its_pairs(phi3_tokenizer):
    from trainer.data import preview

    shown = preview(preset_config("tiny-demo-dpo").data, phi3_tokenizer, 128)
    (note,) = [n for n in shown.notes if n.startswith("Preference pairs")]
    assert ": 240; 0 with the same reply on both sides and 0 with an empty reply" in note
    prompt, chosen, rejected = shown.pairs[0]  # side by side
    assert (prompt, chosen) == ("What do you think about rain?", "Ahoy! Rain be water falling from the clouds, matey.")
    assert rejected == "Rain is water falling from the clouds."
    # each pair's two sequences, measured: chosen as the SFT row it also is; rejected shorter here (no "Ahoy", "matey")
    assert len(shown.pair_lengths) == 240 and [c for c, _ in shown.pair_lengths] == shown.measured
    rejected_row = [{"role": "user", "content": prompt}, {"role": "assistant", "content": rejected}]
    tokens = phi3_tokenizer.apply_chat_template(rejected_row, tokenize=True)["input_ids"]
    assert shown.pair_lengths[0][1] == len(tokens)
    assert all(r < c for c, r in shown.pair_lengths)


def test_a_dpo_stage_after_sft_takes_dpos_data_and_settings_and_keeps_the_model_and_lora():
    from trainer.config import stage_config

    sft = load_config(
        preset="qlora",
        overrides=[
            "data.dataset_name=alice/chats",
            "learning_rate=0.0002",
            "lora.r=32",
            "hub.repo_id=alice/phi3-chat",
        ],
    )
    dpo = stage_config(sft, "dpo")
    assert dpo.training.method == "dpo" and sft.training.method == "sft"  # a new config; the parent's is untouched
    assert dpo.data.dataset_name == "trl-lib/ultrafeedback_binarized"  # the dpo preset's data and settings ...
    assert dpo.training.learning_rate == 5e-6 and dpo.training.gradient_accumulation_steps == 8
    assert dpo.model.load_in_4bit and dpo.lora.r == 32  # ... on the parent's (4-bit) model and LoRA settings
    assert dpo.hub.repo_id == "alice/phi3-chat-dpo"  # never pushed over the SFT adapter
    assert dpo.problems() == []
    tiny = stage_config(preset_config("tiny-demo"), "dpo")
    assert tiny.data.dataset_name == "examples/pirate_pairs.jsonl" and tiny.training.max_steps == 40
    kto = stage_config(sft, "kto")  # no kto preset: the parent's data and settings, the method changed
    assert kto.training.method == "kto" and kto.data.dataset_name == "alice/chats"
    assert kto.training.learning_rate == 2e-4 and kto.hub.repo_id == "alice/phi3-chat-kto"


def test_kto_on_pairs_holds_out_whole_pairs_never_one_side():
    from trainer.data.preferences import prepare_preferences

    prepared = prepare_preferences(preset_config("tiny-demo-dpo").data, "kto")
    train, held = prepared.train, prepared.eval

    assert len(train) == 2 * 216 and len(held) == 2 * 24  # 240 pairs, 10 % held out, two examples each
    train_pairs = {(str(r["prompt"]), r["label"]) for r in train}
    for row in held:  # each held-out prompt has both sides there, and neither in training
        assert (str(row["prompt"]), not row["label"]) in {(str(r["prompt"]), r["label"]) for r in held}
        assert (str(row["prompt"]), row["label"]) not in train_pairs
