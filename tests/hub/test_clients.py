"""A Hub client starts clean whatever the test process imported: each is a plain `python script.py` process."""

from __future__ import annotations

import sys

import pytest

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow  # bitsandbytes and transformers imported here, then a client process: seconds


def test_a_client_runs_after_the_test_process_imported_bitsandbytes_and_transformers(
    hub_server: HubServer, hub_client: ClientRunner
) -> None:
    # bitsandbytes imports `kernels` and with it huggingface_hub, which reads HF_ENDPOINT when imported: a client
    # that inherited these modules (a fork, say) would talk to the real Hub, or not start at all
    import bitsandbytes  # noqa: F401
    import transformers  # noqa: F401

    assert "huggingface_hub" in sys.modules
    out = hub_client(f"""
    import sys
    emit(imported_before=sorted(m for m in ("huggingface_hub", "transformers", "bitsandbytes") if m in sys.modules))
    import bitsandbytes, transformers
    from huggingface_hub import HfApi, constants
    emit(endpoint=constants.ENDPOINT, offline=constants.HF_HUB_OFFLINE)
    emit(user=HfApi(token={ALICE_TOKEN!r}).whoami()["name"])
    """)
    assert out["imported_before"] == []  # a fresh interpreter: nothing of the test process's imports
    assert out["endpoint"] == hub_server.url and out["offline"] is False
    assert out["user"] == "alice"
    assert hub_server.requests("/api/whoami-v2", "GET")  # it talked to this server
