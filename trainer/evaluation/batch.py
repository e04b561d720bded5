"""The base and the tuned model answer the same prompts, and score the references, from ONE copy of the base.

As in the side-by-side chat (`trainer.chat`), each prompt is two rows of one batch: one with the adapter disabled
(PEFT's `"__base__"`) and one with it enabled, so a batch of k prompts is one `generate` of 2k rows (greedy, left
padded, stopping at `<|end|>`). Where a layer type cannot mix adapters, both sides are answered in two passes, the
base inside `disable_adapter()`. The references are scored the same way: one forward pass over prompt + reference,
the loss counted on the reference tokens only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from trainer.chat import ADAPTER_NAME, BASE_ADAPTER, ChatEngine
from trainer.samples import left_padded

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


def prompt_of(messages: Messages) -> Messages:
    """The conversation up to its last assistant turn (all of it when there is none)."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return messages[: turns[-1]] if turns else list(messages)


def reference_of(messages: Messages) -> str | None:
    """The reply the data gives for the prompt: its last assistant turn, None when the row has none."""
    return messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None


@contextmanager
def _side(engine: ChatEngine, side: str) -> Iterator[None]:
    """The model as one side sees it, for the two-pass fallback: the adapter disabled (base) or active (tuned)."""
    if side == "base":
        with engine.model.disable_adapter():
            yield
    else:
        engine.model.set_adapter(ADAPTER_NAME)
        yield


def _generate(engine: ChatEngine, rows: Sequence[list[int]], adapter_names, max_new_tokens: int) -> list[list[int]]:
    """Greedy new tokens of each row (cut after its first stop token)."""
    import torch

    from trainer.phi3 import stop_token_ids

    stops = stop_token_ids(engine.tokenizer)
    ids, mask = left_padded(rows, engine.tokenizer.pad_token_id, engine.model.device)
    kwargs: dict[str, Any] = {"adapter_names": adapter_names} if adapter_names else {}
    with torch.no_grad():
        out = engine.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=engine.tokenizer.pad_token_id,
            use_cache=True,
            **kwargs,
        )
    new = out[:, ids.shape[1] :].tolist()
    cut = []
    for tokens in new:
        end = next((i for i, t in enumerate(tokens) if t in stops), None)
        cut.append(tokens if end is None else tokens[: end + 1])
    return cut


def _nll(engine: ChatEngine, rows: Sequence[list[int]], starts: Sequence[int], adapter_names) -> list[float]:
    """Summed negative log-likelihood of each row's tokens from `starts[i]` on (the reference), one forward pass."""
    import torch

    ids, mask = left_padded(rows, engine.tokenizer.pad_token_id, engine.model.device)
    kwargs: dict[str, Any] = {"adapter_names": adapter_names} if adapter_names else {}
    with torch.no_grad():
        logits = engine.model(input_ids=ids, attention_mask=mask, **kwargs).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    width = ids.shape[1]
    sums = []
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        first = width - len(row) + start  # the reference's first token, in the padded row
        sums.append(float(-logprobs[i, first - 1 :].sum()))
    return sums


def reference_ids(engine: ChatEngine, prompt: Messages, reference: str) -> tuple[list[int], int]:
    """prompt + reference as the chat template renders it, up to the reference's `<|end|>` (the end-of-text token
    the template adds after it is not something the model is asked to say), and where the reference starts."""
    from trainer.phi3 import stop_token_ids

    start = len(engine.prompt_ids(prompt))
    full = engine.tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": reference}], tokenize=True, return_dict=True
    )["input_ids"]
    full = list(full)
    stops = set(stop_token_ids(engine.tokenizer))
    end = next((i for i in range(start, len(full)) if full[i] in stops), len(full) - 1)
    return full[: end + 1], start


def answer_batch(engine: ChatEngine, rows: Sequence[Messages], max_new_tokens: int) -> list[dict[str, Any]]:
    """Both models answer each row's prompt and score its reference: one result per row, with "base" and "tuned"
    answers (text, tokens, stopped, nll_sum and ref_tokens of the reference)."""
    from trainer.phi3 import stop_token_ids

    prompts = [prompt_of(messages) for messages in rows]
    prompt_ids = [engine.prompt_ids(p) for p in prompts]
    references = [reference_of(messages) for messages in rows]
    scored = [i for i, ref in enumerate(references) if ref]
    targets = {i: reference_ids(engine, prompts[i], references[i]) for i in scored}
    answers: dict[str, list[list[int]]] = {}
    nll: dict[str, list[float]] = {}
    if engine.mixed_batches:
        try:
            mixed = [ids for ids in prompt_ids for _ in range(2)]  # prompt i is rows 2i (base) and 2i + 1 (tuned)
            names = [BASE_ADAPTER, ADAPTER_NAME] * len(prompt_ids)
            new = _generate(engine, mixed, names, max_new_tokens)
            answers = {"base": new[0::2], "tuned": new[1::2]}
            if scored:
                full = [targets[i][0] for i in scored for _ in range(2)]
                starts = [targets[i][1] for i in scored for _ in range(2)]
                sums = _nll(engine, full, starts, [BASE_ADAPTER, ADAPTER_NAME] * len(scored))
                nll = {"base": sums[0::2], "tuned": sums[1::2]}
        except (TypeError, ValueError, NotImplementedError) as exc:  # e.g. a quantised layer type
            logger.warning("mixed-adapter batches unsupported here (%s); answering in two passes", exc)
            engine.mixed_batches = False
    if not engine.mixed_batches:
        for side in ("base", "tuned"):
            with _side(engine, side):
                answers[side] = _generate(engine, prompt_ids, None, max_new_tokens)
                if scored:
                    full, starts = zip(*(targets[i] for i in scored), strict=True)
                    nll[side] = _nll(engine, full, starts, None)
    stops = set(stop_token_ids(engine.tokenizer))
    results = []
    for i, prompt in enumerate(prompts):
        result: dict[str, Any] = {"prompt": prompt[-1]["content"], "reference": references[i], "messages": prompt}
        for side in ("base", "tuned"):
            tokens = answers[side][i]
            stopped = bool(tokens) and tokens[-1] in stops
            answer = {
                "text": engine.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                "tokens": len(tokens) - stopped,
                "stopped": stopped,
            }
            if i in targets:
                k = scored.index(i)
                answer["nll_sum"] = round(nll[side][k], 6)
                answer["ref_tokens"] = len(targets[i][0]) - targets[i][1]
            result[side] = answer
        results.append(result)
    return results


def answer_all(
    engine: ChatEngine,
    rows: Sequence[Messages],
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """`answer_batch` over all rows, `batch_size` prompts at a time; `on_batch(done, total)` after each batch, and
    `should_stop()` checked between batches (what was answered so far is returned)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        if should_stop and should_stop():
            break
        results += answer_batch(engine, rows[start : start + batch_size], max_new_tokens)
        if on_batch:
            on_batch(len(results), len(rows))
    return results
