"""Side-by-side chat: the base model and a tuned adapter answer the same prompt, from ONE copy of the base in memory.

One batched `generate` serves both sides: row 0 runs with the adapter disabled and row 1 with it enabled (PEFT's
mixed-adapter batches, `adapter_names=["__base__", name]`). Where a layer type cannot mix adapters in a batch, it
falls back to two passes, the first inside `disable_adapter()`. Both sides use the same sampling settings and seed,
keep their own multi-turn history, stop at `<|end|>` / `<|endoftext|>`, and stream: `stream_pair` yields the two
growing replies after every new token.

Example:
    >>> from trainer.chat import ChatEngine
    >>> engine = ChatEngine.from_run("runs/20261123-101500-run")       # base from the run's config, + its adapter
    >>> base_reply, tuned_reply = engine.reply_pair([msgs], [msgs])[-1]  # or iterate stream_pair(...) to stream
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import ModelConfig
from trainer.phi3 import TINY_MODEL_NAME

logger = logging.getLogger(__name__)

ADAPTER_NAME = "tuned"
BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in mixed-adapter batches


class ChatError(ValueError):
    """A user-facing problem with the chat setup (e.g. an adapter trained for another base)."""


@dataclass
class GenerationSettings:
    """Sampling settings shared by both sides."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    greedy: bool = True
    seed: int = 0


def needs_4bit(model_cfg: ModelConfig, params: int | None, free_bytes: int | None) -> bool:
    """Load the base in 4-bit when its adapter came from a QLoRA run, or when bf16 weights (2 bytes per parameter,
    plus 20 % for activations and the KV cache) would not fit in the free GPU memory (`free_bytes` None: a CPU,
    where only a QLoRA adapter asks for 4-bit)."""
    if model_cfg.load_in_4bit:
        return True
    if free_bytes is None:
        return False
    return params is not None and 2.4 * params > free_bytes


def _parameter_count(model_name_or_path: str) -> int | None:
    """The model's parameter count from its config alone (no weights loaded), or None when unknown."""
    try:
        import torch
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        from trainer.modeling import resolve_model_path

        config = AutoConfig.from_pretrained(resolve_model_path(model_name_or_path))
        with init_empty_weights(), torch.device("meta"):
            return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    except Exception:  # noqa: BLE001 - only a sizing hint
        return None


class ChatEngine:
    """The base model loaded once, with one or more adapters attached by name."""

    def __init__(self, model_cfg: ModelConfig, token: str | bool | None = None):
        import dataclasses

        from trainer.modeling import cuda_available, load_base_model, load_tokenizer
        from trainer.phi3 import configure_generation

        free = None
        if cuda_available():
            import torch

            free = torch.cuda.mem_get_info()[0]
        four_bit = needs_4bit(model_cfg, _parameter_count(model_cfg.model_name_or_path) if free else None, free)
        if four_bit != model_cfg.load_in_4bit:
            logger.info("GPU memory is short for a bf16 copy of the base: loading it in 4-bit for chat")
        model_cfg = dataclasses.replace(model_cfg, load_in_4bit=four_bit)
        self.model_cfg = model_cfg
        self.token = token
        self.tokenizer = load_tokenizer(model_cfg)
        self.tokenizer.padding_side = "left"  # rows of different lengths end where generation starts
        self.base = load_base_model(model_cfg, for_training=False).eval()
        configure_generation(self.base, self.tokenizer)
        self.model = None  # the PeftModel, once an adapter is attached
        self.mixed_batches = True

    @classmethod
    def from_source(
        cls, adapter: str | Path, base: str | None = None, token: str | bool | None = None, local_base: bool = True
    ) -> ChatEngine:
        """From a run folder, or from an adapter repo/folder on top of `base` (default: the adapter's own base).

        local_base=False (a public Space): an adapter whose base names a folder on this machine is refused.
        """
        if (Path(adapter) / "config.yaml").exists() and base is None:
            return cls.from_run(adapter, token)
        if base is None:
            from peft import PeftConfig

            from trainer.online import hub_unreachable

            if not Path(adapter).exists() and (problem := hub_unreachable()):
                raise ChatError(f"adapter {adapter}: cannot be read. {problem}")
            try:
                base = PeftConfig.from_pretrained(str(adapter), token=token).base_model_name_or_path
            except Exception as exc:  # noqa: BLE001 - missing, private, offline, not an adapter: one clear message
                detail = " ".join(str(exc).split())[:200]
                raise ChatError(
                    f"adapter {adapter}: not a run folder, an adapter folder or an adapter repo that can be read "
                    f"({detail}). Check the path or the repo ID, and that your token can read it."
                ) from None
            if not local_base and base != TINY_MODEL_NAME and Path(str(base)).expanduser().exists():
                raise ChatError(f"adapter {adapter}: its base model names a folder on this server; use a Hub base.")
            from trainer.config import LoraSettings
            from trainer.modeling import model_problems

            # the checks Start makes, on the base's config alone: nothing else of it is read before they pass
            if found := model_problems(
                ModelConfig(model_name_or_path=base), LoraSettings(target_modules=["all-linear"]), token
            ):
                raise ChatError(f"adapter {adapter}: its base model cannot be used here. {found[0].split(': ', 1)[1]}")
        engine = cls(ModelConfig(model_name_or_path=base), token)
        engine.add_adapter(Path(adapter) / "adapter" if (Path(adapter) / "adapter").is_dir() else adapter)
        return engine

    @classmethod
    def from_run(cls, run_dir: str | Path, token: str | bool | None = None) -> ChatEngine:
        """The run's base model (unquantised unless it was a QLoRA run) with the run's adapter attached."""
        from trainer.config import load_yaml

        config = load_yaml(Path(run_dir) / "config.yaml")
        engine = cls(config.model, token)
        engine.add_adapter(Path(run_dir) / "adapter")
        return engine

    def add_adapter(self, source: str | Path, name: str = ADAPTER_NAME) -> None:
        """Attach a PEFT adapter (a run's adapter folder or a Hub repo ID) under name.

        Raises:
            ChatError: the adapter was trained for a model with different shapes or modules.
        """
        from peft import PeftModel

        try:
            if self.model is None:
                self.model = PeftModel.from_pretrained(self.base, str(source), adapter_name=name, token=self.token)
            else:
                self.model.load_adapter(str(source), adapter_name=name, token=self.token)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ChatError(
                f"adapter {source}: it does not fit the base model {self.model_cfg.model_name_or_path} ({exc}). "
                "Pick an adapter trained on this base, or load its base model."
            ) from exc
        self.model.eval()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat rendered with the Phi-3 template and a generation prompt, as token ids."""
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(out["input_ids"])

    def stream_pair(
        self,
        base_messages: list[dict[str, str]],
        tuned_messages: list[dict[str, str]],
        settings: GenerationSettings | None = None,
        adapter: str = ADAPTER_NAME,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[str, str]]:
        """Yield (base reply so far, tuned reply so far) after every generated token; stops at `<|end|>`."""
        if self.model is None:
            raise ChatError("no adapter loaded: pick a finished run or an adapter repo first.")
        settings = settings or GenerationSettings()
        rows = [self.prompt_ids(base_messages), self.prompt_ids(tuned_messages)]
        if self.mixed_batches:
            try:
                yield from self._stream(rows, [BASE_ADAPTER, adapter], settings, stop)
                return
            except (TypeError, ValueError, NotImplementedError) as exc:  # e.g. a quantised layer type
                logger.warning("mixed-adapter batches unsupported here (%s); generating in two passes", exc)
                self.mixed_batches = False
        base_reply = ""
        with self.model.disable_adapter():
            for base_reply, _ in self._stream(rows[:1], None, settings, stop):
                yield base_reply, ""
        self.model.set_adapter(adapter)
        for tuned_reply, _ in self._stream(rows[1:], None, settings, stop):
            yield base_reply, tuned_reply

    def reply_pair(
        self, base_messages, tuned_messages, settings: GenerationSettings | None = None, adapter: str = ADAPTER_NAME
    ) -> tuple[str, str]:
        """The two complete replies (see stream_pair)."""
        pairs = list(self.stream_pair(base_messages, tuned_messages, settings, adapter))
        return pairs[-1] if pairs else ("", "")

    def _stream(
        self,
        rows: list[list[int]],
        adapter_names: list[str] | None,
        settings: GenerationSettings,
        stop: threading.Event | None,
    ) -> Iterator[tuple[str, str]]:
        """Run generate in a thread and yield the decoded replies of (up to) two rows as tokens arrive."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from trainer.phi3 import stop_token_ids

        pad = self.tokenizer.pad_token_id
        width = max(map(len, rows))
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.model.device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=input_ids.device)
        streamer = _RowStreamer()
        stops = stop_token_ids(self.tokenizer)

        class _UserStop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), bool(stop and stop.is_set()), device=input_ids.device)

        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": not settings.greedy,
            "eos_token_id": stops,
            "pad_token_id": pad,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_UserStop()]),
            "use_cache": True,
        }
        if not settings.greedy:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        if adapter_names is not None:
            kwargs["adapter_names"] = adapter_names
        errors: list[BaseException] = []

        def work() -> None:
            torch.manual_seed(settings.seed)
            try:
                with torch.no_grad():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the consumer below
                errors.append(exc)
            finally:
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        done = [False] * len(rows)
        tokens: list[list[int]] = [[] for _ in rows]
        for step in streamer:
            for i, token in enumerate(step):
                if not done[i]:
                    tokens[i].append(token)
                    done[i] = token in stops
            replies = [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
            yield (replies[0], replies[1] if len(replies) > 1 else "")
        thread.join()
        if errors:
            raise errors[0]


class EngineCache:
    """The one chat engine a web server keeps in memory (base + adapter); loading another source replaces it.

    It also keeps a Stop flag per browser session (keyed by Gradio's session hash), so one user's Stop ends only
    their own generation.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._source: tuple[str, str | None] | None = None
        self._engine: ChatEngine | None = None
        self._stops: dict[str, threading.Event] = {}  # one Stop flag per browser session with a generation on
        self._stops_lock = threading.Lock()

    def stop_event(self, session: str) -> threading.Event:
        """The Stop flag of one browser session's generation, created on demand (other sessions have their own)."""
        with self._stops_lock:
            return self._stops.setdefault(session, threading.Event())

    def stop(self, session: str) -> None:
        """Stop this session's generation, if it has one on; never another session's."""
        with self._stops_lock:
            event = self._stops.get(session)
        if event is not None:
            event.set()

    def forget_stop(self, session: str) -> None:
        """Drop the session's Stop flag once its generation is done."""
        with self._stops_lock:
            self._stops.pop(session, None)

    def holds(self, source: str, who: str | None = None) -> bool:
        """True when the engine for source, loaded for this user, is already in memory."""
        return self._source == (source, who) and self._engine is not None

    def get(
        self, source: str | None, token: str | bool | None = None, who: str | None = None, local_base: bool = True
    ) -> ChatEngine:
        """The engine for a run folder or an adapter repo ID, loading it (and freeing the previous one) if needed.

        An engine is kept for the user who loaded it (`who`): another user's request loads it again with their own
        token, so a private adapter one user may read is never served to another.

        Raises:
            ChatError: no source was given, or the adapter does not fit its base.
        """
        if not source:
            raise ChatError("Pick a finished run, or type an adapter repo ID.")
        with self._lock:
            if (source, who) != self._source or self._engine is None:
                self._engine = None  # free the old model before loading the next one
                self._engine = ChatEngine.from_source(source, token=token, local_base=local_base)
                self._source = (source, who)
            return self._engine


class _RowStreamer:
    """A transformers streamer for batched generate: yields the list of new token ids (one per row) per step."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(None)

    def __iter__(self):
        while (item := self.queue.get()) is not None:
            yield item


def measure_speed(
    engine: ChatEngine, messages: list[dict[str, str]], settings: GenerationSettings, repeats: int = 5
) -> dict[str, dict[str, float]]:
    """Time until both panes show a token, and generated tokens/s: one batched generate vs two sequential ones.

    Returns:
        {"batched": {...}, "sequential": {...}}, each with ttft_s and tokens_per_s (medians over repeats).
    """
    import statistics
    import time

    figures: dict[str, dict[str, float]] = {}
    saved = engine.mixed_batches
    try:
        for mode, mixed in (("batched", True), ("sequential", False)):
            engine.mixed_batches = mixed
            ttfts, rates = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                first = None
                pair = ("", "")
                for pair in engine.stream_pair(messages, messages, settings):
                    if first is None and pair[0] and pair[1]:  # both panes show text
                        first = time.perf_counter() - start
                elapsed = time.perf_counter() - start
                tokens = sum(len(engine.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in pair)
                ttfts.append(first or elapsed)
                rates.append(tokens / elapsed)
            figures[mode] = {
                "ttft_s": round(statistics.median(ttfts), 4),
                "tokens_per_s": round(statistics.median(rates), 1),
            }
    finally:
        engine.mixed_batches = saved
    return figures
