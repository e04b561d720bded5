"""The training steps of the three recipes the `cookbook-*` presets follow, in the recipes' own order, written out
here to run beside the presets (tests/parity/test_cookbook_parity.py). Written for this project from the sources, not
copied; each step names the cell or line it follows.

Sources:

* LoRA notebook: microsoft/Phi-3CookBook code/04.Finetuning/Phi-3-finetune-lora-python.ipynb @ 1ebc3bb03e32.
* QLoRA notebook: microsoft/Phi-3CookBook code/04.Finetuning/Phi-3-finetune-qlora-python.ipynb @ 0adf65242f5c.
* sample_finetune.py of the Hugging Face model repo microsoft/Phi-3-mini-4k-instruct, read from the copy in
  arand013/Phi3-Mini-128K-Construct-Model @ 8c395553f79c.

What differs from the sources, each marked ``CHANGED`` where it happens: the model (the tiny Phi-3's folder, not
microsoft/Phi-3-mini-4k-instruct), the data (a local file instead of the Hub dataset), the device (the CPU, float32:
the notebooks pick float16 + sdpa without a bf16 GPU, the script bf16 + flash-attention), the length of the run
(`steps` optimiser steps, logging every step, the held-out loss once at the end, no checkpoints, no wandb), and the
arguments TRL 1.x renamed (`max_seq_length` -> `max_length`, `tokenizer` -> `processing_class`,
`evaluation_strategy` -> `eval_strategy`, `warmup_ratio` -> a fractional `warmup_steps`). The QLoRA notebook hands
SFTTrainer its LoRA settings as a dict, which TRL refuses; it runs with the LoraConfig the notebook builds from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOK_TARGETS = ["k_proj", "q_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]
"""The notebooks' target_modules (cell Y5dL-Zn6gDk5): Phi-3 has only o_proj and down_proj of these."""


@dataclass
class Trained:
    """What a run of a recipe (or of a preset) produced, for the parity test to compare.

    Attributes:
        losses: the training loss at each logged step, {step: loss}.
        eval_loss: the held-out loss after training.
        trainable: trainable parameters.
        adapter: the saved adapter's tensors, {name: shape}.
    """

    losses: dict[int, float]
    eval_loss: float
    trainable: int
    adapter: dict[str, tuple[int, ...]]


def _result(trainer: Any, out_dir: Path) -> Trained:
    from safetensors import safe_open

    losses = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    eval_loss = trainer.evaluate()["eval_loss"]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.save_model(str(out_dir / "adapter"))
    with safe_open(str(out_dir / "adapter" / "adapter_model.safetensors"), "pt") as f:
        adapter = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 - a handle
    return Trained(losses, eval_loss, trainable, adapter)


def _alpaca_messages(row: dict[str, Any]) -> dict[str, Any]:
    """The notebooks' create_message_column (cell LTQGocjjjOg7): the input always follows, even when empty."""
    user = {"content": f"{row['instruction']}\n Input: {row['input']}", "role": "user"}
    return {"messages": [user, {"content": f"{row['output']}", "role": "assistant"}]}


def _notebook_data(model_dir: str, data_file: str):
    """The notebooks' data cells, in order: load, format as chat, render with the chat template, hold 5 % out."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    dataset = load_dataset("json", data_files=data_file, split="train")  # CHANGED: a local copy (cell qbbH23N9vXh2)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)  # cell 4e7dmUBujAAM
    tokenizer.padding_side = "right"

    def to_text(row):  # format_dataset_chatml, cell LTQGocjjjOg7
        return {"text": tokenizer.apply_chat_template(row["messages"], add_generation_prompt=False, tokenize=False)}

    chatml = dataset.map(_alpaca_messages).map(to_text)  # cell reLTRh8mjwN6
    return chatml.train_test_split(test_size=0.05, seed=1234)  # cell YGvvmV_8k2-H


def _notebook_tokenizer(model_dir: str):
    """Cell 5-OL7AW-xE_r: the tokenizer training uses."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_eos_token=True, use_fast=True)
    tokenizer.pad_token = tokenizer.unk_token
    tokenizer.pad_token_id = tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    tokenizer.padding_side = "left"
    return tokenizer


def lora_notebook(model_dir: str, data_file: str, out_dir: Path, steps: int) -> Trained:
    """The Cookbook's LoRA notebook, its training cells in order."""
    import torch
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(1234)  # cell Y5dL-Zn6gDk5
    data = _notebook_data(model_dir, data_file)
    tokenizer = _notebook_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(  # cell 5-OL7AW-xE_r; CHANGED: float32 on the CPU
        model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    args = SFTConfig(  # cell hbCaZbitxuW7 (TrainingArguments; SFTConfig carries SFTTrainer's own arguments in TRL 1.x)
        output_dir=str(out_dir),
        eval_strategy="no",  # CHANGED: "steps" every 100; the held-out loss is taken once, after training
        optim="adamw_torch",
        per_device_train_batch_size=8,
        gradient_accumulation_steps=4,
        per_device_eval_batch_size=8,
        save_strategy="no",  # CHANGED: "epoch"
        logging_steps=1,  # CHANGED: 100
        learning_rate=1e-4,
        fp16=False,  # CHANGED: fp16 = not torch.cuda.is_bf16_supported(); float32 on the CPU
        bf16=False,  # CHANGED: bf16 = torch.cuda.is_bf16_supported() (TRL's default would autocast the CPU to bf16)
        num_train_epochs=3,
        max_steps=steps,  # CHANGED: 3 epochs
        warmup_steps=0.1,  # warmup_ratio=0.1
        lr_scheduler_type="linear",
        report_to="none",  # CHANGED: wandb
        seed=42,
        dataset_text_field="text",  # cell GKRtirQOy_P5
        max_length=512,  # max_seq_length=512
        use_cpu=True,  # CHANGED: the CPU
    )
    peft_config = LoraConfig(  # cell hbCaZbitxuW7
        r=16, lora_alpha=16, lora_dropout=0.05, task_type=TaskType.CAUSAL_LM, target_modules=NOTEBOOK_TARGETS
    )
    trainer = SFTTrainer(  # cell GKRtirQOy_P5
        model=model,
        train_dataset=data["train"],
        eval_dataset=data["test"],
        peft_config=peft_config,
        processing_class=tokenizer,
        args=args,
    )
    trainer.train()  # cell I-XPLvS7zQ4n
    return _result(trainer, out_dir)


def qlora_notebook(model_dir: str, data_file: str, out_dir: Path, steps: int) -> Trained:
    """The Cookbook's QLoRA notebook, its training cells in order (4-bit through bitsandbytes' CPU backend)."""
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(1234)  # cell Y5dL-Zn6gDk5
    data = _notebook_data(model_dir, data_file)
    tokenizer = _notebook_tokenizer(model_dir)
    bnb_config = BitsAndBytesConfig(  # cell 5-OL7AW-xE_r
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,  # CHANGED: compute_dtype (the GPU's bf16 or fp16); bf16 on the CPU
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(  # CHANGED: float32 and sdpa on the CPU
        model_dir, dtype=torch.float32, quantization_config=bnb_config, attn_implementation="sdpa"
    )
    model = prepare_model_for_kbit_training(model)
    for layer in model.modules():  # CHANGED, the CPU: bitsandbytes would evaluate on a CPU with AVX512-BF16 through
        if hasattr(layer, "support_avx512bf16_for_cpu"):  # its bf16 inference kernel (see
            layer.support_avx512bf16_for_cpu = False  # trainer.modeling.keep_4bit_weights_trainable); a GPU never does
    args = SFTConfig(  # cell d_GhlJY7wnn6 (its dict of TrainingArguments)
        bf16=False,  # CHANGED: True (a GPU's); float32 on the CPU
        do_eval=False,
        learning_rate=5.0e-06,
        log_level="info",
        logging_steps=1,  # CHANGED: 20
        logging_strategy="steps",
        lr_scheduler_type="cosine",
        num_train_epochs=1,
        max_steps=steps,  # CHANGED: -1
        output_dir=str(out_dir),
        per_device_eval_batch_size=4,
        per_device_train_batch_size=4,
        remove_unused_columns=True,
        save_strategy="no",  # CHANGED: save_steps 100, save_total_limit 1
        seed=1234,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        gradient_accumulation_steps=1,
        warmup_steps=0.2,  # "warmup_ratio": 0.2
        dataset_text_field="text",  # cell GKRtirQOy_P5
        max_length=512,  # max_seq_length=512
        report_to="none",  # CHANGED: wandb
        use_cpu=True,  # CHANGED: the CPU
    )
    peft_config = LoraConfig(  # cell d_GhlJY7wnn6: the dict, and the LoraConfig built from it
        r=16,
        lora_alpha=16,
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=NOTEBOOK_TARGETS,
        modules_to_save=None,
    )
    trainer = SFTTrainer(  # cell GKRtirQOy_P5 (CHANGED: the LoraConfig, not the dict TRL refuses)
        model=model,
        train_dataset=data["train"],
        eval_dataset=data["test"],
        peft_config=peft_config,
        processing_class=tokenizer,
        args=args,
    )
    trainer.train()
    return _result(trainer, out_dir)


def sample_finetune(model_dir: str, data_dir: str, out_dir: Path, steps: int) -> Trained:
    """sample_finetune.py of microsoft/Phi-3-mini-4k-instruct, its steps in order (lines cited)."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(  # training_config, lines 65-87
        bf16=False,  # CHANGED: True; float32 on the CPU
        do_eval=False,
        learning_rate=5.0e-06,
        log_level="info",
        logging_steps=1,  # CHANGED: 20
        logging_strategy="steps",
        lr_scheduler_type="cosine",
        num_train_epochs=1,
        max_steps=steps,  # CHANGED: -1
        output_dir=str(out_dir),
        per_device_eval_batch_size=4,
        per_device_train_batch_size=4,
        remove_unused_columns=True,
        save_strategy="no",  # CHANGED: save_steps 100, save_total_limit 1
        seed=0,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        gradient_accumulation_steps=1,
        warmup_steps=0.2,  # "warmup_ratio": 0.2
        dataset_text_field="text",  # SFTTrainer, lines 186-196
        max_length=2048,  # max_seq_length=2048
        packing=True,
        report_to="none",
        use_cpu=True,  # CHANGED: the CPU
    )
    peft_config = LoraConfig(  # peft_config, lines 89-97
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules="all-linear",
        modules_to_save=None,
    )
    model = AutoModelForCausalLM.from_pretrained(  # lines 129-137; CHANGED: float32 and sdpa, not bf16 + flash-attn
        model_dir, use_cache=False, dtype=torch.float32, attn_implementation="sdpa"
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)  # lines 138-142
    tokenizer.model_max_length = 2048
    tokenizer.pad_token = tokenizer.unk_token
    tokenizer.pad_token_id = tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    tokenizer.padding_side = "right"

    def apply_chat_template(example, tokenizer):  # lines 148-159
        messages = example["messages"]
        if messages[0]["role"] != "system":  # an empty system message first
            messages.insert(0, {"role": "system", "content": ""})
        example["text"] = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return example

    raw = load_dataset(  # line 161; CHANGED: local train/test files, not HuggingFaceH4/ultrachat_200k
        "json", data_files={"train_sft": f"{data_dir}/train.jsonl", "test_sft": f"{data_dir}/test.jsonl"}
    )
    column_names = list(raw["train_sft"].features)
    train = raw["train_sft"].map(  # CHANGED: num_proc=10
        apply_chat_template, fn_kwargs={"tokenizer": tokenizer}, remove_columns=column_names
    )
    test = raw["test_sft"].map(apply_chat_template, fn_kwargs={"tokenizer": tokenizer}, remove_columns=column_names)
    trainer = SFTTrainer(
        model=model,
        args=args,
        peft_config=peft_config,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
    )
    trainer.train()
    return _result(trainer, out_dir)
