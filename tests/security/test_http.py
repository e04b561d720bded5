"""The running app on a simulated Space, attacked over HTTP: files by path, other users' runs through the API, a
visitor calling Start. Sessions are real signed session cookies (Starlette's, as Gradio's OAuth sets them)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.appserver import running_app
from trainer.runs.queue import JobStore

from .conftest import SPACE_ENV, SPACE_TOKEN, finished_run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def session_cookie(username: str | None) -> dict[str, str]:
    """The Cookie header of a browser signed in as `username` (none for a visitor)."""
    if username is None:
        return {}
    import itsdangerous

    session = {
        "oauth_info": {
            "access_token": f"hf_oauth{username.upper()}",
            "token_type": "bearer",
            "scope": SPACE_ENV["OAUTH_SCOPES"],
            "expires_at": int(time.time()) + 3600,
            "userinfo": {"preferred_username": username, "name": username.title(), "profile": "", "picture": ""},
        }
    }
    secret = hashlib.sha256((SPACE_ENV["OAUTH_CLIENT_SECRET"] + "-v4").encode()).hexdigest()
    signed = itsdangerous.TimestampSigner(secret).sign(base64.b64encode(json.dumps(session).encode()))
    return {"Cookie": f"session={signed.decode()}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The app as a Space runs it, with alice's and bob's runs, an upload of bob's and a stored token on disk."""

    data = tmp_path_factory.mktemp("space-data")
    store = JobStore(data / "jobs.sqlite")
    finished_run(store, data, "alice", "alice-run")
    finished_run(store, data, "bob", "bob-run")
    upload = data / "uploads" / "bob" / "0123456789abcdef.jsonl"
    upload.parent.mkdir(parents=True)
    upload.write_text('{"messages": [{"role": "user", "content": "bob private"}]}\n')
    hf_home = data / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(SPACE_TOKEN)
    with running_app(data, {**SPACE_ENV, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}) as url:
        yield url, data, store


def _client(url: str, username: str | None):
    from gradio_client import Client

    return Client(url, headers=session_cookie(username), verbose=False)


@pytest.mark.parametrize(
    "target",
    [
        "{data}/jobs.sqlite",
        "{data}/uploads/bob/0123456789abcdef.jsonl",
        "{data}/runs/bob-run/adapter/adapter_model.safetensors",
        "{data}/runs/bob-run/status.json",
        "{data}/hf-home/token",
        "/etc/passwd",
        "{root}/trainer/runs/access.py",
    ],
)
def test_no_file_is_served_by_its_path(site, target):
    import httpx

    url, data, _ = site
    path = target.format(data=data, root=ROOT)
    for variant in (path, quote(path), "../" * 8 + path.lstrip("/"), quote("../" * 8 + path.lstrip("/"))):
        response = httpx.get(f"{url}/gradio_api/file={variant}", timeout=10, headers=session_cookie("bob"))
        assert response.status_code in (403, 404), (variant, response.status_code)
        assert SPACE_TOKEN.encode() not in response.content and b"bob private" not in response.content


def test_the_api_shows_a_signed_in_user_only_their_runs(site):
    url, _, store = site
    bob_run = next(j for j in store.list() if j.owner == "bob")
    alice = _client(url, "alice")
    outputs = alice.predict(str(bob_run.id), {}, api_name="/refresh")
    assert "bob" not in json.dumps(outputs) and "No runs yet" in outputs[0]
    outputs = _client(url, "bob").predict(str(bob_run.id), {}, api_name="/refresh")
    assert "bob-run" in outputs[0]


def test_the_api_asks_a_visitor_to_sign_in(site):
    url, _, store = site
    outputs = _client(url, None).predict("1", {}, api_name="/refresh")
    assert "Sign in with Hugging Face to see your runs" in outputs[0] and "alice" not in json.dumps(outputs)


def test_the_api_never_deletes_another_users_run(site):
    url, _, store = site
    bob_run = next(j for j in store.list() if j.owner == "bob")
    client = _client(url, "alice")
    names = [name for name in client.view_api(print_info=False, return_format="dict")["named_endpoints"]]
    for name in names:  # every action endpoint that takes a run id
        if name.startswith("/handler"):
            try:
                client.predict(str(bob_run.id), api_name=name)
            except Exception:  # noqa: BLE001 - a refusal may surface as an error; what matters is below
                pass
    assert store.get(bob_run.id) is not None and Path(bob_run.run_dir, "adapter").is_dir()


def test_a_visitor_in_the_browser_is_asked_to_sign_in(site):
    """Signed out on the Space: the page says what signing in is for; Start and the Runs tab ask for it."""
    import playwright.sync_api as playwright

    from tests.e2e.test_browser import CHROMIUM, FLAGS

    url, data, store = site
    before = len(store.list())
    expect = playwright.expect
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        expect(page.locator("#sign-in-note")).to_contain_text("Sign in with Hugging Face to train")
        expect(page.get_by_role("button", name=re.compile("Sign in with Hugging Face"))).to_be_visible()
        page.locator("#start").click()
        expect(page.locator("#form-errors")).to_contain_text("Sign in with Hugging Face to train", timeout=30_000)
        page.get_by_role("tab", name="Runs").click()
        expect(page.locator("#run-status")).to_contain_text(
            "Sign in with Hugging Face to see your runs", timeout=30_000
        )
        assert "alice" not in page.locator("#run-picker").inner_text()
        shots = os.environ.get("PHI3_STUDIO_SCREENSHOTS")
        if shots:
            page.screenshot(path=str(Path(shots) / "space-visitor.png"), full_page=True)
        browser.close()
    assert len(store.list()) == before  # nothing was queued


def test_a_request_over_the_size_limit_is_refused_before_the_app_reads_it(site):
    import httpx

    url, _, _ = site
    json_body = {"content-type": "application/json"}
    big = httpx.post(f"{url}/gradio_api/queue/join", content=b"x" * (3 * 2**20), headers=json_body, timeout=60)
    assert big.status_code == 413 and "a request here is at most 2 MB" in big.text  # a 30 MB form was read whole
    small = httpx.post(f"{url}/gradio_api/queue/join", content=b"{}", headers=json_body, timeout=60)
    assert small.status_code not in (413, 500)  # an ordinary request reaches the app (which finds it incomplete)
