"""Who is pushing, and may they: the token, repo-ID checks and the fail-fast write check before any GPU time.

`check_push_access` runs before a job is queued: it validates the repo ID, asks the Hub who the token belongs to
(`whoami`) and checks that the namespace is the user's own or an organisation where they can write, so a typo or a
read-only token costs seconds, not a finished GPU run. The token is a runtime secret: never logged, stored or put in
an error message.
"""

from __future__ import annotations

import logging

from trainer.config import repo_id_problem
from trainer.hub.retry import HubError, hub_error, with_retries

logger = logging.getLogger(__name__)

WRITE_ROLES = ("admin", "write", "contributor")
"""Organisation roles (`roleInOrg` in whoami) that may create and push repos."""
TOKEN_MISSING = (
    "Hugging Face token: missing. Sign in with Hugging Face, or set HF_TOKEN to a token with write access "
    "(https://huggingface.co/settings/tokens)."
)


def resolve_token(explicit: str | None = None) -> str | None:
    """The Hugging Face token to use: the explicit one (e.g. from OAuth sign-in), else huggingface_hub's own.

    `huggingface_hub.get_token()` reads `HF_TOKEN`, then the stored `hf auth login` token (and Colab secrets).

    Args:
        explicit: a token given directly (the web app's OAuth token, a CLI flag); blank counts as none.

    Returns:
        The token, or None when there is none.
    """
    if explicit and explicit.strip():
        return explicit.strip()
    from huggingface_hub import get_token

    return get_token()


def check_repo_id(repo_id: str) -> None:
    """Check that repo_id is a valid `namespace/name` model repo ID (our rule and huggingface_hub's validator).

    Raises:
        HubError: the ID is empty, has no namespace, or breaks the Hub's naming rules.
    """
    if problem := repo_id_problem(repo_id):
        raise HubError(problem)


def check_push_access(repo_id: str, token: str | None, retries: int = 2, backoff_s: float = 1.0) -> str:
    """Fail fast, before any GPU time: can this token create and push `repo_id`?

    Checks the repo ID, that there is a token, that the Hub accepts it (whoami), that it is not read-only, and that
    the namespace is the user's own or an organisation where whoami says they can write.

    Args:
        repo_id: the model repo to push the adapter to (namespace/name).
        token: the Hugging Face token (see `resolve_token`).
        retries: retries of the whoami call on network errors and 5xx.
        backoff_s: the first wait between attempts.

    Returns:
        The user name the token belongs to.

    Raises:
        HubError: with what is wrong and how to fix it (never with the token in it).
    """
    check_repo_id(repo_id)
    if not token:
        raise HubError(TOKEN_MISSING)
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        info = with_retries("whoami", lambda: api.whoami(token=token), retries, backoff_s)
    except Exception as exc:
        raise hub_error(exc, token, f"checking the token for {repo_id!r}") from None
    user = str(info.get("name") or "")
    namespace, name = repo_id.split("/")
    access = (info.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise HubError(
            f"Hugging Face token: read-only, so it cannot push to {repo_id!r}. Create a token with write access "
            "at https://huggingface.co/settings/tokens and sign in again (or set HF_TOKEN)."
        )
    # Fine-grained tokens ("fineGrained") carry per-namespace scopes; they are left to the Hub to judge at push time.
    if namespace == user:
        logger.info("Hub: signed in as %s; can push to %s", user, repo_id)
        return user
    role = {org.get("name"): org.get("roleInOrg") for org in info.get("orgs") or []}.get(namespace, "")
    if role in WRITE_ROLES:
        logger.info("Hub: signed in as %s (%s in %s); can push to %s", user, role, namespace, repo_id)
        return user
    if role:
        raise HubError(
            f"hub.repo_id: you cannot write to {repo_id!r}: you have {role}-only access to the organization "
            f"{namespace!r}. Ask an admin of {namespace} for write access, or use {user}/{name}."
        )
    raise HubError(
        f"hub.repo_id: you cannot write to {repo_id!r}: it is another user's namespace (or an organization you are "
        f"not a member of). Use {user}/{name}."
    )
