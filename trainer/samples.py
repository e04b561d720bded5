"""Sample replies before and after training: held-out prompts answered greedily by the base and by the adapter.

They are written to the run folder's `samples.json` (and shown in the Runs tab and the model card), so a person
sees what the training changed, not only a loss figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class Reply(NamedTuple):
    """A generated reply as a person reads it (no `<|end|>` marker), and whether it ended at a stop token."""

    text: str
    stopped: bool


def generate_samples(model, tokenizer, rows: list[list[dict]], max_new_tokens: int) -> dict[str, Reply]:
    """Greedy replies to the prompts of rows (every message before the last assistant turn), keyed by prompt text."""
    import torch

    from trainer.phi3 import stop_token_ids

    replies = {}
    stops = set(stop_token_ids(tokenizer))
    was_training = model.training
    model.eval()
    for messages in rows:
        prompt = prompt_messages(messages)
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_token_ids(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
        new = out[0, ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] in stops
        replies[text] = Reply(tokenizer.decode(new, skip_special_tokens=True).strip(), stopped)
    model.train(was_training)
    return replies


def prompt_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation up to (not including) its last assistant message."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def sample_records(rows, tokenizer, before: dict[str, Reply], after: dict[str, Reply]) -> list[dict[str, Any]]:
    """The samples.json records: prompt, reference reply, the replies before/after and whether each reached a stop."""
    out = []
    for messages in rows:
        prompt = prompt_messages(messages)
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        out.append(
            {
                "prompt": prompt[-1]["content"],
                "prompt_text": text,
                "reference": messages[-1]["content"] if messages[-1]["role"] == "assistant" else "",
                "before": before[text].text if text in before else None,
                "after": after[text].text if text in after else None,
                "before_stopped": before[text].stopped if text in before else None,
                "after_stopped": after[text].stopped if text in after else None,
            }
        )
    return out


def left_padded(rows: Sequence[list[int]], pad: int, device) -> tuple[Any, Any]:
    """Left-padded input ids and their attention mask."""
    import torch

    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask
