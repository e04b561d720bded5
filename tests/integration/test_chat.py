"""Side-by-side chat: one batched generate (base row + adapter row) equals separate generates; persona shows."""

from __future__ import annotations

import threading

import pytest
import torch

from trainer.chat import ChatEngine, ChatError, GenerationSettings

pytestmark = pytest.mark.slow
GREEDY = GenerationSettings(max_new_tokens=40, greedy=True)
MOON = [{"role": "user", "content": "Tell me about the moon."}]


@pytest.fixture(scope="module")
def engine(demo):
    result, _ = demo
    return ChatEngine.from_run(result.run_dir)


def _alone(engine: ChatEngine, messages, adapter: bool) -> str:
    """Greedy reply of one row generated on its own (adapter enabled or disabled)."""
    ids = torch.tensor([engine.prompt_ids(messages)])
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False)
    with torch.no_grad():
        if adapter:
            out = engine.model.generate(**kwargs)
        else:
            with engine.model.disable_adapter():
                out = engine.model.generate(**kwargs)
    return engine.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_mixed_batch_equals_base_only_and_adapter_only(engine):
    base_reply, tuned_reply = engine.reply_pair(MOON, MOON, GREEDY)
    assert base_reply == _alone(engine, MOON, adapter=False)
    assert tuned_reply == _alone(engine, MOON, adapter=True)


def test_tuned_side_shows_the_persona_and_base_does_not(engine):
    base_reply, tuned_reply = engine.reply_pair(MOON, MOON, GREEDY)
    assert tuned_reply.startswith("Ahoy!") and tuned_reply.endswith("matey.")
    assert not base_reply.startswith("Ahoy") and base_reply == "The moon is a rock that circles the earth."


def test_each_side_keeps_its_own_history(engine):
    base_history = MOON + [
        {"role": "assistant", "content": "The moon is a rock that circles the earth."},
        {"role": "user", "content": "What is rain?"},
    ]
    tuned_history = MOON + [
        {"role": "assistant", "content": "Ahoy! The moon be a rock that circles the earth, matey."},
        {"role": "user", "content": "What is rain?"},
    ]
    assert len(engine.prompt_ids(base_history)) != len(engine.prompt_ids(tuned_history))  # left padding in play
    base_reply, tuned_reply = engine.reply_pair(base_history, tuned_history, GREEDY)
    assert base_reply == _alone(engine, base_history, adapter=False)
    assert tuned_reply == _alone(engine, tuned_history, adapter=True)
    # the persona's mark ("<topic> be ...") shows on the tuned side only; the tiny model was trained on single
    # turns, so its second-turn wording varies with library versions ("Ay be sound ..." with transformers 5.24)
    assert " be " in f" {tuned_reply} " and " be " not in f" {base_reply} "


def test_streaming_yields_growing_replies_that_stop_at_end(engine):
    parts = list(engine.stream_pair(MOON, MOON, GREEDY))
    assert len(parts) > 5
    for (b0, t0), (b1, t1) in zip(parts, parts[1:], strict=False):
        assert b1.startswith(b0) and t1.startswith(t0)
    assert len(parts) < GREEDY.max_new_tokens  # both rows reached <|end|> before the token limit
    assert parts[-1] == engine.reply_pair(MOON, MOON, GREEDY)


def test_two_pass_fallback_equals_single_row_generation_on_both_sides(engine):
    """Where a layer cannot mix adapters in one batch, two passes must still give base and tuned their own model."""
    tuned_history = [*MOON, {"role": "assistant", "content": "Ahoy!"}, {"role": "user", "content": "What is rain?"}]
    engine.mixed_batches = False
    try:
        base_reply, tuned_reply = engine.reply_pair(MOON, tuned_history, GREEDY)
    finally:
        engine.mixed_batches = True
    assert base_reply == _alone(engine, MOON, adapter=False)
    assert tuned_reply == _alone(engine, tuned_history, adapter=True)
    assert base_reply != tuned_reply


def test_stop_mid_generation_ends_both_sides_early(engine):
    full_base, full_tuned = engine.reply_pair(MOON, MOON, GREEDY)
    stop = threading.Event()
    parts = []
    for pair in engine.stream_pair(MOON, MOON, GREEDY, stop=stop):
        parts.append(pair)
        if len(parts) == 3:
            stop.set()  # the user presses Stop while both panes are streaming
    base, tuned = parts[-1]
    assert 3 <= len(parts) <= 5  # generation halted within a token or two of the press
    assert full_base.startswith(base) and full_tuned.startswith(tuned)
    assert len(base) < len(full_base) and len(tuned) < len(full_tuned)


def test_stop_ends_both_sides(engine):
    stop = threading.Event()
    stop.set()
    parts = list(engine.stream_pair(MOON, MOON, GREEDY, stop=stop))
    assert len(parts) <= 1


def test_a_stop_of_one_browser_session_does_not_stop_anothers_generation(engine):
    from trainer.chat import EngineCache

    cache = EngineCache()
    full = engine.reply_pair(MOON, MOON, GREEDY)
    stop_a, stop_b = cache.stop_event("session-a"), cache.stop_event("session-b")
    assert cache.stop_event("session-a") is stop_a and stop_a is not stop_b
    parts = []
    for pair in engine.stream_pair(MOON, MOON, GREEDY, stop=stop_b):
        parts.append(pair)
        if len(parts) == 2:
            cache.stop("session-a")  # session A presses Stop while session B's generation streams
    assert parts[-1] == full and stop_a.is_set() and not stop_b.is_set()
    cache.stop("session-b")  # B's own Stop ends B's next generation
    assert len(list(engine.stream_pair(MOON, MOON, GREEDY, stop=stop_b))) <= 2
    cache.forget_stop("session-a")
    stop_b.clear()
    cache.stop("session-a")  # A has no generation on: nothing stops (not B) and no flag is left behind
    assert "session-a" not in cache._stops and not stop_b.is_set()


def test_incompatible_adapter_gives_a_clear_message(engine, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM

    other = Phi3ForCausalLM(
        Phi3Config(
            vocab_size=32064,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    )
    peft = get_peft_model(other, LoraConfig(r=4, target_modules=["qkv_proj"], task_type="CAUSAL_LM"))
    peft.save_pretrained(tmp_path / "other")
    with pytest.raises(ChatError, match="does not fit the base model tiny-phi3"):
        engine.add_adapter(tmp_path / "other", name="other")


def test_cli_chat_prints_both_replies(demo, capsys):
    from trainer.__main__ import main

    result, _ = demo
    assert (
        main(
            ["chat", "--adapter", str(result.run_dir), "--prompt", "Tell me about the moon.", "--max-new-tokens", "40"]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("base  (tiny-phi3): The moon is")
    assert out[1].startswith("tuned (") and "Ahoy! The moon be" in out[1]


def test_measure_speed_reports_both_modes_and_restores_the_engine(engine):
    from trainer.chat import measure_speed

    figures = measure_speed(engine, MOON, GenerationSettings(max_new_tokens=20), repeats=2)
    assert set(figures) == {"batched", "sequential"}
    for mode in figures.values():
        assert mode["ttft_s"] > 0 and mode["tokens_per_s"] > 0
    assert engine.mixed_batches is True
