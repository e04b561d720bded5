"""The run as a config that stock TRL runs: `trl_sft.yaml` beside config.yaml, for `trl sft --config trl_sft.yaml`
(a DPO run: `trl_dpo.yaml` for `trl dpo`; KTO: `trl_kto.yaml` for `trl kto`; GRPO: `trl_grpo.yaml` for `trl grpo`;
TRL 1.16 has no `trl orpo`).

TRL's CLI reads one flat YAML mapping whose keys are fields of its `ScriptArguments`, `SFTConfig` (`DPOConfig`,
`KTOConfig`) and `ModelConfig` dataclasses; a key none of them knows is handed to `accelerate launch` as an argument
(and fails there), so only those fields are written (`unknown_keys` checks a mapping against TRL's own
dataclasses). What TRL 1.16 does with each pitfall, and what is written for it:

- `dataset_name` must be a Hub ID or a folder (one .jsonl file fails). The run's data, as the studio prepared it
  (format detected, columns mapped, placeholders filled, system prompt added, max_rows applied, eval rows held out),
  is written as chat `messages` JSONL (a preference run: the `prompt`/`chosen`/`rejected` or `prompt`/`completion`/
  `label` columns its trainer reads) to `trl_data/train.jsonl` and `trl_data/test.jsonl`, and `dataset_name:
  trl_data` loads that folder with both splits (a `datasets:` list of files would merge them into one train split).
- Without `use_peft: true` it silently fine-tunes every weight: it is always written, with the LoRA settings.
- `attn_implementation: auto` is invalid: it is written only when one was chosen (sdpa, eager, flash_attention_2).
- `padding_free` with `max_length` fails: a padding-free run writes `max_length: null` (TRL then keeps over-long
  rows whole; the studio cut them to max_length, as the comment at the top of the file says).
- On a CPU it needs `use_cpu: true`; `dtype` defaults to float32 and `bf16` to true, so both are written.

GRPO's rewards go in TRL's own terms: `reward_funcs` lists dotted import paths, which `trl grpo` imports from the
folder it runs in, and `reward_weights` their weights. `trl_rewards.py` binds each of the run's rewards with its
settings (its column, pattern, target or words) from `studio_rewards.py`, a copy of `trainer/rewards.py` (pure
Python, no imports of the studio), and a local reward module goes along as `trl_reward_module.py`.

What TRL has no setting for (samples before/after, the Hub push, continuing from an adapter) is listed in the
comment block at the top of the file. Relative paths (`trl_data`, `trl-output`) are read from the folder the
command runs in: run it in the run folder, or in the unpacked "Download for TRL" zip.

Example:
    cd studio-data/runs/<run id> && trl sft --config trl_sft.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.methods import config_class, grpo_settings, preference_settings, sft_settings
from trainer.phi3 import TINY_MODEL_NAME
from trainer.rewards import parse_rewards, reward_columns, reward_settings
from trainer.runs import folder as rf
from trainer.trackers import project_name

TRL_FILES = {"sft": "trl_sft.yaml", "dpo": "trl_dpo.yaml", "kto": "trl_kto.yaml", "grpo": "trl_grpo.yaml"}
"""The file each method's run writes, named after the `trl` command that runs it (TRL 1.16 has no `trl orpo`)."""
TRL_FILE = TRL_FILES["sft"]
TRL_DATA_DIR = "trl_data"
TRL_OUTPUT_DIR = "trl-output"
SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}
"""The data files by split; `load_dataset(<folder>)` names the splits after the files."""
REWARDS_FILE = "trl_rewards.py"
REWARDS_LIBRARY = "studio_rewards.py"
MODULE_COPY = "trl_reward_module.py"
REWARD_FILES = (REWARDS_FILE, REWARDS_LIBRARY, MODULE_COPY)
"""A GRPO run's reward files beside trl_grpo.yaml (`trl grpo` imports them from the folder it runs in)."""
CHOSEN_ATTENTION = ("flash_attention_2", "sdpa", "eager")


def trl_settings(config: RunConfig, *, model_path: str, dtype: str, on_gpu: bool, has_eval: bool) -> dict[str, Any]:
    """The flat `trl sft` settings that repeat the run (pure).

    Args:
        config: the run's config (its LoRA section as trained: an adapter continued from keeps its own).
        model_path: what TRL loads: the Hub ID or folder (the tiny model's built folder, as `tiny-phi3` is no ID).
        dtype: the dtype the run loaded the model in (`bfloat16`, `float16`, `float32`).
        on_gpu: whether the run trains on a CUDA GPU (else `use_cpu: true`).
        has_eval: whether held-out rows were written (`trl_data/test.jsonl`).

    Returns:
        ScriptArguments, ModelConfig and SFTConfig fields only, in that order.
    """
    m, lora, t = config.model, config.lora, config.training
    padding_free = t.padding_free and not t.packing  # as the run does: packing already avoids padding
    out: dict[str, Any] = {
        "dataset_name": TRL_DATA_DIR,
        "dataset_train_split": "train",
        "dataset_test_split": "test",
        "model_name_or_path": model_path,
        "dtype": dtype,
    }
    if m.attn_implementation in CHOSEN_ATTENTION:
        out["attn_implementation"] = m.attn_implementation
    out.update(
        use_peft=True,
        lora_r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        lora_target_modules=list(lora.target_modules),
        load_in_4bit=m.load_in_4bit,
    )
    if m.load_in_4bit:
        out.update(bnb_4bit_quant_type=m.bnb_4bit_quant_type, use_bnb_nested_quant=m.use_bnb_nested_quant)
    # the settings the run hands its trainer (trainer.methods)
    if t.method == "grpo":
        names, weights = reward_names(config)
        out["reward_funcs"] = [f"{REWARDS_FILE.removesuffix('.py')}.{name}" for name in names]
        out.update(grpo_settings(config, [f.name for f in _fields("grpo")]), reward_weights=weights)
    else:
        out.update(sft_settings(config, padding_free) if t.method == "sft" else preference_settings(config))
    if "pad_token" in {f.name for f in _fields(t.method)}:
        out["pad_token"] = m.pad_token  # never the stop token (TRL's default would pad with <|endoftext|>)
    out.update(
        data_seed=t.seed,
        eval_strategy="steps" if has_eval else "no",
        save_strategy="steps",
        bf16=on_gpu and dtype == "bfloat16",
        fp16=on_gpu and dtype == "float16",
        use_cpu=not on_gpu,
        output_dir=TRL_OUTPUT_DIR,
        report_to=config.run.report_to,  # the run's tracker (its project, not its folder's name: a new run)
    )
    if config.run.report_to != "none":
        out["project"] = project_name(config)
    return out


def module_functions(path: str) -> list[str]:
    """The ``reward_*`` functions a local reward module defines, read from its source (never run here)."""
    import ast

    tree = ast.parse(Path(path).expanduser().read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node.name for node in tree.body if isinstance(node, kinds) and node.name.startswith("reward_")]


def reward_names(config: RunConfig) -> tuple[list[str], list[float]]:
    """The GRPO run's reward functions by name, and their weights, in the order the run hands them to TRL: the
    built-in menu, then a local module's ``reward_*`` functions (weight 1.0 each)."""
    g = config.grpo
    menu = parse_rewards(g.rewards) if g.rewards.strip() else []
    module = module_functions(g.reward_module) if g.reward_module.strip() else []
    return [n for n, _ in menu] + module, [w for _, w in menu] + [1.0] * len(module)


def rewards_source(config: RunConfig) -> str:
    """`trl_rewards.py`: each of the run's rewards bound to its settings, for `trl grpo`'s `reward_funcs` (pure)."""
    g = config.grpo
    columns = reward_columns(g)
    lines = [
        f'"""The rewards of {config.display_name()!r} (written by Phi-3 Fine-Tune Studio) for `trl grpo`: its',
        f"reward_funcs name them as {REWARDS_FILE.removesuffix('.py')}.<name>; {REWARDS_LIBRARY} is the studio's",
        '`trainer/rewards.py`, copied unchanged."""',
        "",
        f"from {REWARDS_LIBRARY.removesuffix('.py')} import reward_function",
    ]
    if g.reward_module.strip():
        names = ", ".join(module_functions(g.reward_module))
        lines.append(f"from {MODULE_COPY.removesuffix('.py')} import {names}  # noqa: F401 - the run's own module")
    lines.append("")
    for name, _ in parse_rewards(g.rewards) if g.rewards.strip() else []:
        lines.append(f"{name} = reward_function({name!r}, {columns.get(name)!r}, **{reward_settings(name, g)!r})")
    return "\n".join(lines) + "\n"


def write_rewards(config: RunConfig, run_dir: Path) -> None:
    """A GRPO run's reward files for `trl grpo` (`REWARD_FILES`) in the run folder."""
    import trainer.rewards

    rf.write_text_atomic(run_dir / REWARDS_FILE, rewards_source(config))
    rf.write_text_atomic(run_dir / REWARDS_LIBRARY, Path(trainer.rewards.__file__).read_text(encoding="utf-8"))
    if module := config.grpo.reward_module.strip():
        rf.write_text_atomic(run_dir / MODULE_COPY, Path(module).expanduser().read_text(encoding="utf-8"))


def _fields(method: str) -> tuple:
    """The fields of the method's TRL config class."""
    import dataclasses

    return dataclasses.fields(config_class(method))


def unknown_keys(settings: dict[str, Any], method: str = "sft") -> list[str]:
    """Keys that no dataclass of `trl <method>` knows (TRL would hand them to accelerate as arguments)."""
    import dataclasses

    from trl import ModelConfig, ScriptArguments
    from trl.scripts.grpo import GRPOScriptArguments

    script = GRPOScriptArguments if method == "grpo" else ScriptArguments  # reward_funcs: `trl grpo`'s own
    known = {f.name for cls in (script, ModelConfig) for f in dataclasses.fields(cls)}
    known |= {f.name for f in _fields(method)}
    return sorted(set(settings) - known)


def header(config: RunConfig, data_format: str, rows: dict[str, int], on_gpu: bool) -> str:
    """The comment block at the top of the file: how to run it, and what TRL has no setting for."""
    d, t = config.data, config.training

    def said(value: Any) -> str:  # a user's text as one JSON literal: it cannot end the comment line
        return json.dumps(value, ensure_ascii=False)

    applied = [f"source {said(Path(d.dataset_name).name if Path(d.dataset_name).exists() else d.dataset_name)}"]
    applied.append(f"format {d.format} (read as {data_format})")
    for label, value in (
        ("config", d.dataset_config),
        ("train split", d.dataset_train_split),
        ("eval split", d.dataset_test_split),
        ("column mapping", d.column_mapping),
        ("placeholders", d.placeholders),
        ("system prompt", d.system_prompt),
        ("max rows", d.max_rows),
    ):
        if value:
            applied.append(f"{label} {said(value)}")
    if not d.dataset_test_split and rows.get("test"):
        applied.append(f"{d.eval_fraction:g} of the rows held out for evaluation (seed {t.seed})")
    method = t.method
    columns = {
        "sft": "chat messages",
        "dpo": "prompt/chosen/rejected",
        "kto": "prompt/completion/label",
        "grpo": "prompts with the columns the rewards read",
    }[method]
    lines = [
        f"Run {said(config.display_name())} as stock TRL runs it (written by Phi-3 Fine-Tune Studio, for TRL 1.16).",
        f"Run it in this folder: trl {method} --config {TRL_FILES[method]}   (the adapter goes to {TRL_OUTPUT_DIR}/)",
        f"Data: {TRL_DATA_DIR}/ holds the rows as the studio prepared them, as {columns} "
        f"({rows.get('train', 0)} train, {rows.get('test', 0)} held out as the test split); applied there: "
        + "; ".join(applied)
        + ".",
        "Not repeated by TRL (no setting for it): the sample replies before/after (samples.json)"
        + ("; the held-out prompts' mean reward before/after" if method == "grpo" else "")
        + (
            f"; the push to {config.hub.repo_id} (push {TRL_OUTPUT_DIR}/ with `hf upload`)"
            if config.hub.repo_id
            else ""
        )
        + ".",
    ]
    if t.padding_free and not t.packing and method == "sft":
        lines.append(
            f"Padding-free batches: TRL keeps rows whole (max_length: null); the studio cut rows over {t.max_length} "
            "tokens to that length."
        )
    if config.model.adapter_name_or_path:
        lines.append(
            f"This run continued from the adapter {said(Path(config.model.adapter_name_or_path).name)}; stock TRL "
            "has no setting to load one, so this file trains a fresh adapter with the same LoRA settings"
            + ("; its reference is then the bare base, not that adapter." if method != "sft" else ".")
        )
    if method == "grpo":
        lines.append(
            f"Rewards: {REWARDS_FILE} binds the run's rewards (reward_funcs) from {REWARDS_LIBRARY}, the studio's own "
            "reward code copied unchanged; TRL imports them from this folder."
        )
    if config.model.model_name_or_path == TINY_MODEL_NAME:
        lines.append("tiny-phi3 is the studio's tiny offline Phi-3, built on this machine at model_name_or_path.")
    if not on_gpu:
        lines.append("Written on a CPU (use_cpu: true). On a GPU: use_cpu: false, dtype: bfloat16, bf16: true.")
    return "".join(f"# {line}\n" for line in lines)


def write_trl_export(config: RunConfig, run_dir: Path, prepared: Any, on_gpu: bool) -> Path | None:
    """Write `trl_data/` (the prepared rows as JSONL) and `trl_<method>.yaml` into the run folder.

    Args:
        config: the run config, as trained.
        run_dir: the run folder.
        prepared: the prepared data (`trainer.data.prepare`, or `prepare_preferences` for DPO and KTO): `.train`,
            `.eval` (or None), `.format`.
        on_gpu: whether the run trains on a CUDA GPU.

    Returns:
        The path of the file written; None for a method stock TRL's CLI has no command for (ORPO).
    """
    import yaml

    from trainer.modeling import pick_dtype, resolve_model_path

    method = config.training.method
    if method not in TRL_FILES:
        return None
    columns = list(prepared.train.column_names)
    empty = {name: [] for name in columns}
    splits = {"train": prepared.train, "test": prepared.eval if prepared.eval is not None else empty}
    rows = {}
    for split, dataset in splits.items():
        values = [dataset[name] for name in columns]
        records = [dict(zip(columns, map(_without_nones, row), strict=True)) for row in zip(*values, strict=True)]
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        path = run_dir / TRL_DATA_DIR / SPLIT_FILES[split]
        if text:
            rf.write_text_atomic(path, text)
        else:
            path.unlink(missing_ok=True)
        rows[split] = len(records)
    name = config.model.model_name_or_path
    settings = trl_settings(
        config,
        model_path=resolve_model_path(name) if name == TINY_MODEL_NAME else name,
        dtype=str(pick_dtype(config.model)).removeprefix("torch."),
        on_gpu=on_gpu,
        has_eval=rows["test"] > 0,
    )
    if unknown := unknown_keys(settings, method):  # never hand TRL a key it would pass on to accelerate
        raise TypeError(f"{TRL_FILES[method]}: {unknown} are not fields of trl {method}'s dataclasses")
    body = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True)
    if method == "grpo":
        write_rewards(config, run_dir)
    return rf.write_text_atomic(run_dir / TRL_FILES[method], header(config, prepared.format, rows, on_gpu) + body)


def _without_nones(value: Any) -> Any:
    """A column's value as JSON for TRL: messages without the keys `datasets` filled with None (a turn's missing
    `tool_calls`, say)."""
    if isinstance(value, list):
        return [{k: v for k, v in turn.items() if v is not None} if isinstance(turn, dict) else turn for turn in value]
    return value


def trl_file_of(run_dir: Path) -> Path | None:
    """The run's `trl_<method>.yaml`, if it wrote one."""
    return next((Path(run_dir) / f for f in TRL_FILES.values() if (Path(run_dir) / f).is_file()), None)
