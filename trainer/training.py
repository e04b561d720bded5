"""The training path: `run(config, on_event)` fine-tunes Phi-3 with TRL's SFTTrainer and a PEFT LoRA adapter.

It reads top to bottom: validate -> run folder -> data -> model -> trainer -> evaluate before -> train (or resume)
-> evaluate after -> save the adapter only. Everything a person or the web app needs to follow the run is written
to the run folder (see trainer.runs.folder): `events.jsonl` (one JSON object per log/eval step), `status.json`,
`log.txt`, `samples.json` (held-out prompts answered before and after), `versions.json` and `adapter/`.

Under torchrun or accelerate launch (several processes, see trainer.distributed) every process trains, but only the
main one names the run folder and writes to it; the evaluations are shared out, the samples are answered once.

Example:
    >>> from trainer.config import preset_config
    >>> from trainer.training import run
    >>> result = run(preset_config("tiny-demo"), on_event=print)
    >>> result.eval_loss_before, result.eval_loss_after
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer import distributed as dist
from trainer import hubkernels
from trainer.callbacks import (
    CheckpointPusher,
    EventCallback,
    EventHandler,
    RunCancelled,
    RunTimeLimit,
    arm,
    build_for_run,
    disarm,
    raise_if_stopped,
    request_stop,
)
from trainer.config import ConfigError, RunConfig, hint, save_yaml
from trainer.methods import PROJECT_ONLY_SETTINGS
from trainer.phi3 import TINY_MODEL_NAME
from trainer.runs import folder as rf
from trainer.runs import processes
from trainer.runs.state import RunState
from trainer.tools.tiny import tiny_model_built
from trainer.trackers import tracker_environment, tracker_problems
from trainer.trl_export import write_trl_export

__all__ = ["PROJECT_ONLY_SETTINGS", "RunCancelled", "RunResult", "RunTimeLimit", "request_stop", "run"]

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    adapter_dir: Path
    global_step: int
    eval_loss_before: float | None
    eval_loss_after: float | None
    samples: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None  # the trained PeftModel, only when run(..., return_model=True)


def run(
    config: RunConfig,
    on_event: EventHandler | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    token: str | None = None,
    return_model: bool = False,
    time_limit_s: float | None = None,
) -> RunResult:
    """Fine-tune the base model with LoRA/QLoRA as configured and save only the adapter.

    Args:
        config: the run config (validated here; nothing loads if it is invalid).
        on_event: called with every event dict also written to events.jsonl.
        run_dir: the run folder (a new one under the data dir when None).
        resume: continue from the last checkpoint in run_dir/checkpoints.
        token: Hugging Face token for private/gated data and models (never written anywhere).
        return_model: keep the trained PeftModel in the result (otherwise it is freed).
        time_limit_s: stop after this many seconds (from now), with a checkpoint, like a Cancel (RunTimeLimit).

    Returns: a RunResult with the adapter folder and the eval loss before/after.

    Raises:
        ConfigError: the config is invalid. ValueError (e.g. DataError): the data or machine cannot serve the run.
    """
    # --- 1. check before spending anything (an adapter to continue from first: its configs only, no weights); the
    # config's own values were validated where it was read (load_config, preset_config, RunService.start)
    hubkernels.set_allowed(config.model.hub_kernels)  # before anything imports bitsandbytes
    from trainer.modeling import adapter_problems, environment_problems, model_problems

    if found := adapter_problems(config.model, token) or tracker_problems(config):
        raise ConfigError(found)
    asked = config
    parent, config = continued_from(config, token)  # the adapter's own LoRA settings rule (recorded in config.yaml)
    if found := environment_problems(config.model) or model_problems(config.model, config.lora, token):
        raise ConfigError(found)

    from trainer.data import resolve_local_path

    resolve_local_path(config.data.dataset_name)  # a missing file is reported before any folder is made

    # --- 2. the run folder: one for all processes, named by the main one, written only by it
    dist.start()
    if run_dir is None:
        run_dir = dist.share(str(rf.new_run_dir()) if dist.is_main() else None)
    run_dir = Path(run_dir)
    os.environ.update(tracker_environment(config, run_dir, os.environ))  # the tracker's files go in the run folder
    pids = dist.gather([os.getpid(), processes.process_start(os.getpid())])  # each with its start: no later one
    if not dist.is_main():  # a helper process: trains its share, writes nothing, logs only errors
        logging.getLogger("trainer").setLevel(logging.ERROR)
        try:
            return _train(config, run_dir, lambda event: None, resume, token, return_model)
        finally:
            dist.stop()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(config, run_dir / rf.CONFIG_FILE)
    log_handler = _attach_log_file(run_dir)
    emit = _event_writer(run_dir, on_event)
    earlier = (rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}).get("started_at") if resume else None
    rf.write_status(
        run_dir,
        RunState.RUNNING,
        started_at=earlier or time.time(),
        error=None,
        name=config.display_name(),
        pid=pids[0][0],
        pid_start=pids[0][1],
        worker_pids=pids,  # every training process (torchrun starts each in its own session)
        launcher=[os.getppid(), processes.process_start(os.getppid())] if dist.world_size() > 1 else None,
        world_size=dist.world_size(),
        push_state=None,  # an earlier attempt's push is over
        parent_run=parent,
    )
    if parent:
        replaced = f" (they replace the config's {lora_text(asked)})" if asked.lora != config.lora else ""
        logger.info("continuing from %s with its own LoRA settings: %s%s", parent["name"], lora_text(config), replaced)
    arm(time_limit_s)
    try:
        if config.model.model_name_or_path == TINY_MODEL_NAME and not tiny_model_built():
            build_for_run(run_dir)  # the demo model, once per machine: a phase of its own, with its progress
        rf.set_phase(run_dir, "preparing data")
        result = _train(config, run_dir, emit, resume, token, return_model)
    except RunCancelled as exc:
        state = RunState.TIME_LIMIT if isinstance(exc, RunTimeLimit) else RunState.CANCELLED
        rf.write_status(run_dir, state, error=str(exc), finished_at=time.time())
        raise
    except BaseException as exc:
        rf.write_status(run_dir, RunState.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        if isinstance(exc, ValueError):  # a config or data problem (DataError, ConfigError): the message says it all
            logger.error("run failed: %s", exc)
        else:
            logger.exception("run failed")
        raise
    finally:
        disarm()
        logging.getLogger().removeHandler(log_handler)
        log_handler.close()
        dist.stop()
    losses = {"eval_loss_before": result.eval_loss_before, "eval_loss_after": result.eval_loss_after}
    rf.write_status(run_dir, RunState.SUCCEEDED, finished_at=time.time(), step=result.global_step, **losses)
    return result


def _train(
    config: RunConfig, run_dir: Path, emit: EventHandler, resume: bool, token: str | None, return_model: bool
) -> RunResult:
    import torch
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from trainer import data as data_mod
    from trainer.config.methods import PREFERENCE_METHODS
    from trainer.data.prompts import prepare_prompts
    from trainer.grpo import CompletionsCallback, held_out_reward
    from trainer.methods import drop_reference_copy, preference_metrics, sample_conversations
    from trainer.modeling import load_base_model, load_tokenizer
    from trainer.phi3 import configure_generation
    from trainer.samples import Reply, generate_samples, sample_records

    logger.info("config:\n%s", config.to_yaml())
    set_seed(config.training.seed)
    main = dist.is_main()  # the only process that writes to the run folder

    def phase(name: str) -> None:
        if main:
            rf.set_phase(run_dir, name)

    # --- 3. data: load, detect, normalise to chat messages (preference methods: TRL's pairs), hold out eval rows
    method = config.training.method
    if method == "sft":
        prepared = data_mod.prepare(config.data, token=token, seed=config.training.seed)
    elif method == "grpo":  # prompts, with the columns the rewards read
        prepared = prepare_prompts(config, token=token, seed=config.training.seed)
    else:
        from trainer.data.preferences import prepare_preferences

        prepared = prepare_preferences(config.data, method, token=token, seed=config.training.seed)
    for problem in prepared.problems:
        logger.warning("data: %s", problem)
    if prepared.problems:
        emit({"step": 0, "message": f"{len(prepared.problems)} malformed rows skipped (see log.txt)"})
    n_eval = len(prepared.eval) if prepared.eval is not None else 0
    logger.info("data: %s format, %d train rows, %d eval rows", prepared.format, len(prepared.train), n_eval)
    if main:  # trl_<method>.yaml + trl_data/ (SFT, DPO, KTO: the methods stock TRL's CLI has)
        write_trl_export(config, run_dir, prepared, on_gpu=torch.cuda.is_available())

    # --- 4. model: tokenizer with a non-stop pad token, frozen base, LoRA config
    phase("loading the model")
    tokenizer = load_tokenizer(config.model)
    t = config.training
    chats = prepared.train["messages"] if method == "sft" else None  # pairs: TRL keeps the prompt, cuts the reply
    if chats is not None and (problem := data_mod.reply_room_problem(tokenizer, chats, t.max_length)):
        raise data_mod.DataError(problem)  # before the model loads
    model = load_base_model(config.model, for_training=True, gradient_checkpointing=t.gradient_checkpointing)
    if config.model.adapter_name_or_path:  # continue: the adapter goes on the (k-bit prepared) base, trainable
        from trainer.modeling import adapter_source, load_adapter_for_training

        model = load_adapter_for_training(model, adapter_source(config.model.adapter_name_or_path, token), token)
    configure_generation(model, tokenizer)
    batch = (t.per_device_train_batch_size, t.gradient_accumulation_steps, dist.world_size())
    rows = batch[0] * batch[1] * batch[2]
    logger.info("effective batch %d rows (%d x %d x %d processes), up to %d tokens", rows, *batch, rows * t.max_length)

    # --- 5. the trainer: TRL does formatting, assistant-only masks, packing and the loop
    set_seed(config.training.seed)  # the LoRA A matrices are initialised inside, from this seed
    callback = EventCallback(emit)
    callbacks = [callback]
    if method == "grpo":  # a few completions and their rewards in the events, every few logs
        callbacks.append(CompletionsCallback(emit))
    if main and config.hub.repo_id and config.hub.push_checkpoints:  # one upload per checkpoint, by the main process
        callbacks.append(CheckpointPusher(config, token, emit))
    padding_free = t.padding_free and not t.packing and method == "sft"
    trainer = make_trainer(config, run_dir, model, tokenizer, prepared.train, prepared.eval, callbacks, padding_free)
    if padding_free:  # TRL does not truncate padding-free batches: cut over-long rows here, from TRL's own tokens
        truncated, dropped = fit_to_max_length(trainer, t.max_length)
        if truncated:
            emit(
                {
                    "step": 0,
                    "message": f"{truncated} rows exceed max_length {t.max_length}: truncated to "
                    f"{t.max_length} tokens"
                    + (f", {dropped} left with no reply to learn were dropped" if dropped else ""),
                }
            )
        n_eval = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    trainable, total = count_parameters(trainer.model)
    logger.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100 * trainable / total)
    held_out, held_rows = (prepared.eval if n_eval else None), n_eval
    if method == "grpo":  # the trainer evaluates nothing: the run scores GRPO's held-out prompts itself
        n_eval = 0
    asked = held_out if held_out is not None else prepared.train
    sample_rows = sample_conversations(asked, t.sample_prompts, config.grpo.answer_column)
    if trainer.is_fsdp_enabled and (sample_rows or held_out is not None):  # a sharded model answers only with
        sample_rows, held_out = [], None  # every process in step: not here (nor GRPO's held-out reward)
        emit({"step": 0, "message": "FSDP: the held-out prompts are not answered; compare in the Compare tab"})

    # --- 6. evaluate where the run starts (the untouched base, adapter B = 0; or the parent adapter) unless resuming
    checkpoint = get_last_checkpoint(str(run_dir / rf.CHECKPOINTS_DIR)) if resume else None
    status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
    if checkpoint:
        resumed_step = int(rf.read_json(Path(checkpoint) / "trainer_state.json")["global_step"])
        if main:
            rf.truncate_events(run_dir, resumed_step)
        emit({"step": resumed_step, "message": f"resumed from checkpoint at step {resumed_step}"})
        eval_before = status.get("eval_loss_before")
        samples_before = {
            s["prompt_text"]: Reply(s["before"], bool(s.get("before_stopped")))
            for s in rf.read_json(run_dir / rf.SAMPLES_FILE, [])
        }
    else:
        if resume:
            logger.warning("no checkpoint in %s; starting from step 0", run_dir / rf.CHECKPOINTS_DIR)
        if main:
            rf.truncate_events(run_dir, -1)
        phase("evaluating before")
        samples_before = {}
        if main:
            samples_before = generate_samples(trainer.model, tokenizer, sample_rows, t.sample_max_new_tokens)
            rf.write_json_atomic(run_dir / rf.SAMPLES_FILE, sample_records(sample_rows, tokenizer, samples_before, {}))
        dist.barrier()
        measured = trainer.evaluate() if n_eval else {}  # every process evaluates its share
        eval_before = measured.get("eval_loss")
        if main and method in PREFERENCE_METHODS:  # the held-out pairs' preference accuracy and margin at the start
            rf.write_status(run_dir, None, preference_before=preference_metrics(measured))
        if main and method == "grpo" and held_out is not None:  # the held-out prompts' mean reward at the start
            rf.write_status(run_dir, None, reward_before=held_out_reward(trainer, tokenizer, held_out))
    if main:
        rf.write_status(run_dir, None, eval_loss_before=eval_before, eval_rows=held_rows)
    if (parent := status.get("parent_run")) and not checkpoint:
        emit({"step": 0, "message": f"continuing from {parent['name']}; its own LoRA settings: {lora_text(config)}"})

    # --- 7. train
    phase("training")
    dist.ready_for_ddp(trainer)
    trainer.train(resume_from_checkpoint=checkpoint)
    raise_if_stopped(trainer.state.global_step, emit)

    # --- 8. evaluate the tuned model (unless the loop just did, at the final step), answer the samples again
    phase("evaluating after")
    eval_after = None
    if n_eval:
        last_step, measured = callback.last_eval
        if last_step != trainer.state.global_step:  # the loop did not just evaluate at the final step
            measured = trainer.evaluate()
        eval_after = measured["eval_loss"]
        if main and method in PREFERENCE_METHODS:
            rf.write_status(run_dir, None, preference_after=preference_metrics(measured))
    if main and method == "grpo" and held_out is not None:
        rf.write_status(run_dir, None, reward_after=held_out_reward(trainer, tokenizer, held_out))
    samples = []
    if main:
        samples_after = generate_samples(trainer.model, tokenizer, sample_rows, t.sample_max_new_tokens)
        samples = sample_records(sample_rows, tokenizer, samples_before, samples_after)
        rf.write_json_atomic(run_dir / rf.SAMPLES_FILE, samples)
    dist.barrier()

    # --- 9. save only the LoRA weights (+ tokenizer) and the library versions
    phase("saving")
    adapter_dir = run_dir / rf.ADAPTER_DIR
    dist.check_same_adapter(trainer)
    trainer.save_model(str(adapter_dir))  # the adapter and tokenizer, by the main process (gathered first if sharded)
    if not main:
        return RunResult(run_dir, adapter_dir, trainer.state.global_step, eval_before, eval_after)
    (adapter_dir / "training_args.bin").unlink(missing_ok=True)  # the Trainer's pickle: not part of an adapter
    drop_reference_copy(adapter_dir)  # a continued DPO/KTO run's frozen copy of its parent adapter
    rf.write_json_atomic(run_dir / rf.VERSIONS_FILE, run_versions())
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    emit({"step": trainer.state.global_step, "message": f"saved adapter to {rf.ADAPTER_DIR}/ in the run folder"})
    model = trainer.model if return_model else None
    return RunResult(run_dir, adapter_dir, trainer.state.global_step, eval_before, eval_after, samples, model)


def continued_from(config: RunConfig, token: str | None = None) -> tuple[dict[str, Any] | None, RunConfig]:
    """For a run that continues from an adapter: its parent, and the config with the adapter's own LoRA settings.

    The adapter's r, alpha, dropout and target modules rule (a loaded adapter keeps its shapes); config.yaml records
    them. The parent (status.json `parent_run`) is named by its run name and, once pushed, its Hub repo; a Hub
    adapter by its repo, an adapter folder by its folder name. Nothing is loaded (configs only).

    Returns:
        (None, config) for a fresh adapter; else (parent, a copy of config with the adapter's LoRA settings).
    """
    if not config.model.adapter_name_or_path:
        return None, config
    from trainer.modeling import adapter_lora_settings, adapter_source

    source = adapter_source(config.model.adapter_name_or_path, token)
    lora = adapter_lora_settings(source, token)
    if set(lora.target_modules) == set(config.lora.target_modules):  # the same modules: keep the config's order
        lora = dataclasses.replace(lora, target_modules=list(config.lora.target_modules))
    parent: dict[str, Any] = {"name": Path(source.load_from).name, "repo_id": None}
    if source.run_dir is not None:
        status = rf.read_json(source.run_dir / rf.STATUS_FILE, {}) or {}
        pushed = status.get("push_state") == "pushed" and status.get("repo_id")
        parent.update(
            name=status.get("name") or source.run_dir.name, repo_id=status.get("repo_id") if pushed else None
        )
    elif not Path(source.load_from).expanduser().exists():  # a Hub adapter repo
        parent.update(name=source.load_from, repo_id=source.load_from)
    return parent, dataclasses.replace(config, lora=lora)


def lora_text(config: RunConfig) -> str:
    """The LoRA settings in a few words (for the log and the events)."""
    lora = config.lora
    targets = ", ".join(lora.target_modules)
    return f"r={lora.r}, alpha={lora.lora_alpha}, dropout={lora.lora_dropout}, targets {targets}"


def make_trainer(
    config: RunConfig, run_dir: Path, model, tokenizer, train_dataset, eval_dataset, callbacks=(), padding_free=False
):
    """TRL's SFTTrainer with the PEFT LoRA config: it wraps the frozen base in a PeftModel and owns the loop.

    padding_free: flatten batches; TRL then tokenises without truncating (see `fit_to_max_length`).
    """
    from peft import PeftModel
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from trainer.methods import sft_config
    from trainer.modeling import lora_config

    if config.training.method == "grpo":  # rewards: TRL's GRPOTrainer (trainer.grpo)
        from trainer.grpo import grpo_trainer

        return grpo_trainer(config, run_dir, model, tokenizer, train_dataset, callbacks)
    if config.training.method != "sft":  # DPO, KTO, ORPO: TRL's trainer for the method (trainer.methods)
        from trainer.methods import preference_trainer

        return preference_trainer(config, run_dir, model, tokenizer, train_dataset, eval_dataset, callbacks)
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, run_dir, has_eval=has_eval, padding_free=padding_free),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if has_eval else None,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else lora_config(config.lora),  # both together raise
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to events.jsonl and the log, not raw dicts on stdout
    return trainer


def fit_to_max_length(trainer, max_length: int) -> tuple[int, int]:
    """Cut the trainer's tokenised rows to max_length, as TRL does for padded batches (it does not when padding-free).

    Lengths are read from the datasets TRL already tokenised (no second tokenisation). Rows are cut at the end
    (TRL's ``keep_start``), and a row left with no trainable token (the prompt alone filled max_length) is dropped;
    when that leaves no eval row, evaluation is turned off.

    Returns:
        (rows truncated, rows dropped), over the train and eval datasets.

    Raises:
        DataError: no train row keeps a token to learn (every prompt fills max_length).
    """
    import pyarrow.compute as pc
    from transformers.trainer_utils import IntervalStrategy

    from trainer.data import DataError

    def fit(dataset):
        lengths = pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()
        if max(lengths, default=0) <= max_length:
            return dataset, 0, 0
        cut = dataset.map(lambda row: {key: row[key][:max_length] for key in ("input_ids", "labels")})
        kept = cut.filter(lambda row: any(label != -100 for label in row["labels"]))
        return kept, sum(n > max_length for n in lengths), len(cut) - len(kept)

    trainer.train_dataset, truncated, dropped = fit(trainer.train_dataset)
    if len(trainer.train_dataset) == 0:
        raise DataError(
            f"training.max_length: every train row's prompt fills {max_length} tokens, so no reply is left to learn. "
            f"Raise it ({hint('training.max_length')})."
        )
    if trainer.eval_dataset is not None:  # make_trainer passes one Dataset (or None)
        trainer.eval_dataset, more_truncated, more_dropped = fit(trainer.eval_dataset)
        truncated, dropped = truncated + more_truncated, dropped + more_dropped
        if len(trainer.eval_dataset) == 0:
            trainer.eval_dataset, trainer.args.eval_strategy = None, IntervalStrategy.NO
    return truncated, dropped


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, counted by PEFT: a bitsandbytes 4-bit weight counts at its real size.

    (A 4-bit weight is stored packed, two values per byte, so `numel()` alone counts it at half its size.)
    """
    from peft import PeftModel

    return PeftModel.get_nb_trainable_parameters(model)  # only reads model.named_parameters(): any model works


def run_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the run, and the device (the GPU, if any; how many processes)."""
    import torch

    from trainer.versions import library_versions

    versions = library_versions()
    versions["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if dist.world_size() > 1:
        versions["device"] = f"{dist.world_size()} x {versions['device']}"
    return versions


# --------------------------------------------------------------------------- events


def _event_writer(run_dir: Path, on_event: EventHandler | None) -> EventHandler:
    def emit(event: dict[str, Any]) -> None:
        event = {"time": round(time.time(), 3), **event}
        rf.append_event(run_dir, event)
        if event.get("message"):
            logger.info("step %s: %s", event.get("step"), event["message"])
        if on_event is not None:
            on_event(event)

    return emit


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / rf.LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    logging.getLogger("trainer").setLevel(logging.INFO)
    return handler
