"""The TrainerCallbacks of a run: its events, its stop (Cancel or the time limit), and checkpoint pushes.

`EventCallback` turns the Trainer's logs into run events (loss, lr, grad norm, non-padding tokens/s, ETA, GPU
memory) and stops the loop with a checkpoint when `request_stop()` was called (the worker's SIGTERM handler) or the
run's time limit is reached. `CheckpointPusher` uploads each saved checkpoint's adapter in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer import distributed as dist
from trainer.config import RunConfig
from trainer.runs import folder as rf
from trainer.tools.tiny import ensure_tiny_model

EventHandler = Callable[[dict[str, Any]], None]

# Set by request_stop() (the worker's SIGTERM handler): the loop saves a checkpoint and stops at the next step.
_STOP = threading.Event()
_TIME_UP = threading.Event()  # the stop was the training time limit
_DEADLINE: list[float | None] = [None]  # when the training time limit ends (time.time()), set by run()


class RunCancelled(Exception):
    """The run was asked to stop (e.g. SIGTERM from Cancel); a checkpoint was saved, so it can be resumed."""


class RunTimeLimit(RunCancelled):
    """The run reached its training time limit (a Space's per-run limit); a checkpoint was saved, resumable."""


def request_stop() -> None:
    """Ask the run in this process to save a checkpoint and stop after the current step (signal-safe)."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether this process was asked to stop (a Cancel), for the work before the training loop."""
    return _STOP.is_set()


def build_for_run(run_dir: Path) -> None:
    """A run's first phase on a machine without the tiny model: build it (or wait for the build under way, e.g.
    the app's own at start-up), recording the warm-up's steps in status.json; a Cancel stops it.

    Raises:
        RunCancelled: the run was cancelled meanwhile (nothing half-built is left; the next run builds again).
    """
    rf.set_phase(run_dir, rf.BUILD_PHASE)
    shown: list[int] = []

    def progress(done: int, total: int) -> None:
        if stop_requested():
            raise RunCancelled("cancelled while the demo model was being built; start the run again")
        if shown[-1:] != [done]:
            shown.append(done)
            rf.set_phase_steps(run_dir, done, total)

    ensure_tiny_model(on_progress=progress)


def arm(time_limit_s: float | None) -> None:
    """Start a run's clock: with a limit, the run stops (with a checkpoint) that many seconds on. A stop asked for
    before (a Cancel while the worker started) still counts: `disarm` clears the flags when the run ends."""
    _DEADLINE[0] = time.time() + time_limit_s if time_limit_s else None


def disarm() -> None:
    """Clear the stop flags and the deadline once a run in this process has ended (the next one starts afresh)."""
    _STOP.clear()
    _TIME_UP.clear()
    _DEADLINE[0] = None


def raise_if_stopped(step: int, emit: EventHandler) -> None:
    """After the loop: if it stopped early (Cancel or the time limit), say so and raise for the caller.

    With several processes the answer is agreed by all of them (a Cancel that lands after the last step's vote must
    not stop one process while another goes on to evaluate), and none leaves before the main one saved the checkpoint.

    Raises:
        RunTimeLimit: the time limit stopped it. RunCancelled: a Cancel did.
    """
    stop, time_up = dist.any_rank(_STOP.is_set(), _TIME_UP.is_set())
    if not stop:
        return
    why = "the training time limit was reached" if time_up else "cancelled"
    emit({"step": step, "message": f"{why} at step {step}; checkpoint saved, the run can be resumed"})
    raise (RunTimeLimit if time_up else RunCancelled)(f"{why} at step {step}; resume continues from it")


LOGGED_PREFIXES = ("rewards/", "logps/", "eval_rewards/", "eval_logps/")
LOGGED_KEYS = ("kl", "eval_kl", "log_odds_ratio", "eval_log_odds_ratio", "nll_loss", "eval_nll_loss")
LOGGED_KEYS += ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio")
LOGGED_KEYS += ("clip_ratio/region_mean",)  # GRPO's: rewards and their spread, lengths, cut completions, clipping


def logged_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """What a preference method or GRPO logs beside its loss (rewards, log-probabilities, KL; GRPO's rewards and
    their spread, completion lengths, clipped ratios), for the run's events."""
    return {
        key: float(value)
        for key, value in logs.items()
        if (key.startswith(LOGGED_PREFIXES) or key in LOGGED_KEYS) and isinstance(value, (int, float))
    }


def _make_event_callback_class():
    from transformers import TrainerCallback

    class _EventCallback(TrainerCallback):
        """Turns the Trainer's logs into run events: losses, lr, grad norm, non-padding tokens/s, ETA, memory."""

        def __init__(self, emit: EventHandler):
            self.emit = emit
            self.train_start: float | None = None
            self.start_step = 0
            self.last_tokens: tuple[float, float] | None = None  # (time, cumulative non-padding tokens)
            self.last_eval: tuple[int, dict[str, float]] = (-1, {})  # (step, eval_* metrics) of the latest evaluation

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_start = time.time()
            self.start_step = state.global_step
            self.last_tokens = None

        def on_step_end(self, args, state, control, **kwargs):
            time_up = _DEADLINE[0] is not None and time.time() >= _DEADLINE[0] and not _STOP.is_set()
            stop, time_up = dist.any_rank(_STOP.is_set() or time_up, time_up)  # all processes stop at one step
            if time_up:
                _TIME_UP.set()
            if stop:
                _STOP.set()
            if _STOP.is_set():  # Cancel or the time limit: checkpoint now, then stop
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            event: dict[str, Any] = {"step": state.global_step, "total_steps": state.max_steps}
            if state.epoch is not None:
                event["epoch"] = round(state.epoch, 4)
            if "eval_loss" in logs:
                self.last_eval = (state.global_step, {k: v for k, v in logs.items() if k.startswith("eval_")})
            for src, dst in (("loss", "loss"), ("eval_loss", "eval_loss"), ("learning_rate", "lr")):
                if src in logs:
                    event[dst] = logs[src]
            if "grad_norm" in logs:
                event["grad_norm"] = float(logs["grad_norm"])
            event.update(logged_metrics(logs))  # a preference method's rewards, log-probabilities, KL
            if "loss" in logs:
                event.update(self._speed(state, logs))
            if len(event) > 3 or "eval_loss" in event:
                self.emit(event)

        def _speed(self, state, logs) -> dict[str, Any]:
            import torch

            now = time.time()
            out: dict[str, Any] = {}
            if "num_tokens" in logs:
                tokens = float(logs["num_tokens"])
                if self.last_tokens is not None and tokens > self.last_tokens[1] and now > self.last_tokens[0]:
                    out["tokens_per_s"] = round((tokens - self.last_tokens[1]) / (now - self.last_tokens[0]), 1)
                elif self.train_start is not None and self.last_tokens is None and now > self.train_start:
                    out["tokens_per_s"] = round(tokens / (now - self.train_start), 1)
                self.last_tokens = (now, tokens)
            done = state.global_step - self.start_step
            if self.train_start is not None and done > 0 and state.max_steps:
                per_step = (now - self.train_start) / done
                out["eta_s"] = round(per_step * max(state.max_steps - state.global_step, 0), 1)
            if dist.world_size() > 1:  # every process's peak (a gather: on_log runs in all of them at each log)
                out["mem_each_gb"] = dist.gather(dist.peak_memory_gb())
            if torch.cuda.is_available():
                out["gpu_mem_gb"] = max(out.get("mem_each_gb") or [dist.peak_memory_gb()])
            return out

    return _EventCallback


def EventCallback(emit: EventHandler):  # noqa: N802 - a factory that reads like the class it builds
    """A transformers TrainerCallback that forwards logs as run events (built lazily to keep imports light)."""
    return _make_event_callback_class()(emit)


CANCEL_UPLOAD_WAIT_S = 15.0
"""On Cancel, how long training waits for checkpoint uploads (the worker must exit within the cancel grace)."""


def CheckpointPusher(config: RunConfig, token: str | None, emit: EventHandler):  # noqa: N802 - a factory
    """A callback that pushes each saved checkpoint's adapter in the background (training does not wait on the
    upload), then waits for the uploads when training ends. A failed upload is reported, never fatal."""
    from transformers import TrainerCallback

    from trainer.hub import CheckpointUploader, resolve_token

    def done(name: str, problem: str | None) -> None:
        step = name.rsplit("-", 1)[-1]
        message = f"pushed {name} to {config.hub.repo_id}" if problem is None else f"{name} not pushed: {problem}"
        emit({"step": int(step) if step.isdigit() else None, "message": message})

    uploader = CheckpointUploader(config.hub.repo_id, resolve_token(token), config.hub.private, on_done=done)

    class _CheckpointPusher(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            uploader.submit(Path(args.output_dir) / f"checkpoint-{state.global_step}")

        def on_train_end(self, args, state, control, **kwargs):
            if not uploader.wait(CANCEL_UPLOAD_WAIT_S if _STOP.is_set() else None):
                emit({"step": state.global_step, "message": "cancelled before the last checkpoint upload ended"})

    return _CheckpointPusher()
