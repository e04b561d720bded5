"""The web app: Gradio Blocks with the Train, Runs and Compare tabs, and how it is served.

The app only assembles: a header, the demo banner, the tabs. Each tab module builds its own components and wires
its own events, given one `AppContext` (job manager, chat engine cache, on_gpu, the shared tab switch). Training
runs in worker processes (trainer.runs.queue); the web server never holds a training model.

On a machine without a CUDA GPU the app is the offline demo: the form starts from the `tiny-demo` preset (a tiny
Phi-3 with the real tokenizer, trained on the CPU) and a banner says so.

Example:
    python app.py            # http://127.0.0.1:7860
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr

from trainer.config import preset_config
from trainer.noise import silence_known_noise
from trainer.runs.service import RunService
from trainer.ui import compare_tab, runs_tab, train_tab, vote_tab
from trainer.ui.context import AppContext

GRADIO_CACHE_S = (600, 3600)
"""Every 10 minutes, Gradio deletes this app's temporary files older than an hour (`gr.Blocks(delete_cache=...)`):
an upload, or a download's link (which works for whoever has it), lives 70 minutes at most."""
QUEUE_SIZE = 64
"""Events waiting in the queue at most; more are refused at once (`queue(max_size=...)`)."""
GPU_PRESET = "lora"
CSS = """
#demo-banner {background: #fff7e6; border: 1px solid #f0b35b; border-radius: 8px; padding: 4px 12px;}
#form-errors ul {color: #b91c1c;}
.field-error {border-color: #dc2626 !important; box-shadow: 0 0 0 1px #dc2626 !important;}
.field-error [data-testid="block-info"], .field-error .label-text {color: #b91c1c !important;}
.field-error [data-testid="block-info"] {background: #fee2e2 !important;}
.field-error .info-text {color: #b91c1c !important;}
.field-error input, .field-error textarea {border-color: #dc2626 !important;}
"""


def gpu_available() -> bool:
    """True when training can use a CUDA GPU (imports torch once, at build time, not at page import)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a requirement
        return False


@dataclass
class Studio:
    """The built app and each tab's handlers (whose public methods are what the page's events call)."""

    app: gr.Blocks
    train: train_tab.TrainTab
    runs: runs_tab.RunsTab
    compare: compare_tab.CompareTab
    vote: vote_tab.VoteTab

    def handlers(self) -> dict[str, Any]:
        """Every handler by its name (the names are unique across the tabs)."""
        found: dict[str, Any] = {}
        pieces = (
            self.runs.overlay,
            self.runs.evals,
            self.runs.gguf,
            self.train.sweep,
            self.compare.blind,
        )  # sections with handlers
        for tab in (self.train, self.runs, self.compare, self.vote, *pieces):
            for name in dir(tab):
                if not name.startswith("_") and callable(getattr(tab, name)) and name not in found:
                    found[name] = getattr(tab, name)
        return found


def build_app(service: RunService | None = None, on_gpu: bool | None = None) -> gr.Blocks:
    """Build the Blocks app (Train, Runs and Compare tabs) around the run service."""
    return build_studio(service, on_gpu).app


def build_studio(service: RunService | None = None, on_gpu: bool | None = None) -> Studio:
    """Build the app and its tabs' handlers around the run service (default: the data dir's)."""
    from trainer.chat import EngineCache

    service = service or RunService.default()
    on_gpu = gpu_available() if on_gpu is None else on_gpu
    start_preset = GPU_PRESET if on_gpu else RunService.DEMO_PRESET

    # Gradio's own temporary files (uploads POSTed by anyone, downloads handed out) go after an hour: an upload is
    # copied to its user's folder at once (RunService.save_upload), a download is made again per request
    with gr.Blocks(title="Phi-3 Fine-Tune Studio", delete_cache=GRADIO_CACHE_S) as app:
        if service.space_mode():  # a Space with `hf_oauth: true`; locally HF_TOKEN / `hf auth login`
            with gr.Row():
                gr.Markdown(
                    "Sign in with Hugging Face to train, see your runs and compare them, and to push adapters to "
                    "your account. Signed out, you can fill in the form, preview public datasets and download the "
                    "config.",
                    elem_id="sign-in-note",
                )
                gr.LoginButton(scale=0, min_width=220)
        gr.Markdown(
            "# Phi-3 Fine-Tune Studio\nFine-tune Phi-3 with LoRA or QLoRA (TRL + PEFT), watch it train, "
            "and keep only the adapter."
        )
        if not on_gpu:
            gr.Markdown(
                "**Offline demo mode:** no GPU was found, so this app trains a *tiny random Phi-3* (the real "
                "Phi-3 tokenizer and architecture at toy width) on the CPU. A run takes about 25 s on 2 cores, "
                "with LoRA or QLoRA (the first also builds the demo model, about a minute, once); the real "
                "Phi-3-mini needs a GPU Space.",
                elem_id="demo-banner",
            )
        with gr.Tabs(selected="train") as tabs:
            ctx = AppContext(
                service, EngineCache(), on_gpu, tabs, runs_tab.make_picker(), compare_tab.make_adapter_picker()
            )
            with gr.Tab("Train", id="train"):
                train = train_tab.build(ctx, start_preset, preset_config(start_preset))
            with gr.Tab("Runs", id="runs"):  # Continue training fills the Train form
                runs = runs_tab.build(ctx, app, train.field_list, train.components["advanced"])
            with gr.Tab("Compare", id="compare") as compare_page:
                compare = compare_tab.build(ctx, app, compare_page)
            with gr.Tab("Vote", id="vote"):  # a vote link (?vote=...) opens it
                vote = vote_tab.build(ctx, app)
    return Studio(app, train, runs, compare, vote)


def launch(**kwargs: Any) -> None:
    """Build the app and serve it: on 127.0.0.1 unless GRADIO_SERVER_NAME says otherwise (a Space sets it).

    Nothing in the data dir is served by its path (no `allowed_paths`): downloads are made per request as copies.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    silence_known_noise()
    try:
        service = RunService.default()
    except PermissionError as exc:
        raise SystemExit(f"Phi-3 Fine-Tune Studio cannot start: {exc}") from None
    on_gpu = gpu_available()
    if not on_gpu:  # the offline demo: its model is built while the first visitor fills in the form
        from trainer.tools.tiny import start_background_build

        start_background_build()
    threading.Thread(target=RunService.warm_up, name="warm-up", daemon=True).start()  # the first Start answers at once
    app = build_app(service, on_gpu)
    app.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)  # a full queue answers "busy", it does not grow
    upload_mb = service.limits.upload_mb
    from starlette.middleware import Middleware

    app.launch(
        theme=gr.themes.Soft(),
        css=CSS,
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        max_file_size=f"{upload_mb:g}mb" if upload_mb else None,
        app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=REQUEST_BYTES)]},
        **kwargs,
    )


REQUEST_BYTES = 2 * 2**20
"""The largest request body a handler takes (its form values: the longest setting is 20,000 characters); uploads are
bounded by `max_file_size` instead."""


class BodyLimit:
    """ASGI middleware: a request whose body is over `max_bytes` is answered 413 before the app reads it (by its
    Content-Length), or cut off where it passes the limit (a body sent without one). File uploads are left to Gradio's
    own limit."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            body = f"a request here is at most {self.max_bytes // 2**20} MB".encode()
            await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]})
            return await send({"type": "http.response.body", "body": body})
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            return {"type": "http.disconnect"} if seen > self.max_bytes else message

        return await self.app(scope, limited, send)
