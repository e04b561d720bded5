"""Talking to a Hub that sometimes fails: which errors are worth a retry, the retries, and the user's wording.

Network errors, 5xx, 408 and 429 are retried with exponential backoff (tenacity runs the loop); other 4xx answers are
not. Every failure is turned into a `HubError` that says what to do, with the token redacted.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import TypeVar

from trainer.errors import exception_chain

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = (408, 429)  # plus every 5xx
XET_TRANSIENT = re.compile(r"CAS service error|reqwest|timed? ?out|Timer expired|connection|Request failed", re.I)
"""What hf-xet's transfer errors say when the network failed: the Rust extension raises them as RuntimeError
("Data processing error: CAS service error : ReqwestMiddleware Error: Request failed after 5 retries"). Its
XetAuthenticationError and XetObjectNotFoundError (a PermissionError, a FileNotFoundError) are not transient."""
TOKEN_INVALID = "Hugging Face token: invalid or expired. Sign in again or set HF_TOKEN."


class HubError(ValueError):
    """A Hub problem worded for the user ("<what>: <problem>. <fix>"); never contains the token."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exceptions worth a retry (those huggingface_hub itself retries, for httpx and httpx2)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        errors += [module.TimeoutException, module.NetworkError, module.RemoteProtocolError]
    return tuple(errors)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of the first Hub HTTP error in the exception chain."""
    from huggingface_hub.errors import HfHubHTTPError

    for item in exception_chain(exc):
        if isinstance(item, HfHubHTTPError) and item.response is not None:
            return item.response.status_code
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Hub call is worth retrying: network errors, 5xx, 408 and 429; never other 4xx.

    Args:
        exc: the exception (its whole cause chain is inspected: the client wraps upload errors).

    Returns:
        True for a transient failure.
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    status = _status(exc)
    if status is not None:
        return status >= 500 or status in TRANSIENT_STATUS
    if any(isinstance(item, OfflineModeIsEnabled) for item in exception_chain(exc)):
        return False  # a ConnectionError subclass, but no retry turns HF_HUB_OFFLINE off
    transport = _transport_errors()
    return any(isinstance(item, transport) or _xet_transfer_error(item) for item in exception_chain(exc))


def _xet_transfer_error(exc: BaseException) -> bool:
    """An hf-xet upload or download that failed on the network (uploads of real users go through Xet)."""
    return type(exc) is RuntimeError and bool(XET_TRANSIENT.search(str(exc)))


def with_retries(what: str, call: Callable[[], T], retries: int, backoff_s: float) -> T:
    """call(), retried up to `retries` times on transient failures, waiting backoff_s, 2x, 4x ... in between.

    tenacity runs the loop; the last failure, or the first one that is not transient, is raised as it was.
    """
    # imported here: a failing worker imports trainer.hub to word its error, also on the GPU check's bare machine
    import tenacity

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc, delay = state.outcome.exception(), state.next_action.sleep
        logger.warning(
            "%s failed (%s); retry %d of %d in %.1f s", what, describe(exc), state.attempt_number, retries, delay
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff_s, exp_base=2),  # backoff_s * 2 ** (attempt - 1)
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, Exception) and is_transient(exc)),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(call)


def describe(exc: BaseException, limit: int = 200) -> str:
    """A short, token-free description of a Hub failure ("HTTP 503: Service Unavailable")."""
    from huggingface_hub.errors import HfHubHTTPError

    for item in exception_chain(exc):
        if isinstance(item, HfHubHTTPError) and item.response is not None:
            detail = item.server_message or item.response.reason_phrase or ""
            return f"HTTP {item.response.status_code}: {' '.join(str(detail).split())[:limit]}".rstrip(": ")
    transport = _transport_errors()
    cause = next((item for item in exception_chain(exc) if isinstance(item, transport)), exc)
    return f"{type(cause).__name__}: {' '.join(str(cause).split())[:limit]}".rstrip(": ")


def redact(text: str, token: str | None) -> str:
    return text.replace(token, "hf_***") if token else text


def hub_error(exc: BaseException, token: str | None, doing: str, keep: str = "") -> HubError:
    """Turn a huggingface_hub / network exception into a HubError that says what to do."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, HubError):
        return HubError(redact(str(exc), token))
    status = _status(exc)
    detail = describe(exc)
    keep = f" {keep}" if keep else ""
    if any(isinstance(item, OfflineModeIsEnabled) for item in exception_chain(exc)):
        message = f"Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE), so {doing} is impossible. Unset it."
    elif status == 401:
        message = TOKEN_INVALID
    elif status == 403:
        message = (
            f"Hugging Face Hub: refused while {doing} ({detail}). Use a token with write access to that "
            f"namespace, or push to your own.{keep}"
        )
    elif status is not None and status < 500 and status not in TRANSIENT_STATUS:
        message = f"Hugging Face Hub: {doing} failed ({detail}). Check the repo ID and the run folder.{keep}"
    elif is_transient(exc):
        message = (
            f"Hugging Face Hub: {doing} failed after retries ({detail}). The Hub or the network is down; "
            f"try again later.{keep}"
        )
    else:
        message = f"Hugging Face Hub: {doing} failed ({detail}). Fix the cause and try again.{keep}"
    return HubError(redact(message, token))
