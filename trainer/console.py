"""A run's events as console lines: what `python -m trainer train` prints while it trains."""

from __future__ import annotations

import json


def print_event(event: dict) -> None:
    """Print a run's event as a console line (and, in a Hugging Face Job, as the JSON line the Space follows)."""
    from trainer.paths import env_setting
    from trainer.runs.remote import EVENT_PREFIX, EVENTS_ENV

    if env_setting(EVENTS_ENV):  # in a Hugging Face Job: the Space follows the run from these log lines
        print(EVENT_PREFIX + json.dumps(event, default=str), flush=True)
    if "message" in event:
        print(f"[step {event.get('step')}] {event['message']}", flush=True)
        return
    if event.get("completions"):  # GRPO: one of the completions the rewards scored
        first = event["completions"][0]
        text = " ".join(first["completion"].split())[:100]
        print(f"[step {event.get('step')}] completion (reward {first['reward']}): {text}", flush=True)
        return
    parts = [f"step {event.get('step')}/{event.get('total_steps', '?')}"]
    for key, fmt in (
        ("loss", "loss {:.4f}"),
        ("eval_loss", "eval_loss {:.4f}"),
        ("reward", "reward {:.3f}"),
        ("lr", "lr {:.2e}"),
        ("tokens_per_s", "{:.0f} tok/s"),
        ("eta_s", "ETA {:.0f} s"),
        ("gpu_mem_gb", "{:.1f} GB"),
    ):
        if event.get(key) is not None:
            parts.append(fmt.format(event[key]))
    print("  ".join(parts), flush=True)
