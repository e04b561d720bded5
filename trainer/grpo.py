"""GRPO: the model answers each prompt several times, the rewards score the answers, and it learns from the best.

`trainer.training` runs GRPO as it runs every method (data, model, evaluate before, train, evaluate after, save the
adapter); this module holds what GRPO adds:

- the reward functions and their weights: the built-in menu (`trainer.rewards`, set in the form) and, on a local
  run only, the ``reward_*`` functions of a Python file (`grpo.reward_module`), never on a Space;
- `grpo_trainer`: TRL's GRPOTrainer with them, the LoRA config and the form's GRPOConfig settings
  (`trainer.methods.grpo_settings`, shared with the run's ``trl_grpo.yaml``);
- the held-out reward: the mean reward of greedy completions of held-out prompts, before and after training, which
  is how the run shows that the tuned model is better than the base;
- a few completions with the rewards each earned, recorded in the events every few logs, for the Runs tab.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.rewards import parse_rewards, reward_columns, reward_function, reward_settings, text_of, total_reward

logger = logging.getLogger(__name__)

HELD_OUT_PROMPTS = 32
"""Held-out prompts answered (greedily) for the reward before and after training, at most."""

COMPLETIONS_SHOWN = 4
"""Completions recorded in the events each time, with the rewards each earned."""
COMPLETIONS_EVERY = 5
"""Record completions at the first log and every this many logs after it."""
COMPLETION_CHARS = 2000
"""Characters of a prompt or completion kept in the events (the rest is cut)."""

RewardFunc = Callable[..., list[float]]


def load_reward_module(path: str | Path) -> list[RewardFunc]:
    """The ``reward_*`` functions of a local Python file, in the order they are defined (a local run's own code: the
    run service refuses it for anyone but the local user, and `python -m trainer train` refuses it on a Space).

    Raises:
        ValueError: the file does not exist, or it defines no ``reward_*`` function.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"grpo.reward_module: no file {str(file)!r}. Name a Python file of reward_* functions.")
    spec = importlib.util.spec_from_file_location(f"studio_rewards_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    funcs = [f for name, f in vars(module).items() if name.startswith("reward_") and callable(f)]
    if not funcs:
        raise ValueError(f"grpo.reward_module: {file.name} defines no function named reward_*.")
    return funcs


def reward_funcs(config: RunConfig) -> tuple[list[RewardFunc], list[float]]:
    """The run's reward functions as TRL calls them, and their weights: the built-in menu, then a local module's
    functions (weight 1.0 each)."""
    g = config.grpo
    columns = reward_columns(g)
    funcs, weights = [], []
    for name, weight in parse_rewards(g.rewards) if g.rewards.strip() else []:
        funcs.append(reward_function(name, columns.get(name), **reward_settings(name, g)))
        weights.append(weight)
    if g.reward_module.strip():
        module_funcs = load_reward_module(g.reward_module)
        funcs += module_funcs
        weights += [1.0] * len(module_funcs)
    return funcs, weights


def grpo_trainer(config: RunConfig, run_dir: Path, model, tokenizer, train_dataset, callbacks=()):
    """TRL's GRPOTrainer with the run's rewards and the PEFT LoRA config (or the PeftModel being continued).

    The held-out prompts are not handed to it: the run scores them itself, greedily (`held_out_reward`), before and
    after training, rather than sampling them at every evaluation.
    """
    from peft import PeftModel
    from transformers import PrinterCallback

    from trainer.methods import config_class, grpo_settings, machine_settings, trainer_class
    from trainer.modeling import lora_config

    funcs, weights = reward_funcs(config)
    grpo_class = config_class("grpo")
    settings = grpo_settings(config, [f.name for f in dataclasses.fields(grpo_class)])
    settings["reward_weights"] = weights
    settings.update(machine_settings(config, run_dir, has_eval=False))
    trainer = trainer_class("grpo")(
        model=model,
        reward_funcs=funcs,
        args=grpo_class(**settings),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else lora_config(config.lora),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)
    for callback in trainer.callback_handler.callbacks:
        if hasattr(callback, "attach"):
            callback.attach(trainer, funcs, weights)
    return trainer


def greedy_completions(model, tokenizer, prompts: Sequence[list[dict]], max_new_tokens: int, batch: int = 8):
    """Each prompt's greedy completion (text, stop marker removed), generated `batch` prompts at a time."""
    import torch

    from trainer.phi3 import stop_token_ids
    from trainer.samples import left_padded

    stops = stop_token_ids(tokenizer)
    was_training = model.training
    model.eval()
    texts = []
    for start in range(0, len(prompts), batch):
        rows = [
            tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
            for p in prompts[start : start + batch]
        ]
        ids, mask = left_padded(rows, tokenizer.pad_token_id, model.device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
        texts += tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    model.train(was_training)
    return [t.strip() for t in texts]


def score(
    funcs: Sequence[RewardFunc], weights: Sequence[float], prompts, completions: Sequence[str], columns: dict
) -> dict[str, list[float]]:
    """Every reward function's scores of the completions (as TRL calls them: the completion in chat form, the rows'
    columns beside it), and their weighted total under ``reward``."""
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    scores = {f.__name__: [float(s) for s in f(prompts=prompts, completions=chat, **columns)] for f in funcs}
    scores["reward"] = total_reward(scores, dict(zip(scores, weights, strict=False)))
    return scores


def held_out_reward(trainer, tokenizer, dataset) -> dict[str, float]:
    """`held_out_scores` of the GRPO trainer's model, with its reward functions, weights and completion length."""
    weights = [float(w) for w in trainer.reward_weights]
    return held_out_scores(
        trainer.model, tokenizer, dataset, trainer.reward_funcs, weights, trainer.args.max_completion_length
    )


def held_out_scores(model, tokenizer, dataset, funcs, weights, max_new_tokens: int) -> dict[str, float]:
    """The mean reward (and each function's mean) of greedy completions of up to `HELD_OUT_PROMPTS` held-out prompts.

    Returns:
        {"reward": the weighted total's mean, "rewards/<name>": each function's mean, "prompts": how many}.
    """
    rows = dataset.select(range(min(HELD_OUT_PROMPTS, len(dataset))))
    prompts = list(rows["prompt"])
    columns = {c: list(rows[c]) for c in rows.column_names if c != "prompt"}
    completions = greedy_completions(model, tokenizer, prompts, max_new_tokens)
    scores = score(funcs, weights, prompts, completions, columns)
    means = {name: round(sum(v) / len(v), 4) for name, v in scores.items()}
    return {"reward": means.pop("reward"), **{f"rewards/{n}": m for n, m in means.items()}, "prompts": len(prompts)}


def completion_records(logs: dict[str, Any], weights: dict[str, float], n: int = COMPLETIONS_SHOWN) -> list[dict]:
    """The first `n` completions of GRPOTrainer's latest batch (its ``_logs``), each with its prompt's last turn,
    the reward each function gave it and the weighted total (pure)."""
    prompts, completions = list(logs["prompt"])[:n], list(logs["completion"])[:n]
    per_func = {name: list(values)[:n] for name, values in logs["rewards"].items()}
    records = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=False)):
        rewards = {name: round(float(values[i]), 4) for name, values in per_func.items() if i < len(values)}
        total = total_reward({k: [v] for k, v in rewards.items()}, weights)
        last = prompt[-1]["content"] if isinstance(prompt, list) and prompt else str(prompt)
        records.append(
            {
                "prompt": str(last)[:COMPLETION_CHARS],
                "completion": text_of(completion)[:COMPLETION_CHARS],
                "rewards": rewards,
                "reward": round(total[0], 4) if total else None,
            }
        )
    return records


def CompletionsCallback(emit: Callable[[dict[str, Any]], None]):  # noqa: N802 - a factory, as EventCallback
    """A callback that records a few completions and their rewards in the run's events at the first log and every
    `COMPLETIONS_EVERY` logs (main process only); `attach` hands it the trainer once it is built."""
    from transformers import TrainerCallback

    from trainer import distributed as dist

    class _CompletionsCallback(TrainerCallback):
        def __init__(self):
            self.trainer = None
            self.weights: dict[str, float] = {}
            self.logs_seen = 0

        def attach(self, trainer, funcs, weights) -> None:
            self.trainer = trainer
            self.weights = {f.__name__: w for f, w in zip(funcs, weights, strict=True)}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.trainer is None or not dist.is_main() or "loss" not in (logs or {}):
                return
            self.logs_seen += 1
            if (self.logs_seen - 1) % COMPLETIONS_EVERY == 0 and self.trainer._logs["completion"]:
                emit({"step": state.global_step, "completions": completion_records(self.trainer._logs, self.weights)})

    return _CompletionsCallback()
