"""Standard benchmarks on the base and on base + adapter, with EleutherAI's lm-evaluation-harness (`lm-eval`): what
fine-tuning made the model forget (or learn) outside its own data.

Both sides run the same tasks with the same row limit through lm-eval's `hf` model, the tuned side with `peft=` the
run's adapter. Results go to the run folder's `eval/benchmarks.json`, the Runs tab shows them side by side, and the
model card carries the tuned model's as Hub `model-index` metadata. A folder of local task YAMLs can be added from
the command line (`--include-path`), never from the web app.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.runs import folder as rf

logger = logging.getLogger(__name__)

TASKS = {
    "mmlu": "MMLU: multiple-choice questions on 57 subjects (accuracy)",
    "gsm8k": "GSM8K: grade-school maths word problems (exact match of the final number)",
    "hellaswag": "HellaSwag: the sensible ending of an everyday situation (normalised accuracy)",
    "ifeval": "IFEval: instructions whose following can be checked (strict accuracy)",
    "arc_easy": "ARC-Easy: grade-school science questions (accuracy)",
}
"""The tasks offered in the web app (lm-eval's names), each with a line saying what it measures."""
MAX_LIMIT = 5000


@dataclass
class BenchmarkSettings:
    """Which lm-eval tasks, on how many rows each, for both sides.

    Attributes:
        tasks: lm-eval task names (the web app offers `TASKS`).
        limit: at most this many rows of each task (lm-eval's --limit).
        include_path: a folder of task YAMLs of your own (command line only).
        batch_size: lm-eval's batch size.
        chat_template: render each prompt with the model's chat template (Phi-3 is a chat model).
    """

    tasks: list[str] = field(default_factory=lambda: ["arc_easy"])
    limit: int = 100
    include_path: str | None = None
    batch_size: int = 8
    chat_template: bool = True

    def problems(self) -> list[str]:
        found = []
        if not self.tasks or not all(isinstance(t, str) and t for t in self.tasks):
            found.append(f"tasks: pick one or more of {', '.join(TASKS)}.")
        elif self.include_path is None and (unknown := [t for t in self.tasks if t not in TASKS]):
            found.append(f"tasks: {', '.join(unknown)} not offered here; pick from {', '.join(TASKS)}.")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            found.append(f"limit {self.limit!r}: a whole number of rows from 1 to {MAX_LIMIT}.")
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def headline_metrics(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """lm-eval's results per task, its metrics without their standard errors (keys such as "acc,none" -> "acc")."""
    out: dict[str, dict[str, float]] = {}
    for task, metrics in results.items():
        kept = {}
        for key, value in metrics.items():
            name, _, _filter = key.partition(",")
            if name.endswith("_stderr") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if name in ("sample_len", "sample_count") or not math.isfinite(value):
                continue
            kept[name if _filter in ("", "none") else f"{name} ({_filter})"] = round(float(value), 4)
        if kept:
            out[task] = kept
    return out


def benchmark_table(data: dict[str, Any]) -> list[list[Any]]:
    """[task, metric, base, tuned, change] rows of eval/benchmarks.json."""
    rows = []
    for task, metrics in data.get("tuned", {}).items():
        for metric, tuned in metrics.items():
            base = data.get("base", {}).get(task, {}).get(metric)
            change = f"{tuned - base:+.4f}" if base is not None else ""
            rows.append([task, metric, base, tuned, change])
    return rows


def arm_time_limit(seconds: float) -> None:
    """Interrupt the main thread with EvalStopped after `seconds` (lm-eval's loops have no stop of their own)."""
    from trainer.evaluation.worker import EvalStopped

    def expire(signum, frame):
        raise EvalStopped(f"the benchmarks' time limit of {seconds:.0f} s passed; nothing was kept", time_limit=True)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))


def task_index(settings: BenchmarkSettings) -> Any:
    """lm-eval's TaskManager for the settings: only the task folder's own tasks when every task named is there (its
    index of its built-in tasks takes seconds), else the built-in tasks and the folder's."""
    from lm_eval.tasks import TaskManager

    if settings.include_path:
        local = TaskManager(include_path=settings.include_path, include_defaults=False)
        if set(settings.tasks) <= set(local.all_tasks):
            return local
    return TaskManager(include_path=settings.include_path)


def run_benchmarks(run_dir: str | Path, settings: BenchmarkSettings, time_limit_s: float | None = None) -> dict:
    """Run the tasks on the base model and on base + the run's adapter; write eval/benchmarks.json.

    Raises:
        ConfigError: bad settings, or a run without an adapter (before any model loads). EvalStopped: the time
            limit passed (lm-eval cannot stop between rows: a timer interrupts it, and nothing is kept).
    """
    import lm_eval
    from lm_eval import simple_evaluate

    from trainer.config import ConfigError, load_yaml
    from trainer.modeling import cuda_available, resolve_model_path
    from trainer.runs.state import RunState

    run_dir = Path(run_dir)
    if problems := settings.problems():
        raise ConfigError(problems)
    adapter = run_dir / rf.ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError([f"{run_dir.name}: this run has no adapter yet; run the benchmarks once it has trained."])
    cfg = load_yaml(run_dir / rf.CONFIG_FILE).model
    folder = run_dir / rf.EVAL_DIR
    rf.write_status(folder, RunState.RUNNING, started_at=time.time(), error=None, name="benchmarks")
    rf.set_phase(folder, "benchmarking")
    device = "cuda" if cuda_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"
    sides: dict[str, Any] = {}
    try:
        if time_limit_s is not None:  # armed first: lm-eval's index of its tasks alone takes seconds
            arm_time_limit(time_limit_s)
        tasks = task_index(settings)
        for done, side in enumerate(("base", "tuned")):
            args: dict[str, Any] = {"pretrained": str(resolve_model_path(cfg.model_name_or_path)), "dtype": dtype}
            if cfg.load_in_4bit:
                args["load_in_4bit"] = True
            if side == "tuned":
                args["peft"] = str(adapter)
            names = ", ".join(settings.tasks)
            logger.info("benchmarks on the %s model: %s, %d rows each", side, names, settings.limit)
            out = simple_evaluate(
                model="hf",
                model_args=args,
                tasks=list(settings.tasks),
                task_manager=tasks,
                limit=settings.limit,
                batch_size=settings.batch_size,
                device=device,
                apply_chat_template=settings.chat_template,
                log_samples=False,
            )
            sides[side] = headline_metrics(out["results"])
            rf.set_phase_steps(folder, done + 1, 2)
    except BaseException as exc:
        from trainer.evaluation.worker import EvalStopped

        state = RunState.TIME_LIMIT if isinstance(exc, EvalStopped) else RunState.FAILED
        rf.write_status(folder, state, error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        raise
    finally:
        if time_limit_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
    data = {
        "tasks": list(settings.tasks),
        "limit": settings.limit,
        "chat_template": settings.chat_template,
        "lm_eval": getattr(lm_eval, "__version__", "?"),
        **sides,
    }
    rf.write_json_atomic(folder / rf.EVAL_BENCHMARKS_FILE, data)
    rf.write_status(folder, RunState.SUCCEEDED, finished_at=time.time())
    return data
