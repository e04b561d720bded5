"""RunConfig's training section reaches TRL's SFTConfig field by field; only derived values are written by hand."""

from __future__ import annotations

import dataclasses

from trainer.config import TrainingSettings, load_config
from trainer.methods import sft_config
from trainer.training import PROJECT_ONLY_SETTINGS


def test_every_training_setting_reaches_sftconfig_by_name(tmp_path):
    cfg = load_config(
        preset="tiny-demo",
        overrides=[
            "learning_rate=1.5e-4",
            "num_train_epochs=2.5",
            "max_steps=33",
            "per_device_train_batch_size=3",
            "per_device_eval_batch_size=5",
            "gradient_accumulation_steps=7",
            "lr_scheduler_type=linear",
            "warmup_steps=0.25",
            "weight_decay=0.01",
            "max_grad_norm=0.7",
            "max_length=96",
            "packing=true",
            "assistant_only_loss=false",
            "gradient_checkpointing=true",
            "padding_free=false",
            "seed=7",
            "logging_steps=3",
            "eval_steps=9",
            "save_steps=11",
            "save_total_limit=4",
        ],
    )
    args = sft_config(cfg, tmp_path, has_eval=True, padding_free=False)
    for field in dataclasses.fields(TrainingSettings):
        if field.name in PROJECT_ONLY_SETTINGS:
            continue
        assert getattr(args, field.name) == getattr(cfg.training, field.name), field.name
    assert args.output_dir == str(tmp_path / "checkpoints") and args.data_seed == 7 and args.eval_strategy == "steps"
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False} and args.report_to == []


def test_padding_free_leaves_truncation_to_the_project(tmp_path):
    cfg = load_config(preset="tiny-demo")
    args = sft_config(cfg, tmp_path, has_eval=False, padding_free=True)
    assert args.padding_free is True and args.max_length is None and args.eval_strategy == "no"


def test_checkpointing_goes_by_the_name_this_transformers_has_without_a_deprecation_warning(tmp_path):
    import warnings

    from transformers import TrainingArguments

    cfg = load_config(preset="tiny-demo", overrides=["gradient_checkpointing=true"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # transformers 5.25 warns on the old names
        args = sft_config(cfg, tmp_path, has_eval=False)
    new_name = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
    assert getattr(args, "activation_checkpointing" if new_name else "gradient_checkpointing") is True
    assert args.gradient_checkpointing is True  # the old name mirrors the new one (what TRL reads)
