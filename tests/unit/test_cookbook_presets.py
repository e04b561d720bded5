"""The Cookbook presets, value for value: each value with the source file and the line it comes from.

Sources, as read for issue 13:

* ``LORA_NB``: microsoft/Phi-3CookBook code/04.Finetuning/Phi-3-finetune-lora-python.ipynb (blob of commit
  1ebc3bb03e32). The notebooks are stored as one line of JSON each, so a place is a cell (its ``metadata.id``) and
  the line within that cell's ``source`` (1-based).
* ``QLORA_NB``: microsoft/Phi-3CookBook code/04.Finetuning/Phi-3-finetune-qlora-python.ipynb (blob of commit
  0adf65242f5c; the cells cited read the same at 2c479185f18f).
* ``SAMPLE``: sample_finetune.py of the Hugging Face model repo microsoft/Phi-3-mini-4k-instruct (not on GitHub; read
  from the verbatim copy in arand013/Phi3-Mini-128K-Construct-Model@8c395553f79c; lines 66-96 read the same in
  ChuDinhKlopp/phi-3-mini-keyformer@48b6150ffee3, whose data lines sit 3 higher: it lacks the empty-system-message
  insertion at 153-155).

code/04.Finetuning/FineTrainingScript.py, also in the Cookbook, is none of these recipes (a full fine-tune, no LoRA:
fp16, batch 7 x 4, lr 1e-4 linear, 3 epochs, length 128), so no preset follows it.

A preset trains as its source's code does, including what the code does rather than what it meant: the notebooks list
the unfused q_proj/k_proj/v_proj/o_proj/gate_proj/up_proj/down_proj, and as Phi-3 fuses the first five into
qkv_proj/gate_up_proj, PEFT puts LoRA on o_proj and down_proj only; the presets do the same and say so
(tests/parity/ trains each preset beside its recipe).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from trainer.config import PRESETS, find_field, from_dict, preset_config
from trainer.paths import PROJECT_ROOT

LORA_NB = "Phi-3CookBook code/04.Finetuning/Phi-3-finetune-lora-python.ipynb"
QLORA_NB = "Phi-3CookBook code/04.Finetuning/Phi-3-finetune-qlora-python.ipynb"
SAMPLE = "microsoft/Phi-3-mini-4k-instruct sample_finetune.py"
COOKBOOK_PRESETS = ("cookbook-lora-notebook", "cookbook-qlora-notebook", "cookbook-sample-finetune")
PHI3 = "microsoft/Phi-3-mini-4k-instruct"
CODE_ALPACA = "iamtarun/python_code_instructions_18k_alpaca"

LORA = "cookbook-lora-notebook"
QLORA = "cookbook-qlora-notebook"
SAMPLE_FT = "cookbook-sample-finetune"

# (preset, RunConfig key, value, source file [cell], line)
TABLE = [
    # --- the LoRA notebook
    (LORA, "model.model_name_or_path", PHI3, f"{LORA_NB} cell Y5dL-Zn6gDk5", 26),  # model_id = ...
    (LORA, "model.load_in_4bit", False, f"{LORA_NB} cell 5-OL7AW-xE_r", 29),  # from_pretrained, no quantization
    (LORA, "model.pad_token", "<unk>", f"{LORA_NB} cell 5-OL7AW-xE_r", 14),  # pad_token = unk_token
    (LORA, "data.dataset_name", CODE_ALPACA, f"{LORA_NB} cell Y5dL-Zn6gDk5", 30),  # named in the comment
    (LORA, "data.eval_fraction", 0.05, f"{LORA_NB} cell YGvvmV_8k2-H", 6),  # train_test_split(test_size=0.05)
    (LORA, "lora.r", 16, f"{LORA_NB} cell Y5dL-Zn6gDk5", 51),
    (LORA, "lora.lora_alpha", 16, f"{LORA_NB} cell Y5dL-Zn6gDk5", 54),
    (LORA, "lora.lora_dropout", 0.05, f"{LORA_NB} cell Y5dL-Zn6gDk5", 57),
    # its list names q/k/v/gate/up_proj too, which Phi-3 does not have: PEFT puts LoRA on these two only
    (LORA, "lora.target_modules", ["o_proj", "down_proj"], f"{LORA_NB} cell Y5dL-Zn6gDk5", 60),
    (LORA, "data.alpaca_template", "cookbook", f"{LORA_NB} cell LTQGocjjjOg7", 11),  # f"{instruction}\n Input: ..."
    (LORA, "data.eval_seed", 1234, f"{LORA_NB} cell YGvvmV_8k2-H", 6),  # train_test_split(..., seed=1234)
    (LORA, "data.eval_holdout", "train_test_split", f"{LORA_NB} cell YGvvmV_8k2-H", 6),
    (LORA, "training.assistant_only_loss", False, f"{LORA_NB} cell GKRtirQOy_P5", 16),  # text field, no collator
    (LORA, "training.per_device_train_batch_size", 8, f"{LORA_NB} cell hbCaZbitxuW7", 36),
    (LORA, "training.gradient_accumulation_steps", 4, f"{LORA_NB} cell hbCaZbitxuW7", 37),
    (LORA, "training.per_device_eval_batch_size", 8, f"{LORA_NB} cell hbCaZbitxuW7", 38),
    (LORA, "training.logging_steps", 100, f"{LORA_NB} cell hbCaZbitxuW7", 41),
    (LORA, "training.learning_rate", 1e-4, f"{LORA_NB} cell hbCaZbitxuW7", 42),
    (LORA, "training.eval_steps", 100, f"{LORA_NB} cell hbCaZbitxuW7", 45),
    (LORA, "training.num_train_epochs", 3.0, f"{LORA_NB} cell hbCaZbitxuW7", 46),
    (LORA, "training.warmup_steps", 0.1, f"{LORA_NB} cell hbCaZbitxuW7", 47),  # warmup_ratio=0.1
    (LORA, "training.lr_scheduler_type", "linear", f"{LORA_NB} cell hbCaZbitxuW7", 48),
    (LORA, "training.seed", 42, f"{LORA_NB} cell hbCaZbitxuW7", 50),  # the trainer's seed (set_seed(1234): no field)
    (LORA, "training.max_length", 512, f"{LORA_NB} cell GKRtirQOy_P5", 17),  # max_seq_length=512
    # --- the QLoRA notebook
    (QLORA, "model.model_name_or_path", PHI3, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 2),
    (QLORA, "model.load_in_4bit", True, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 25),  # use_4bit = True
    (QLORA, "model.bnb_4bit_quant_type", "nf4", f"{QLORA_NB} cell Y5dL-Zn6gDk5", 31),
    (QLORA, "model.use_bnb_nested_quant", True, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 34),  # use_double_quant = True
    (QLORA, "model.dtype", "bfloat16", f"{QLORA_NB} cell d_GhlJY7wnn6", 46),  # "bf16": True
    (QLORA, "model.pad_token", "<unk>", f"{QLORA_NB} cell 5-OL7AW-xE_r", 39),
    # the QLoRA notebook's dataset_name is the placeholder "username/dataset" (cell Y5dL-Zn6gDk5 line 6)
    (QLORA, "data.dataset_name", CODE_ALPACA, f"{LORA_NB} cell Y5dL-Zn6gDk5", 30),
    (QLORA, "data.eval_fraction", 0.05, f"{QLORA_NB} cell YGvvmV_8k2-H", 14),
    (QLORA, "lora.r", 16, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 39),
    (QLORA, "lora.lora_alpha", 16, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 42),
    (QLORA, "lora.lora_dropout", 0.05, f"{QLORA_NB} cell Y5dL-Zn6gDk5", 45),
    (QLORA, "lora.target_modules", ["o_proj", "down_proj"], f"{QLORA_NB} cell Y5dL-Zn6gDk5", 48),  # as LORA's
    (QLORA, "data.alpaca_template", "cookbook", f"{QLORA_NB} cell LTQGocjjjOg7", 11),
    (QLORA, "data.eval_seed", 1234, f"{QLORA_NB} cell YGvvmV_8k2-H", 14),
    (QLORA, "data.eval_holdout", "train_test_split", f"{QLORA_NB} cell YGvvmV_8k2-H", 14),
    (QLORA, "training.assistant_only_loss", False, f"{QLORA_NB} cell GKRtirQOy_P5", 27),  # text field, no collator
    (QLORA, "training.learning_rate", 5e-6, f"{QLORA_NB} cell d_GhlJY7wnn6", 48),
    (QLORA, "training.logging_steps", 20, f"{QLORA_NB} cell d_GhlJY7wnn6", 50),
    (QLORA, "training.lr_scheduler_type", "cosine", f"{QLORA_NB} cell d_GhlJY7wnn6", 52),
    (QLORA, "training.num_train_epochs", 1.0, f"{QLORA_NB} cell d_GhlJY7wnn6", 53),
    (QLORA, "training.max_steps", -1, f"{QLORA_NB} cell d_GhlJY7wnn6", 54),
    (QLORA, "training.per_device_eval_batch_size", 4, f"{QLORA_NB} cell d_GhlJY7wnn6", 57),
    (QLORA, "training.per_device_train_batch_size", 4, f"{QLORA_NB} cell d_GhlJY7wnn6", 58),
    (QLORA, "training.save_steps", 100, f"{QLORA_NB} cell d_GhlJY7wnn6", 60),
    (QLORA, "training.save_total_limit", 1, f"{QLORA_NB} cell d_GhlJY7wnn6", 61),
    (QLORA, "training.seed", 1234, f"{QLORA_NB} cell d_GhlJY7wnn6", 62),  # and set_seed(1234), Y5dL-Zn6gDk5 51
    (QLORA, "training.gradient_checkpointing", True, f"{QLORA_NB} cell d_GhlJY7wnn6", 63),
    (QLORA, "training.gradient_accumulation_steps", 1, f"{QLORA_NB} cell d_GhlJY7wnn6", 65),
    (QLORA, "training.warmup_steps", 0.2, f"{QLORA_NB} cell d_GhlJY7wnn6", 66),  # "warmup_ratio": 0.2
    (QLORA, "training.max_length", 512, f"{QLORA_NB} cell GKRtirQOy_P5", 28),  # max_seq_length=512
    # --- sample_finetune.py
    (SAMPLE_FT, "model.dtype", "bfloat16", SAMPLE, 66),  # "bf16": True; torch_dtype=torch.bfloat16 at 135
    (SAMPLE_FT, "training.learning_rate", 5e-6, SAMPLE, 68),
    (SAMPLE_FT, "training.logging_steps", 20, SAMPLE, 70),
    (SAMPLE_FT, "training.lr_scheduler_type", "cosine", SAMPLE, 72),
    (SAMPLE_FT, "training.num_train_epochs", 1.0, SAMPLE, 73),
    (SAMPLE_FT, "training.max_steps", -1, SAMPLE, 74),
    (SAMPLE_FT, "training.per_device_eval_batch_size", 4, SAMPLE, 77),
    (SAMPLE_FT, "training.per_device_train_batch_size", 4, SAMPLE, 78),
    (SAMPLE_FT, "training.save_steps", 100, SAMPLE, 80),
    (SAMPLE_FT, "training.save_total_limit", 1, SAMPLE, 81),
    (SAMPLE_FT, "training.seed", 0, SAMPLE, 82),
    (SAMPLE_FT, "training.gradient_checkpointing", True, SAMPLE, 83),
    (SAMPLE_FT, "training.gradient_accumulation_steps", 1, SAMPLE, 85),
    (SAMPLE_FT, "training.warmup_steps", 0.2, SAMPLE, 86),  # "warmup_ratio": 0.2
    (SAMPLE_FT, "lora.r", 16, SAMPLE, 90),
    (SAMPLE_FT, "lora.lora_alpha", 32, SAMPLE, 91),
    (SAMPLE_FT, "lora.lora_dropout", 0.05, SAMPLE, 92),
    (SAMPLE_FT, "lora.target_modules", ["all-linear"], SAMPLE, 95),
    (SAMPLE_FT, "model.model_name_or_path", PHI3, SAMPLE, 129),
    (SAMPLE_FT, "model.pad_token", "<unk>", SAMPLE, 141),
    (SAMPLE_FT, "data.dataset_name", "HuggingFaceH4/ultrachat_200k", SAMPLE, 161),
    (SAMPLE_FT, "data.dataset_train_split", "train_sft", SAMPLE, 162),
    (SAMPLE_FT, "data.dataset_test_split", "test_sft", SAMPLE, 163),
    (SAMPLE_FT, "training.max_length", 2048, SAMPLE, 192),  # max_seq_length=2048
    (SAMPLE_FT, "training.packing", True, SAMPLE, 195),
    (SAMPLE_FT, "data.empty_system_turn", True, SAMPLE, 154),  # messages.insert(0, {"role": "system", ...})
    (SAMPLE_FT, "training.assistant_only_loss", False, SAMPLE, 193),  # dataset_text_field="text", no collator
]


@pytest.mark.parametrize(
    ("preset", "key", "expected", "source", "line"),
    TABLE,
    ids=[f"{preset}:{key}" for preset, key, *_ in TABLE],
)
def test_preset_carries_the_source_value(preset, key, expected, source, line):
    value = find_field(key).get(preset_config(preset))
    assert value == expected, f"{preset} {key} = {value!r}; {source} line {line} sets {expected!r}"


def test_the_table_names_each_preset_key_once():
    rows = [(preset, key) for preset, key, *_ in TABLE]
    assert len(rows) == len(set(rows))
    assert {preset for preset, *_ in TABLE} == set(COOKBOOK_PRESETS)


@pytest.mark.parametrize("preset", [LORA, QLORA])
def test_a_notebook_preset_says_plainly_which_layers_its_code_trains(preset):
    description = PRESETS[preset][0]
    assert "LoRA only on o_proj and down_proj" in description and "q/k/v/gate/up_proj" in description
    assert "8,912,896 trainable parameters on Phi-3-mini, not the 25,165,824" in description


@pytest.mark.parametrize("preset", COOKBOOK_PRESETS)
def test_preset_file_loads_through_the_cli_and_validates(preset):
    out = subprocess.run(
        [sys.executable, "-m", "trainer", "config", "show", preset],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    header, _, body = out.stdout.partition("\n")
    assert header == f"# preset {preset}: {PRESETS[preset][0]}"
    cfg = from_dict(yaml.safe_load(body))
    assert cfg == preset_config(preset) and cfg.problems() == []
