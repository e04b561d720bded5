"""What every tab of the web app is given: the services it calls and the few components tabs share."""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from trainer.config.hints import MARKDOWN_SPECIALS
from trainer.runs.service import Caller, RunService

if TYPE_CHECKING:
    from trainer.chat import EngineCache


@dataclass
class AppContext:
    """One small object handed to each tab (no tab reaches into another's widgets).

    Attributes:
        service: the run service (every action on a run, with its owner checked).
        engines: the chat engine cache of the Compare tab (one model in memory at a time).
        on_gpu: whether training uses a CUDA GPU (False: the offline demo).
        tabs: the Tabs container, to switch tabs from a handler (`gr.Tabs(selected=...)`).
        run_picker: the Runs tab's run picker (made before the tabs), so the Train tab selects the run it queued.
        chat_adapter: the Compare tab's run picker (made before the tabs), so "Chat with this run" opens it there.
    """

    service: RunService
    engines: EngineCache
    on_gpu: bool
    tabs: gr.Tabs
    run_picker: gr.Dropdown
    chat_adapter: gr.Dropdown


ZERO_GPU_ENV = "SPACES_ZERO_GPU"
COMPARE_GPU_S = 120
"""How long one Compare answer may hold a ZeroGPU allocation (loading the models included)."""


def zero_gpu() -> bool:
    """True on a ZeroGPU Space: GPU time comes only inside `@spaces.GPU` calls, so nothing trains in the background."""
    return bool(os.environ.get(ZERO_GPU_ENV))


def gpu_call(handler, duration: int = COMPARE_GPU_S):
    """A Gradio handler that needs the GPU: run inside a `spaces.GPU` allocation on ZeroGPU, the handler itself
    elsewhere (the `spaces` package is preinstalled on Spaces; nothing imports it off ZeroGPU)."""
    if not zero_gpu():
        return handler
    import spaces

    return spaces.GPU(duration=duration)(handler)


def plain(text: object) -> str:
    """Text a user wrote (a run name, a sample), shown in Markdown as exactly that text: no link, image or heading."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def run_choices(service: RunService, who: Caller) -> list[tuple[str, str]]:
    """The runs this caller may see, as (label, id) pairs for a run picker."""
    return [(f"#{job.id} · {service.state_label(job)} · {job.name}", str(job.id)) for job in service.visible(who)]


def picker_update(service: RunService, who: Caller, current: str | None) -> Any:
    """The Runs tab's picker: fresh choices, keeping the selected run (or the newest one when it is gone)."""
    return choices_update(run_choices(service, who), current)


def adapter_update(service: RunService, who: Caller, current: str | None = None) -> Any:
    """The Compare tab's picker: the caller's finished runs, keeping `current` selected when it is one."""
    return choices_update([(f"run #{j.id} · {j.name}", str(j.id)) for j in service.trained(who)], current)


def choices_update(choices: list[tuple[str, str]], current: str | None) -> Any:
    """A run picker's fresh (label, id) choices, keeping `current` selected when it is one of them, else the first
    (newest); never an id the caller was not offered."""
    ids = [value for _, value in choices]
    return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))


def caller(profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None = None) -> Caller:
    """Who calls a handler, from what Gradio injects from the server's session (never from the browser's values)."""
    username = profile.username if profile is not None else None
    return RunService.caller(username, oauth.token if oauth is not None else None)


DOWNLOADS_KEPT_S = 3600
"""How long the app keeps its own copy of a download (Gradio serves a copy of its own, deleted after as long)."""


def download_folder(prefix: str) -> Path:
    """A new folder for one download (a config, an adapter or TRL zip) under the app's downloads folder, whose
    folders older than `DOWNLOADS_KEPT_S` are removed first: every click made one more that was never removed."""
    root = Path(tempfile.gettempdir()) / "phi3-studio-downloads"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        try:
            if time.time() - old.stat().st_mtime > DOWNLOADS_KEPT_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed meanwhile by another request
            continue
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


class OnePerSession:
    """At most one call at a time per browser session: a second call answers at once instead of queueing behind the
    first (40 previews queued by one visitor held another user's preview for 9 s; with this, each extra one takes a
    queue slot for a moment only). Calls without a session (a direct call in a test) are never held back."""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, request: gr.Request | None) -> Iterator[bool]:
        """True inside when this session had no call running (the call goes ahead), False when it had one."""
        key = getattr(request, "session_hash", None)
        with self._lock:
            free = key is None or key not in self._busy
            if free and key is not None:
                self._busy.add(key)
        try:
            yield free
        finally:
            if free and key is not None:
                with self._lock:
                    self._busy.discard(key)
