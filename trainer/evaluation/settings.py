"""What an evaluation is asked to do: `EvalSettings`, the one source of its options (the CLI's flags, the Runs
tab's form and the request a queued evaluation carries), and the estimate of its cost before it starts.

Its results go to the run folder's `eval/` (`trainer.runs.folder.EVAL_DIR`): results.json and summary.json below,
and the request, status and log of the queued evaluation that made them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

Source = Literal["held-out", "file", "dataset"]
MAX_ROWS = 1000
MAX_NEW_TOKENS = 1024


@dataclass
class EvalSettings:
    """One evaluation of a run: which prompts, how many, how long each answer may be.

    Attributes:
        source: "held-out" (the rows the run held out, the same split as training made), "file" (a file of chat
            rows with references, in any format training reads) or "dataset" (a Hub dataset and split).
        path: the file (source "file") or the Hub dataset ID (source "dataset").
        split: the dataset's split (source "dataset").
        rows: at most this many prompts, the first ones.
        max_new_tokens: the longest answer, for each model (greedy decoding, stopping at `<|end|>`).
        batch_size: prompts per batched decode (each prompt is two rows: base and tuned).
    """

    source: Source = "held-out"
    path: str | None = None
    split: str = "test"
    rows: int = 100
    max_new_tokens: int = 128
    batch_size: int = 8

    def problems(self) -> list[str]:
        """What is wrong with these settings, each with its fix (empty: they can run)."""
        found = []
        if self.source not in ("held-out", "file", "dataset"):
            found.append(f"source {self.source!r}: pick held-out, file or dataset.")
        if self.source in ("file", "dataset") and not (self.path or "").strip():
            what = "a prompt file" if self.source == "file" else "a Hub dataset ID"
            found.append(f"source {self.source}: give {what} (or evaluate on the held-out rows).")
        for name, low, high in (("rows", 1, MAX_ROWS), ("max_new_tokens", 1, MAX_NEW_TOKENS), ("batch_size", 1, 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                found.append(f"{name} {value!r}: a whole number from {low} to {high}.")
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalSettings:
        """The settings from a dict (a request file, a form); unknown keys are refused with their names."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown evaluation settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def save(self, path: Path) -> None:
        from trainer.runs.folder import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> EvalSettings:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class EvalEstimate:
    """What an evaluation will cost, known before it starts."""

    prompts: int
    generated_tokens: int  # at most: both models, every prompt, max_new_tokens each
    decode_steps: int  # batched decode steps, at most
    seconds: float | None  # None: no basis for a figure on this device
    basis: str

    def markdown(self) -> str:
        time = f"about {self.seconds:,.0f} s" if self.seconds is not None else "time unknown"
        return (
            f"**Evaluation estimate:** {self.prompts} prompts × 2 models, at most {self.generated_tokens:,} new "
            f"tokens in {self.decode_steps:,} batched decode steps; {time} ({self.basis})."
        )


def estimate_eval(
    settings: EvalSettings, prompts: int, step_s: float | None, basis: str, forward_s: float = 0.0
) -> EvalEstimate:
    """The evaluation's size and time: `prompts` (after the rows limit) in batches of `batch_size` prompts, each
    batch up to `max_new_tokens` decode steps of `step_s` seconds, plus one scoring pass per batch (`forward_s`)."""
    prompts = min(prompts, settings.rows)
    batches = math.ceil(prompts / settings.batch_size) if prompts else 0
    steps = batches * settings.max_new_tokens
    seconds = None if step_s is None else steps * step_s + batches * forward_s
    return EvalEstimate(prompts, 2 * prompts * settings.max_new_tokens, steps, seconds, basis)
