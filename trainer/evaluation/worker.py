"""One evaluation of a run, start to end: read the prompts, answer them with both models, score, write `eval/`.

`evaluate_run` is what `python -m trainer eval RUN` and a queued evaluation (the Runs tab's Evaluate) both call. The
evaluation folder is a small run folder of its own (`status.json`, `log.txt`, `exit.json`, written through
`trainer.runs.folder`), so the queue starts, watches, cancels and recovers it as it does a training run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from trainer.config import ConfigError, RunConfig, load_yaml
from trainer.data import DataError
from trainer.evaluation.settings import EvalSettings
from trainer.runs import folder as rf
from trainer.runs.state import RunState

logger = logging.getLogger(__name__)


class EvalStopped(Exception):
    """The evaluation stopped before its last prompt (Cancel, or the time limit); what was answered is kept."""

    def __init__(self, message: str, time_limit: bool):
        super().__init__(message)
        self.time_limit = time_limit


class Stop:
    """A Cancel (`should_stop()`) or the time limit, checked between batches; `end` records which and raises."""

    def __init__(self, should_stop: Callable[[], bool] | None, time_limit_s: float | None):
        self.should_stop, self.limit = should_stop, time_limit_s
        self.started, self.time_limit = time.monotonic(), False

    def __call__(self) -> bool:
        self.time_limit = self.limit is not None and time.monotonic() - self.started > self.limit
        return self.time_limit or bool(self.should_stop and self.should_stop())

    def end(self, folder: Path, done: int, total: int, what: str) -> NoReturn:
        """Record the early end in the evaluation's status.json and raise EvalStopped (what was done is kept)."""
        why = "the evaluation time limit" if self.time_limit else "cancelled by the user"
        state = RunState.TIME_LIMIT if self.time_limit else RunState.CANCELLED
        rf.write_status(folder, state, error=f"{why}: {done} of {total} {what}", finished_at=time.time())
        raise EvalStopped(f"{why}; {done} of {total} {what} and kept", self.time_limit)


def source_text(settings: EvalSettings) -> str:
    """Where the prompts came from, for a person (no server path: a file is named by its name)."""
    if settings.source == "file":
        return f"the file {Path(settings.path or '').name}"
    if settings.source == "dataset":
        return f"the Hub dataset {settings.path} ({settings.split})"
    return "the run's held-out rows"


def eval_rows(config: RunConfig, settings: EvalSettings, token: str | bool | None = None) -> list[list[dict]]:
    """The chat rows to evaluate, at most `settings.rows`: the run's held-out rows (the split its training made,
    from the same data and seed), or the first rows of a file or a Hub dataset read as training reads data.

    Raises:
        DataError: no rows (a run that held out none, an empty file), or the data cannot be read.
    """
    from trainer.data import prepare

    if settings.source == "held-out":
        prepared = prepare(config.data, token=token, seed=config.training.seed)
        if prepared.eval is None:
            raise DataError(
                "this run held out no rows (eval fraction 0): evaluate it on a prompt file or a Hub dataset."
            )
        rows = prepared.eval["messages"][: settings.rows]
    else:
        data = dataclasses.replace(
            config.data,
            dataset_name=settings.path or "",
            dataset_config=None,
            dataset_train_split=settings.split if settings.source == "dataset" else "train",
            dataset_test_split=None,
            eval_fraction=0.0,
            format="auto",
            column_mapping={},
        )
        rows = prepare(data, token=token, limit=settings.rows).train["messages"][: settings.rows]
    if not rows:
        raise DataError(f"{source_text(settings)}: no rows to evaluate.")
    return rows


def evaluate_run(
    run_dir: str | Path,
    settings: EvalSettings,
    token: str | bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    time_limit_s: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a finished run: both models answer the prompts, the answers are scored against the references, and
    `eval/` gets results.json, summary.json and chart.png (also when stopped early: the rows answered so far).

    Returns:
        The summary. Raises DataError / ValueError for bad input before any model loads, EvalStopped when
        `should_stop()` became true or the time limit passed.
    """
    from trainer.chat import ChatEngine
    from trainer.evaluation.batch import answer_all
    from trainer.evaluation.metrics import SIDES, score_rows, summarize
    from trainer.evaluation.report import eval_dir, write_results

    run_dir = Path(run_dir)
    if problems := settings.problems():
        raise ConfigError(problems)
    if not (run_dir / rf.ADAPTER_DIR / "adapter_config.json").exists():
        raise ConfigError([f"{run_dir.name}: this run has no adapter yet; evaluate it once it has trained."])
    config = load_yaml(run_dir / rf.CONFIG_FILE)
    folder = eval_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    from trainer.runs.processes import process_start

    rf.write_status(
        folder,
        RunState.RUNNING,
        started_at=time.time(),
        error=None,
        name=f"evaluation of {config.display_name()}",
        pid=os.getpid(),
        pid_start=process_start(os.getpid()),
        settings=settings.to_dict(),
    )
    try:
        rf.set_phase(folder, "reading the prompts")
        rows = eval_rows(config, settings, token)
        rf.set_phase(folder, "loading the models")
        engine = ChatEngine.from_run(run_dir, token)
    except BaseException as exc:
        rf.write_status(folder, RunState.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        raise
    rf.set_phase(folder, "answering")
    stop_now = Stop(should_stop, time_limit_s)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rf.set_phase_steps(folder, done, total)
        logger.info("answered %d of %d prompts", done, total)
        if on_progress:
            on_progress(done, total)

    answered = answer_all(engine, rows, settings.max_new_tokens, settings.batch_size, progress, stop_now)
    seconds = time.monotonic() - started
    size = settings.batch_size
    steps = sum(  # each batch decodes until its longest answer ends: what the next estimate is timed by
        max(row[side]["tokens"] + row[side]["stopped"] for row in answered[i : i + size] for side in SIDES)
        for i in range(0, len(answered), size)
    )
    scored = score_rows(answered)
    complete = len(scored) == len(rows)
    summary = {
        **summarize(scored),
        "source": source_text(settings),
        "base_model": config.model.model_name_or_path,
        "run": config.display_name(),
        "max_new_tokens": settings.max_new_tokens,
        "complete": complete,
        "seconds": round(seconds, 2),
        "decode_steps": steps,
        "finished_at": time.time(),
    }
    write_results(run_dir, {"settings": settings.to_dict(), "rows": scored, "complete": complete}, summary)
    if not complete:
        stop_now.end(folder, len(scored), len(rows), "prompts answered")
    rf.write_status(folder, RunState.SUCCEEDED, finished_at=time.time(), prompts=len(scored))
    return summary


def judge_run(
    run_dir: str | Path,
    settings,
    token: str | bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    ask=None,
    time_limit_s: float | None = None,
) -> dict[str, Any]:
    """Judge the pairs of the run's last evaluation (eval/results.json) with the judge model, both orders each, and
    write eval/judge.json: every judgment with its reason, the tally and the judge's name (also when stopped early).

    `ask` stands in for the judge (tests); by default it is the model through Inference Providers with `token`.
    """
    from trainer.evaluation.judge import inference_ask, judge_pair
    from trainer.evaluation.metrics import judge_tally
    from trainer.evaluation.report import eval_dir, read_rows

    run_dir = Path(run_dir)
    if problems := settings.problems():
        raise ConfigError(problems)
    rows = read_rows(run_dir)[: settings.rows]
    if not rows:
        raise ConfigError(
            [f"{run_dir.name}: no evaluation to judge yet. Evaluate the run first (python -m trainer eval)."]
        )
    folder = eval_dir(run_dir)
    from trainer.runs.processes import process_start

    rf.write_status(
        folder,
        RunState.RUNNING,
        started_at=time.time(),
        error=None,
        pid=os.getpid(),
        pid_start=process_start(os.getpid()),
        name=f"judging with {settings.model}",
    )
    rf.set_phase(folder, "judging")
    ask = ask or inference_ask(settings, token)
    stop_now = Stop(should_stop, time_limit_s)
    pairs: list[dict[str, Any]] = []
    try:
        for row in rows:
            if stop_now():
                break
            pairs.append(judge_pair(ask, settings.rubric, row))
            rf.set_phase_steps(folder, len(pairs), len(rows))
            if on_progress:
                on_progress(len(pairs), len(rows))
    except BaseException as exc:
        rf.write_status(folder, RunState.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        raise
    counts = judge_tally(pairs)
    complete = len(pairs) == len(rows)
    result = {
        "model": settings.model,
        "settings": settings.to_dict(),
        "summary": counts,
        "pairs": pairs,
        "complete": complete,
    }
    rf.write_json_atomic(folder / rf.EVAL_JUDGE_FILE, result)
    if not complete:
        stop_now.end(folder, len(pairs), len(rows), "pairs judged")
    rf.write_status(folder, RunState.SUCCEEDED, finished_at=time.time())
    return result
