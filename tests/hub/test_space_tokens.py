"""On a Space, which token the Hub sees: a signed-out visitor's requests carry none (never the Space's own HF_TOKEN),
a signed-in user's carry their own. Observed at the local Hub server, request by request, not at the call.

The app runs as a Space would (OAUTH_CLIENT_ID set) in a client process online against the local Hub, whose HF_TOKEN
is alice's: the Space's owner, who can read her private datasets. huggingface_hub and datasets read a token of None
as "use HF_TOKEN", so a visitor's call that passes None would reach alice's private data.
"""

from __future__ import annotations

import pytest

from .conftest import ALICE_TOKEN, BOB_TOKEN, ClientRunner
from .server import HubServer
from .test_hub import CHAT_ROWS

pytestmark = pytest.mark.slow  # a client process each (seconds)

SPACE = {
    "OAUTH_CLIENT_ID": "test-client",
    "OAUTH_CLIENT_SECRET": "test-secret",
    "SYSTEM": "spaces",
    "SPACE_ID": "alice/phi3-studio",
    "HF_TOKEN": ALICE_TOKEN,  # the Space's own token: its owner's
}


def _preview(dataset: str, username: str | None, oauth_token: str | None) -> str:
    """Client code: the Train tab's Preview, as the Space's handler runs it for this caller."""
    return f"""
    from trainer.runs.access import caller_from, space_mode
    from trainer.config import preset_config
    from trainer.ui.form import form_fields, widget_value
    from trainer.ui.train_tab import preview_data

    assert space_mode()
    values = {{s.key: widget_value(s, s.get(preset_config("tiny-demo"))) for s in form_fields()}}
    values["data.dataset_name"] = {dataset!r}
    summary, rows, _ = preview_data(values, caller_from({username!r}, {oauth_token!r}))
    emit(summary=summary, rows=rows)
    """


@pytest.fixture
def datasets_of_alice(hub_server: HubServer) -> HubServer:
    rows = "\n".join(CHAT_ROWS).encode()
    hub_server.add_repo("alice/private-ds", {"data/train.jsonl": rows}, "dataset", private=True)
    hub_server.add_repo("alice/public-ds", {"data/train.jsonl": rows}, "dataset")
    return hub_server


def _tokens(hub_server: HubServer, repo: str) -> set[str | None]:
    seen = {token for path, token in hub_server.tokens_seen if repo in path}
    assert seen, f"no request for {repo} reached the server"  # the check below is not vacuous
    return seen


def test_a_visitor_previews_with_no_token_and_never_reads_the_space_owners_private_data(
    datasets_of_alice: HubServer, hub_client: ClientRunner
) -> None:
    private = hub_client(_preview("alice/private-ds", None, None), env=SPACE)
    assert _tokens(datasets_of_alice, "alice/private-ds") == {None}
    assert private["rows"] == "" and "Dataset problem" in private["summary"]  # as if it did not exist
    public = hub_client(_preview("alice/public-ds", None, None), env=SPACE)
    assert _tokens(datasets_of_alice, "alice/public-ds") == {None}
    assert "row 1" in public["rows"]  # public data previews for anyone


def test_a_signed_in_user_previews_with_their_own_token_only(
    datasets_of_alice: HubServer, hub_client: ClientRunner
) -> None:
    out = hub_client(_preview("alice/private-ds", "bob", BOB_TOKEN), env=SPACE)
    assert _tokens(datasets_of_alice, "alice/private-ds") == {BOB_TOKEN}  # never the Space's
    assert out["rows"] == ""  # bob may not read alice's private data
