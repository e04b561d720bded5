"""The Compare tab: the base model (left) and base + adapter (right) answer the same prompt, side by side.

One engine (base model + adapter) is in memory at a time, loaded on first use; both panes stream from one batched
`generate` (see trainer.chat).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from trainer import runfolder as rf
from trainer.ui.context import AppContext, owner_of


def chat_messages(history: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """A Chatbot's value as plain role/content messages (Gradio may hand content back as a list of text parts)."""
    out = []
    for message in history or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        out.append({"role": message["role"], "content": str(content or "")})
    return out


def pane_labels(source: str | None, hub_id: str | None) -> str:
    """Name the two models above the panes (read from the run's config; no model is loaded here)."""
    from trainer.config import load_yaml

    wanted = (hub_id or "").strip() or source
    if not wanted:
        return ""
    config_file = Path(wanted) / rf.CONFIG_FILE
    base = load_yaml(config_file).model.model_name_or_path if config_file.exists() else "the adapter's base"
    name = Path(wanted).name if config_file.exists() else wanted
    return f"**Left, base:** `{base}` · **Right, tuned:** `{base}` + adapter `{name}`"


def example_prompts(run_dir: str | None) -> Any:
    """Prompts of the run's held-out rows (its samples.json), to try on both sides."""
    samples = rf.read_json(Path(run_dir) / rf.SAMPLES_FILE, []) if run_dir else []
    prompts = list(dict.fromkeys(s["prompt"] for s in samples or [] if s.get("prompt")))
    return gr.update(choices=prompts, value=None)


def build(ctx: AppContext, app: gr.Blocks, tab: gr.Tab) -> dict[str, Any]:
    """Build the Compare tab's components and wire its events (send, stream, stop, regenerate, clear)."""
    manager, engines = ctx.manager, ctx.engines
    c = _layout()

    def adapter_choices(profile: gr.OAuthProfile | None):
        finished = [j for j in manager.store.list(owner_of(profile)) if j.status in ("succeeded", "push_failed")]
        choices = [(f"run #{j.id} · {j.name}", j.run_dir) for j in finished]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def send(prompt, base_hist, tuned_hist, source, hub_id, max_new, temperature, top_p, greedy, system):
        from trainer.chat import ChatError, GenerationSettings

        if not (prompt or "").strip():
            raise gr.Error("Type a prompt first.")
        if ctx.on_gpu and any(j.status == "running" for j in manager.store.list()):
            raise gr.Error("A training run is using the GPU; the comparison can load once it finishes.")
        wanted = (hub_id or "").strip() or source
        if wanted and not engines.holds(wanted):
            gr.Info(f"Loading the base model and the adapter of {wanted}…")
        try:
            engine = engines.get(wanted)
        except (ChatError, ValueError, OSError) as exc:
            raise gr.Error(str(exc)) from exc
        settings = GenerationSettings(
            max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), greedy=bool(greedy)
        )
        system_turn = [{"role": "system", "content": system}] if (system or "").strip() else []
        user = {"role": "user", "content": prompt}
        base_hist, tuned_hist = [*chat_messages(base_hist), user], [*chat_messages(tuned_hist), user]
        for base_reply, tuned_reply in engine.stream_pair(
            system_turn + base_hist, system_turn + tuned_hist, settings, stop=engines.stop
        ):
            yield (
                base_hist + [{"role": "assistant", "content": base_reply}],
                tuned_hist + [{"role": "assistant", "content": tuned_reply}],
                "",
            )

    gen_inputs = [
        c["prompt"],
        c["base_chat"],
        c["tuned_chat"],
        c["adapter"],
        c["hub_id"],
        c["max_new_tokens"],
        c["temperature"],
        c["top_p"],
        c["greedy"],
        c["system"],
    ]
    gen_outputs = [c["base_chat"], c["tuned_chat"], c["prompt"]]
    for trigger in (c["send"].click, c["prompt"].submit):  # one chain, two triggers
        trigger(engines.reset_stop, None, None, queue=False).then(
            pane_labels, [c["adapter"], c["hub_id"]], c["models"], queue=False
        ).then(send, gen_inputs, gen_outputs, concurrency_id="gpu", concurrency_limit=1)

    def regenerate(base_hist, tuned_hist, *rest):
        base_hist, tuned_hist = chat_messages(base_hist), chat_messages(tuned_hist)
        last = next((m["content"] for m in reversed(base_hist) if m["role"] == "user"), "")
        cut = max((i for i, m in enumerate(base_hist) if m["role"] == "user"), default=0)
        tuned_cut = max((i for i, m in enumerate(tuned_hist) if m["role"] == "user"), default=0)
        yield from send(last, base_hist[:cut], tuned_hist[:tuned_cut], *rest)

    c["regenerate"].click(engines.reset_stop, None, None, queue=False).then(
        regenerate, gen_inputs[1:], gen_outputs, concurrency_id="gpu", concurrency_limit=1
    )
    c["stop"].click(lambda: engines.stop.set(), None, None, queue=False)
    c["clear"].click(lambda: ([], [], ""), None, gen_outputs, queue=False)
    tab.select(adapter_choices, None, c["adapter"])
    c["adapter"].change(example_prompts, c["adapter"], c["examples"], queue=False)
    c["examples"].change(lambda p: gr.update(value=p) if p else gr.skip(), c["examples"], c["prompt"], queue=False)
    app.load(adapter_choices, None, c["adapter"])
    return c


def _layout() -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["adapter"] = gr.Dropdown(
            choices=[], label="Tuned adapter (a finished run)", elem_id="compare-adapter", scale=3
        )
        c["hub_id"] = gr.Textbox(
            label="…or an adapter repo on the Hub",
            placeholder="alice/phi3-pirate-lora",
            elem_id="compare-hub-id",
            scale=2,
        )
    c["examples"] = gr.Dropdown(
        choices=[], label="Example prompts (held-out rows of the run)", elem_id="compare-examples"
    )
    c["models"] = gr.Markdown(elem_id="compare-models")
    with gr.Row():
        c["base_chat"] = gr.Chatbot(label="Base model", elem_id="base-chat", height=380)
        c["tuned_chat"] = gr.Chatbot(label="Tuned (base + adapter)", elem_id="tuned-chat", height=380)
    with gr.Row():
        c["prompt"] = gr.Textbox(
            label="Prompt (both sides get it)",
            elem_id="compare-prompt",
            scale=5,
            placeholder="Tell me about the moon.",
        )
        c["send"] = gr.Button("Send", variant="primary", elem_id="compare-send", scale=0, min_width=90)
        c["stop"] = gr.Button("Stop", elem_id="compare-stop", scale=0, min_width=80)
        c["regenerate"] = gr.Button("Regenerate", elem_id="compare-regenerate", scale=0, min_width=110)
        c["clear"] = gr.Button("Clear", elem_id="compare-clear", scale=0, min_width=80)
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            c["max_new_tokens"] = gr.Number(value=128, precision=0, label="Max new tokens")
            c["temperature"] = gr.Number(value=0.7, label="Temperature")
            c["top_p"] = gr.Number(value=0.9, label="Top-p")
            c["greedy"] = gr.Checkbox(value=True, label="Greedy (same answer every time)")
        c["system"] = gr.Textbox(label="System prompt (both sides)", value="")
    return c
