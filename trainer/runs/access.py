"""Who may do what, on the machine and on a public Space.

- **Local mode** (no ``OAUTH_CLIENT_ID``): one user, the person at the machine. They see and manage every run, and
  the local token (``HF_TOKEN``, ``hf auth login``) acts for them.
- **Space mode** (``OAUTH_CLIENT_ID`` set, as on a Space with ``hf_oauth: true``):
  - a signed-out visitor may look, fill in the form, preview public datasets and download the YAML; anything that
    spends the Space's GPU or acts on the Hub asks them to sign in;
  - a signed-in user acts with their own OAuth token only (never the Space's ``HF_TOKEN``), and sees and touches only
    their own runs;
  - admins (``PHI3_STUDIO_ADMINS``, Hub usernames) see and manage every run; by default nobody is one;
  - per-user limits (`Limits`) cap the runs a user has queued or running, the minutes a run may train and uploads.

Every check takes the caller from the server's own session (never from what the browser sends) and every run is
looked up by id and then checked against its owner.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.config import REPO_ID_RE, hint
from trainer.paths import EXAMPLES_DIR, PROJECT_ROOT, env_setting
from trainer.runs import folder as rf

if TYPE_CHECKING:
    from trainer.runs.store import Job, JobStore

SPACE_ENV = "OAUTH_CLIENT_ID"
ADMINS_ENV = "PHI3_STUDIO_ADMINS"
ACTIVE_RUNS_ENV = "PHI3_STUDIO_MAX_ACTIVE_RUNS"
RUN_MINUTES_ENV = "PHI3_STUDIO_MAX_RUN_MINUTES"
UPLOAD_MB_ENV = "PHI3_STUDIO_MAX_UPLOAD_MB"
UPLOADS_MB_ENV = "PHI3_STUDIO_MAX_UPLOADS_MB"
SPACE_DEFAULTS = {ACTIVE_RUNS_ENV: 2, RUN_MINUTES_ENV: 120, UPLOAD_MB_ENV: 100, UPLOADS_MB_ENV: 500}
"""The limits on a Space when its owner sets nothing (locally there are none unless set)."""

SIGN_IN = "Sign in with Hugging Face to {what}."
NO_SUCH_RUN = "run #{id}: no such run, or not yours."


class AccessError(PermissionError):
    """The caller may not do this (the message says what to do: sign in, pick one of your runs ...)."""


def space_mode() -> bool:
    """True on a Space with sign-in (``OAUTH_CLIENT_ID`` set), where visitors are strangers."""
    return bool(os.environ.get(SPACE_ENV))


def admins() -> frozenset[str]:
    """Hub usernames allowed to see and manage every run (``PHI3_STUDIO_ADMINS``, comma-separated)."""
    return frozenset(name.strip() for name in (env_setting(ADMINS_ENV) or "").split(",") if name.strip())


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the server knows it.

    Attributes:
        name: the signed-in Hub username (None for the local user and for a signed-out visitor).
        token: the Hugging Face token to act with: the user's own OAuth token on a Space, the local token locally.
        admin: sees and manages every run.
        local: the person at the machine (local mode).
    """

    name: str | None
    token: str | None
    admin: bool = False
    local: bool = False

    @property
    def signed_in(self) -> bool:
        return self.local or self.name is not None

    @property
    def owner(self) -> str | None:
        """The owner recorded on the runs this caller starts (None for the local user)."""
        return None if self.local else self.name

    def require(self, what: str) -> None:
        """Raise AccessError asking a signed-out visitor to sign in to do `what`."""
        if not self.signed_in:
            raise AccessError(SIGN_IN.format(what=what))

    def may_see(self, job: Job) -> bool:
        """True when this caller may see and manage the run."""
        return self.local or self.admin or (self.name is not None and job.owner == self.name)


def caller_from(username: str | None, oauth_token: str | None) -> Caller:
    """The caller of a request, from the server's session: its signed-in username and OAuth token, if any."""
    if not space_mode():
        from trainer.hub import resolve_token

        return Caller(name=None, token=resolve_token(), admin=True, local=True)
    if not username:
        return Caller(name=None, token=None)
    return Caller(name=username, token=oauth_token or None, admin=username in admins())


@dataclass(frozen=True)
class Limits:
    """Per-user limits; None means no limit."""

    active_runs: int | None = None
    run_minutes: float | None = None
    upload_mb: float | None = None
    uploads_mb: float | None = None  # all of a user's uploads kept here together

    @classmethod
    def from_env(cls) -> Limits:
        """The limits set in the environment; on a Space, safe defaults for those not set."""
        defaults = SPACE_DEFAULTS if space_mode() else {}

        def read(name: str, kind: type) -> float | int | None:
            text = (env_setting(name) or "").strip()
            if not text:
                return defaults.get(name)
            value = kind(text)
            return None if value <= 0 else value  # 0 or less: no limit

        return cls(
            read(ACTIVE_RUNS_ENV, int), read(RUN_MINUTES_ENV, float), read(UPLOAD_MB_ENV, float),
            read(UPLOADS_MB_ENV, float),
        )  # fmt: skip

    def room_problem(self, active: int, more: int = 1) -> str | None:
        """Why `more` runs may not be queued for a user who has `active` runs queued or training (None: they may)."""
        if self.active_runs is None:
            return None
        if active >= self.active_runs:
            return (
                f"you have {active} runs queued or training, the most this Space allows per user; "
                "wait for one to finish or cancel one."
            )
        if active + more > self.active_runs:
            return (
                f"a sweep of {more} runs: this Space allows {self.active_runs} runs queued or training per user and "
                f"you have {active}; sample at most {self.active_runs - active} of its runs."
            )
        return None

    def describe(self) -> str:
        """The limits in a line for the page ("" when there are none)."""
        parts = []
        if self.active_runs:
            parts.append(f"{self.active_runs} runs queued or training per user")
        if self.run_minutes:
            parts.append(f"{self.run_minutes:g} training minutes per run (then it checkpoints and stops, resumable)")
        if self.upload_mb:
            parts.append(f"uploads up to {self.upload_mb:g} MB")
        if self.uploads_mb:
            parts.append(f"{self.uploads_mb:g} MB of uploads kept per user")
        return "Limits on this Space: " + "; ".join(parts) + "." if parts else ""


def visible_jobs(store: JobStore, caller: Caller) -> list[Job]:
    """The runs this caller may see, newest first (none for a signed-out visitor on a Space)."""
    if not caller.signed_in:
        return []
    jobs = store.list()
    return jobs if caller.local or caller.admin else [job for job in jobs if job.owner == caller.name]


def find_job(store: JobStore, caller: Caller, job_id: object) -> Job:
    """The run with this id (as sent by the browser), if this caller may see it.

    Raises:
        AccessError: not signed in; no such run; or another user's run (the same message, so ids reveal nothing).
    """
    caller.require("see your runs")
    text = str(job_id or "").strip()
    job = store.get(int(text)) if re.fullmatch(r"\d{1,12}", text) else None
    if job is None or not caller.may_see(job):
        raise AccessError(NO_SUCH_RUN.format(id=text[:20] or "?"))
    return job


def upload_dir(caller: Caller) -> Path:
    """Where this caller's uploads are kept: one folder per user under the data dir."""
    name = "local" if caller.local else re.sub(r"[^A-Za-z0-9_.-]", "_", caller.name or "")
    if not name or name in (".", ".."):
        raise AccessError(SIGN_IN.format(what="upload a dataset"))
    return rf.data_dir() / "uploads" / name


def dataset_problem(caller: Caller, dataset_name: str) -> str | None:
    """On a Space, what the web form may train on: a Hub dataset ID, a bundled example or the caller's own upload.

    Locally the person at the machine may name any file. Returns the problem as a form message, or None.
    """
    from trainer.data import DataError, resolve_local_path

    if caller.local:
        return None
    problem = (
        "data.dataset_name: on this Space a run can use a Hub dataset ID (user/name), a bundled example or a file "
        "you uploaded. Pick one of those."
    )
    name = dataset_name.strip()
    try:
        local = resolve_local_path(name)
    except DataError:
        return problem
    if local is None:  # a Hub ID, unless it names a folder on this server
        on_disk = Path(name).expanduser().exists() or (PROJECT_ROOT / name).exists()
        return None if REPO_ID_RE.match(name) and not on_disk else problem
    if local.resolve() in {p.resolve() for p in EXAMPLES_DIR.glob("*") if p.is_file()}:
        return None
    return None if caller.signed_in and _inside(local, upload_dir(caller)) else problem


def model_problem(caller: Caller, model_name: str) -> str | None:
    """On a Space, the base model must be a Hub model ID (or the tiny demo model), never a folder on the server.

    Locally the person at the machine may name any folder. Returns the problem as a form message, or None.
    """
    from trainer.phi3 import TINY_MODEL_NAME

    name = model_name.strip()
    if caller.local or name == TINY_MODEL_NAME:
        return None
    on_disk = Path(name).expanduser().exists() or (PROJECT_ROOT / name).exists()
    if REPO_ID_RE.match(name) and not on_disk:
        return None
    return "model.model_name_or_path: on this Space the base model is a Hub model ID (user/name). Give one."


HUB_KERNELS_REFUSED = (
    "this Space does not run code fetched from the Hub at run time (its owner can allow it with the Space variable "
    "USE_HUB_KERNELS=YES)"
)
"""Why a run on a Space may not fetch Hub kernels (`hub_kernels_problem`; the form shows it by the setting)."""


def hub_kernels_problem(asked: bool) -> str | None:
    """On a Space, a run may fetch compute kernels from the Hub only where the Space's owner allows them.

    The owner allows them by starting the app with ``USE_HUB_KERNELS=YES`` (a Space variable; see
    `trainer.hubkernels`). Locally the person at the machine decides. Returns the problem as a form message, or None.
    """
    from trainer import hubkernels

    if not asked or not space_mode() or hubkernels.allowed():
        return None
    return f"model.hub_kernels: {HUB_KERNELS_REFUSED}; {hint('model.hub_kernels', False)}."


REWARD_MODULE_REFUSED = (
    "grpo.reward_module: a reward module is Python code the trainer runs, so only a local run may name one; on a "
    "Space, use the built-in rewards (grpo.rewards)."
)
"""Why a run on a Space may not name a reward module (`reward_module_problem`)."""


def reward_module_problem(caller: Caller, module: str) -> str | None:
    """A reward module (a Python file run by the trainer) is for the person at the machine only: on a Space, or for
    anyone but the local user, it is refused whatever the form sent. Returns the problem, or None."""
    if not module.strip() or (caller.local and not space_mode()):
        return None
    return REWARD_MODULE_REFUSED


def hub_token(caller: Caller) -> str | bool:
    """The token to read the Hub with for this caller: their own, else False (never the Space's own HF_TOKEN)."""
    return caller.token or (None if caller.local else False)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return path.resolve().is_file()


def owns_machine(who: Caller) -> bool:
    """The local user, or the Space's own author: the only callers whose runs may use the machine's own tracker
    settings (W&B's key, MLflow's server); everyone else brings their own (`trainer.trackers`)."""
    if not space_mode():
        return True
    author = os.environ.get("SPACE_AUTHOR_NAME", "")
    return bool(author) and who.owner == author


def tracker_environment(who: Caller, report_to: str, key: str | None) -> dict[str, str]:
    """What a caller's run adds to its worker's environment for its tracker: the key they typed, and the machine's
    own settings only when the caller owns the machine (`owns_machine`); held in memory until the worker starts."""
    from trainer.trackers import tracker_secrets

    return tracker_secrets(report_to, os.environ, owns_machine(who), key)


JOBS_TRACKER_KEY = (
    "run.report_to: a tracker key is not sent to a Hugging Face Job; train here, or let the Job log offline into "
    "its run folder (leave Tracker key empty)."
)


def trackio_space_problem(who: Caller, space: str) -> str | None:
    """On a Space, trackio logs live only to a Space of the caller's own (their token could write nowhere else)."""
    space = space.strip()
    if space and "/" in space and space.split("/", 1)[0] != who.owner:
        return f"run.trackio_space_id: {space} is not in your namespace. Use {who.owner}/{space.split('/', 1)[1]}."
    return None


JOBS_ADAPTER = (
    "model.adapter_name_or_path: a Hugging Face Job cannot read a run folder on this server. Push the parent run to "
    "the Hub and continue from its repo ID, or run on this machine."
)
"""Why a run sent to Hugging Face Jobs cannot continue from a run folder here (it runs elsewhere)."""
JOBS_REWARD_MODULE = (
    "grpo.reward_module: a Hugging Face Job runs in the Space's image, without this machine's files. Use the built-in "
    "rewards (grpo.rewards), or run on this machine."
)
"""Why a run sent to Hugging Face Jobs cannot add a local reward module."""
