"""What every tab of the web app is given: the services it calls and the few components tabs share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

if TYPE_CHECKING:
    from trainer.chat import EngineCache
    from trainer.jobs import JobManager


@dataclass
class AppContext:
    """One small object handed to each tab (no tab reaches into another's widgets).

    Attributes:
        manager: the job manager (queue, workers, job table).
        engines: the chat engine cache of the Compare tab (one model in memory at a time).
        on_gpu: whether training uses a CUDA GPU (False: the offline demo).
        tabs: the Tabs container, to switch tabs from a handler (`gr.Tabs(selected=...)`).
        started_run: the id of the run the Train tab just queued; the Runs tab shows it when it changes.
    """

    manager: JobManager
    engines: EngineCache
    on_gpu: bool
    tabs: gr.Tabs
    started_run: gr.State


def owner_of(profile: gr.OAuthProfile | None) -> str | None:
    """The signed-in user's name (None when signed out or running locally)."""
    return profile.username if profile is not None else None


def user_token(oauth: gr.OAuthToken | None) -> str | None:
    """The Hugging Face token to act with: the signed-in user's OAuth token, else the local one (HF_TOKEN/login)."""
    from trainer.hub import resolve_token

    return resolve_token(oauth.token if oauth is not None else None)
