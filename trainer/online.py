"""Is the Hugging Face Hub reachable right now? Asked first, so the app says "offline" at once.

huggingface_hub retries a dead connection for half a minute before it gives up; a user waiting on a Preview or a
Compare should hear "the Hub cannot be reached" within a few seconds instead. Lowest floor: imports nothing from
`trainer`.
"""

from __future__ import annotations

import time

_REACH: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when checked, the problem or None)
REACH_TTL_S = 30.0


def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the Hub cannot be reached right now (offline mode, no network), or None; answered within `timeout_s`.

    huggingface_hub retries a dead connection for half a minute; asking first lets the app say "offline" at once.
    The answer is kept for 30 s.
    """
    import httpx
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return (
            "Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1), so nothing can be read from the Hub. Unset it, "
            "or use a local file or run."
        )
    endpoint = constants.ENDPOINT
    checked, problem = _REACH.get(endpoint, (0.0, None))
    if time.monotonic() - checked < REACH_TTL_S:
        return problem
    try:
        httpx.head(endpoint, timeout=timeout_s, follow_redirects=False)
        problem = None
    except httpx.HTTPError as exc:
        problem = (
            f"Hugging Face Hub: {endpoint} cannot be reached ({type(exc).__name__}). Check the network connection, "
            "or use a local file or run."
        )
    _REACH[endpoint] = (time.monotonic(), problem)
    return problem
