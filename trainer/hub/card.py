"""The model card of a run: Hub metadata, data, results, samples, usage, settings, versions.

The text lives in one Jinja template, `model_card.md` beside this file, rendered with
`huggingface_hub.ModelCard.from_template(ModelCardData(...), template_path=...)`. The adapter's card and the merged
model's card are the same template (``merged`` switches the parts that differ), so the usage snippet is written once.
A card reads only the run folder (config.yaml, status.json, samples.json, versions.json, events.jsonl): no clock,
no network, the same text every time.

Example:
    >>> from trainer.hub import model_card
    >>> print(model_card(Path("runs/20250101-120000-run"), repo_id="alice/phi3-pirate-lora"))
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from trainer.config import REPO_ID_RE
from trainer.config.methods import TRL_CLASSES
from trainer.hub.chart import LOSS_CURVE_FILE
from trainer.hub.retry import HubError
from trainer.phi3 import TINY_MODEL_NAME
from trainer.rewards import parse_rewards, reward_change
from trainer.runs import folder as rf

MODEL_CARD_FILE = "README.md"
TEMPLATE = Path(__file__).with_name("model_card.md")
HUB_URL = "https://huggingface.co"
MIT_BASES = re.compile(r"phi-?3|phi-?4", re.IGNORECASE)  # Microsoft publishes Phi-3, Phi-3.5 and Phi-4-mini as MIT
DEFAULT_PROMPT = "Tell me about the sea."


def base_model_id(model_name_or_path: str) -> str:
    """The base model as the card names it: the Hub ID when it is one, else the configured name.

    A Hub ID (``microsoft/Phi-3-mini-4k-instruct``) is kept, so the Hub links the adapter to its base. The offline
    tiny model keeps its configured name ``tiny-phi3`` (it is built locally by `trainer.tools.tiny`, there is no
    Hub repo to point at), and a local folder is named by its last path part, never by a machine-specific absolute
    path.
    """
    name = model_name_or_path.strip()
    if name == TINY_MODEL_NAME or (REPO_ID_RE.match(name) and not Path(name).expanduser().is_absolute()):
        return name
    return Path(name).expanduser().name or name


def hub_dataset_id(dataset_name: str) -> str | None:
    """The dataset's Hub ID, or None when the run trained on a local file."""
    from trainer.data import resolve_local_path

    try:
        return None if resolve_local_path(dataset_name) is not None else dataset_name.strip()
    except ValueError:  # a file name that is not (or no longer) there: not a Hub ID either
        return None


def card_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """The model card's YAML metadata for a run config (as read from config.yaml).

    Returns:
        `base_model`, `library_name`, `pipeline_tag`, `license` (for Phi-3-family bases), `tags` and, when the
        data came from the Hub, `datasets`.
    """
    model, data = config.get("model", {}), config.get("data", {})
    base = base_model_id(str(model.get("model_name_or_path", "")))
    method = str(config.get("training", {}).get("method", "sft"))
    tags = ["trl", method, "qlora" if model.get("load_in_4bit") else "lora", "phi3", "generated_from_trainer"]
    meta: dict[str, Any] = {"base_model": base, "library_name": "peft", "pipeline_tag": "text-generation"}
    if MIT_BASES.search(base):
        meta["license"] = "mit"
    meta["tags"] = tags
    if dataset := hub_dataset_id(str(data.get("dataset_name", ""))):
        meta["datasets"] = [dataset]
    return meta


def public_config_text(config_text: str) -> str:
    """A run's config.yaml as it may be published: a local dataset, base model or reward module named by its file name
    only.

    (A run on a Space trains on an upload under the server's data dir; its path is nobody's business.)
    """
    import yaml

    config = yaml.safe_load(config_text) or {}
    data, model, grpo = config.get("data") or {}, config.get("model") or {}, config.get("grpo") or {}
    if grpo.get("reward_module"):
        grpo["reward_module"] = Path(str(grpo["reward_module"])).name
    name = str(data.get("dataset_name") or "")
    if name and hub_dataset_id(name) is None:
        data["dataset_name"] = Path(name).name
    for key in ("model_name_or_path", "adapter_name_or_path"):  # the adapter continued from: its repo or name
        if model.get(key):
            model[key] = base_model_id(str(model[key]))
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def model_card(run_dir: Path, repo_id: str | None = None) -> str:
    """The README.md model card of a finished run's adapter.

    Args:
        run_dir: the run folder.
        repo_id: the repo the card will live in (for the usage snippet); defaults to `hub.repo_id` of the config.

    Returns:
        The card text: a YAML front matter block that `huggingface_hub.ModelCard` parses, then Markdown.

    Raises:
        HubError: run_dir is not a run folder.
    """
    run = _read(run_dir)
    cfg = run.config
    model, data, lora, training = (cfg.get(k, {}) or {} for k in ("model", "data", "lora", "training"))
    repo_id = repo_id or (cfg.get("hub", {}) or {}).get("repo_id") or "<user>/<adapter-repo>"
    meta = card_metadata(cfg)
    if results := benchmark_results(run_dir):  # lm-eval's results of the tuned model, as Hub model-index metadata
        meta.update(model_name=repo_id.split("/")[-1], eval_results=results)
    base = meta["base_model"]
    targets = ", ".join(lora.get("target_modules") or [])
    batch = training.get("per_device_train_batch_size", 0) * training.get("gradient_accumulation_steps", 0)
    return _render(
        run,
        meta,
        repo_id,
        merged=False,
        method="QLoRA (4-bit NF4 base)" if model.get("load_in_4bit") else "LoRA",
        base_link=(
            f"`{base}` (the tiny offline Phi-3 of `trainer.tools.tiny`)" if base == TINY_MODEL_NAME else _link(base)
        ),
        data_lines=_data_lines(data),
        loss_curve=LOSS_CURVE_FILE,
        settings_summary=(
            f"LoRA r={lora.get('r')}, alpha={lora.get('lora_alpha')}, dropout={lora.get('lora_dropout')} on "
            f"{targets}; learning rate {training.get('learning_rate')} ({training.get('lr_scheduler_type')}), "
            f"effective batch {batch} rows, max length {training.get('max_length')} tokens."
            + _method_settings(training, run.config.get("preference", {}), run.config.get("grpo", {}))
        ),
        trainer_name=TRL_CLASSES.get(str(training.get("method", "sft")), TRL_CLASSES["sft"])[1] + "Trainer",
        config_block=_fence(public_config_text(run.config_text), "yaml"),
        versions=run.versions,
        continued_from=continued_from(run.status),
        evaluation=evaluation_section(run_dir),
    )


def continued_from(status: dict[str, Any]) -> str:
    """Where a continued run started (status.json `parent_run`): the parent's Hub repo if it was pushed, else its
    name; "" for a run that trained a fresh adapter."""
    parent = status.get("parent_run") or {}
    if parent.get("repo_id"):
        return _link(str(parent["repo_id"]))
    name = " ".join(str(parent.get("name") or "").split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", name)), default=0) + 1)  # longer than any run inside
    pad = " " if "`" in name else ""
    return f"the run {fence}{pad}{name}{pad}{fence}" if name else ""


def merged_card(run_dir: Path, repo_id: str, adapter_repo_id: str) -> str:
    """The model card of the merged full model: metadata, where it comes from, results and usage."""
    run = _read(run_dir)
    meta = card_metadata(run.config)
    meta.update(library_name="transformers", tags=[*meta["tags"], "merged"])
    return _render(run, meta, repo_id, merged=True, adapter_link=_link(adapter_repo_id))


def _render(run: rf.RunRecord, meta: dict[str, Any], repo_id: str, merged: bool, **values: Any) -> str:
    """Fill the template with what the adapter and the merged card share, plus their own values."""
    from huggingface_hub import ModelCard, ModelCardData

    measure, before, after = "eval loss", run.status.get("eval_loss_before"), run.status.get("eval_loss_after")
    if (run.status.get("reward_before") or {}).get("reward") is not None:  # GRPO: the held-out prompts' reward
        measure = "mean reward (held-out prompts)"
        before, after = run.status["reward_before"]["reward"], (run.status.get("reward_after") or {}).get("reward")
    prompt = next((str(s["prompt"]) for s in run.samples if s.get("prompt")), DEFAULT_PROMPT)
    base = meta["base_model"]
    values.setdefault("continued_from", "")
    values["before_who"] = "the parent adapter" if values["continued_from"] else "the base model"
    card = ModelCard.from_template(
        ModelCardData(**meta),
        template_path=str(TEMPLATE),
        title=repo_id.split("/")[-1],
        merged=merged,
        repo_id=repo_id,
        measure=measure,
        eval_before=_fmt_loss(before),
        eval_after=_fmt_loss(after),
        result_lines=_result_lines(run),
        samples=[] if merged else [_fenced_sample(s) for s in run.samples],
        base_is_tiny=base == TINY_MODEL_NAME,
        base_literal=json.dumps(base),
        repo_literal=json.dumps(repo_id),
        prompt_literal=json.dumps(prompt, ensure_ascii=False),
        fence=_fence_for(prompt),
        **values,
    )
    return str(card)


def _read(run_dir: Path) -> rf.RunRecord:
    try:
        return rf.read_run(Path(run_dir))
    except rf.RunFolderError as exc:
        raise HubError(str(exc)) from None


def _link(repo_id: str, kind: str = "") -> str:
    return f"[{repo_id}]({HUB_URL}/{kind}{repo_id})" if REPO_ID_RE.match(repo_id) else f"`{repo_id}`"


def _fence_for(text: str) -> str:
    """A code fence longer than any backtick run inside text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _fence(text: str, lang: str = "text") -> str:
    """text in a code block whose fence is longer than any backtick run inside it."""
    fence = _fence_for(text)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def _fenced_sample(sample: dict[str, Any]) -> dict[str, str]:
    keys = ("prompt", "before", "after", "reference")
    return {k: _fence(str(sample.get(k) or "")) if k != "reference" or sample.get(k) else "" for k in keys}


def _data_lines(data: dict[str, Any]) -> list[str]:
    name = str(data.get("dataset_name", ""))
    hub_id = hub_dataset_id(name)
    source = f"the Hub dataset {_link(hub_id, 'datasets/')}" if hub_id else f"the local file `{Path(name).name}`"
    lines = [f"Data: {source}"]
    if data.get("dataset_config"):
        lines.append(f"Config: `{data['dataset_config']}`")
    lines.append(f"Train split: `{data.get('dataset_train_split', 'train')}`, row format: `{data.get('format')}`")
    if data.get("dataset_test_split"):
        lines.append(f"Evaluation split: `{data['dataset_test_split']}`")
    elif data.get("eval_fraction"):
        lines.append(f"Evaluation: {100 * float(data['eval_fraction']):.0f} % of the train rows held out (seeded)")
    if data.get("max_rows"):
        lines.append(f"Rows used: the first {data['max_rows']}")
    if data.get("system_prompt"):
        lines.append(f"System prompt added to every row: {data['system_prompt']!r}")
    return lines


def _method_settings(training: dict[str, Any], preference: dict[str, Any], grpo: dict[str, Any]) -> str:
    """A preference method's or GRPO's own settings, for the card's settings sentence ("" for SFT)."""
    method = str(training.get("method", "sft"))
    if method == "sft":
        return ""
    if method == "grpo":
        return " " + _grpo_settings(grpo)
    extra = ""
    if method == "dpo":
        extra = f", loss {preference.get('loss_type')}"
    elif method == "kto":
        weights = f"{preference.get('desirable_weight')}/{preference.get('undesirable_weight')}"
        extra = f", desirable/undesirable weights {weights}"
    return f" Method {method.upper()}: beta {preference.get('beta')}{extra}."


def _grpo_settings(grpo: dict[str, Any]) -> str:
    """GRPO's rewards and their weights (a local reward module by its file name only) and its sampling."""
    try:
        rewards = [f"{name} (weight {weight:g})" for name, weight in parse_rewards(str(grpo.get("rewards") or ""))]
    except ValueError:
        rewards = []
    if module := str(grpo.get("reward_module") or "").strip():
        rewards.append(f"the reward_* functions of a local module `{Path(module).name}` (weight 1 each)")
    return (
        f"Method GRPO: rewards {', '.join(rewards) or 'none'}; {grpo.get('num_generations')} completions per "
        f"prompt of up to {grpo.get('max_completion_length')} tokens at temperature {grpo.get('temperature')}, "
        f"beta {grpo.get('beta')}, loss {grpo.get('loss_type')}."
    )


def _fmt_loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _result_lines(run: rf.RunRecord) -> list[str]:
    """The sentences under the results table: how much the eval loss moved, how long it trained."""
    before, after = run.status.get("eval_loss_before"), run.status.get("eval_loss_after")
    lines = []
    if (drop := rf.loss_drop(before, after)) is not None:
        lines.append(f"Eval loss {'fell' if drop >= 0 else 'rose'} by {abs(100 * drop):.1f} %.")
    if run.status.get("step") is not None:
        train = [e["loss"] for e in run.events if isinstance(e.get("loss"), (int, float))]
        last = _fmt_loss(train[-1] if train else None)
        lines.append(f"Trained for {run.status['step']} optimiser steps; last train loss {last}.")
    before, after = run.status.get("preference_before") or {}, run.status.get("preference_after") or {}
    if "rewards/accuracies" in before and "rewards/accuracies" in after:  # DPO, KTO, ORPO on the held-out rows
        accuracy, margin = "rewards/accuracies", "rewards/margins"
        lines.append(
            f"Held-out preference accuracy (the chosen reply scored above the rejected one) {before[accuracy]:.2f} "
            f"-> {after[accuracy]:.2f}; reward margin {before.get(margin, 0):.2f} -> {after.get(margin, 0):.2f}."
        )
    if line := reward_change(run.status.get("reward_before"), run.status.get("reward_after")):  # GRPO
        lines.append(f"{line[0].upper()}{line[1:]} (greedy completions, scored with the run's rewards and weights).")
    return lines


LM_EVAL_URL = "https://github.com/EleutherAI/lm-evaluation-harness"


def benchmark_results(run_dir: Path) -> list[Any]:
    """The tuned model's lm-eval results (eval/benchmarks.json) as `huggingface_hub.EvalResult`s, [] without."""
    from huggingface_hub import EvalResult

    data = rf.read_json(Path(run_dir) / rf.EVAL_DIR / rf.EVAL_BENCHMARKS_FILE, None)
    if not isinstance(data, dict) or not isinstance(data.get("tuned"), dict):
        return []
    source = f"lm-evaluation-harness {data.get('lm_eval', '')}, {data.get('limit')} rows per task".replace("  ", " ")
    return [
        EvalResult(
            task_type="text-generation",
            dataset_type=task,
            dataset_name=task,
            metric_type=metric,
            metric_value=value,
            source_name=source,
            source_url=LM_EVAL_URL,
        )
        for task, metrics in sorted(data["tuned"].items())
        for metric, value in metrics.items()
    ]


def benchmark_markdown(run_dir: Path) -> str:
    """The benchmarks, base vs tuned, as a Markdown table ("" without)."""
    data = rf.read_json(Path(run_dir) / rf.EVAL_DIR / rf.EVAL_BENCHMARKS_FILE, None)
    if not isinstance(data, dict) or not isinstance(data.get("tuned"), dict):
        return ""
    lines = [
        f"Standard benchmarks (lm-evaluation-harness {data.get('lm_eval', '')}, the first {data.get('limit')} rows "
        "of each task, on the base model and on base + this adapter):",
        "",
        "| task | metric | base | tuned |",
        "| --- | --- | ---: | ---: |",
    ]
    for task, metrics in sorted(data["tuned"].items()):
        for metric, value in metrics.items():
            base = (data.get("base", {}).get(task) or {}).get(metric)
            lines.append(f"| {task} | {metric} | {'' if base is None else base} | {value} |")
    return "\n".join(lines)


def evaluation_section(run_dir: Path) -> dict[str, str] | None:
    """The card's Evaluation section from the run's last evaluation (eval/summary.json) and blind votes
    (eval/votes.json), None without either: what it was evaluated on, the comparison table base vs tuned, its chart,
    and the tuned model's win rate in the votes with its 95 % interval."""
    from trainer.evaluation.metrics import SIDES, comparison_markdown, judge_text, tally_text

    folder = Path(run_dir) / rf.EVAL_DIR
    summary = rf.read_json(folder / rf.EVAL_SUMMARY_FILE, None)
    votes = rf.read_json(folder / rf.EVAL_VOTES_FILE, None)
    judged = rf.read_json(folder / rf.EVAL_JUDGE_FILE, None)
    verdicts = ""
    if isinstance(judged, dict) and isinstance(judged.get("summary"), dict) and judged["summary"].get("pairs"):
        rubric = "each pair judged twice, the tuned answer first and then second, to cancel position bias"
        verdicts = f"Judge model ({rubric}): {judge_text(judged['summary'], judged.get('model', '?'))}.\n\n"
    if benchmarks := benchmark_markdown(run_dir):
        verdicts += benchmarks + "\n\n"
    if isinstance(votes, dict) and votes.get("votes"):
        blind = "people saw the two answers as A and B, not knowing which was which"
        verdicts += f"Blind A/B votes ({blind}): {tally_text(votes)}."
    if not isinstance(summary, dict) or not all(isinstance(summary.get(side), dict) for side in SIDES):
        return {"text": "", "table": "", "chart": "", "verdicts": verdicts} if verdicts else None
    partial = "" if summary.get("complete", True) else " It was stopped early: the figures cover the prompts answered."
    text = (
        f"The base model and this adapter answered the same {summary.get('prompts', '?')} prompts "
        f"({summary.get('source', 'held-out rows')}) greedily, with at most {summary.get('max_new_tokens', '?')} new "
        f"tokens each, scored against the references: BLEU and chrF by sacrebleu, ROUGE-L by rouge-score, and the "
        f"references' perplexity under each model.{partial}"
    )
    chart = f"{rf.EVAL_DIR}/{rf.EVAL_CHART_FILE}" if (folder / rf.EVAL_CHART_FILE).is_file() else ""
    return {"text": text, "table": comparison_markdown(summary), "chart": chart, "verdicts": verdicts}


def commit_description(run_dir: Path) -> str:
    """The commit description of a push: who pushed it and the eval loss before -> after."""
    status = rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}
    before, after = status.get("eval_loss_before"), status.get("eval_loss_after")
    return f"Pushed by Phi-3 Fine-Tune Studio. Eval loss {_fmt_loss(before)} -> {_fmt_loss(after)}."
