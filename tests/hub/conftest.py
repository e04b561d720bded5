"""Fixtures for the Hub tests: a local Hub server, a client runner that talks to it, and a trained tiny run.

Why a subprocess: `huggingface_hub`, `datasets` and `transformers` read ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` into
module constants when they are imported (`constants.ENDPOINT`, `constants.HUGGINGFACE_CO_URL_TEMPLATE`,
`datasets.config.HF_ENDPOINT`, `datasets.config.HF_HUB_OFFLINE` ...), and the rest of the test session imports them
early with the offline switches on (tests/conftest.py). Patching every copy would test the patches, not the
libraries. So client code runs in a fresh Python process whose environment points at the server from the start:
``HF_ENDPOINT=<server>``, ``HF_HUB_OFFLINE=0``, ``HF_HUB_DISABLE_XET=1`` and a private ``HF_HOME`` (no cache or
stored login leaks in or out). The server itself runs in a thread of the test process, so tests inject faults and
inspect what it received directly. Each client is a plain `python script.py`: whatever the test process or a
dependency imports, a client starts clean (tests/hub/test_clients.py proves it with bitsandbytes and transformers
imported first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import Account, HubServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Distinctive tokens, so a leak anywhere is easy to find.
ALICE_TOKEN = "hf_aliceTEST9f3Kq2LmZ8xW"
BOB_TOKEN = "hf_bobTEST4Hn7Rt1Vc6Yp0"
CAROL_READ_TOKEN = "hf_carolREADONLY2Jd8Xs5"
ACCOUNTS = {
    ALICE_TOKEN: Account("alice", orgs={"acme": "write", "readonly-org": "read"}),
    BOB_TOKEN: Account("bob"),
    CAROL_READ_TOKEN: Account("carol", token_role="read"),
}

ClientRunner = Callable[..., dict[str, Any]]

_PRELUDE = '''
import json, sys


def emit(**values):
    """Report values to the test (one JSON line; the runner merges them)."""
    print("RESULT " + json.dumps(values, default=str), flush=True)


'''


@pytest.fixture
def hub_server() -> Iterator[HubServer]:
    """A fresh in-memory Hub with users alice (write in acme, read in readonly-org), bob and carol (read token)."""
    with HubServer(ACCOUNTS) as server:
        yield server


def client_env(server: HubServer, hf_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a client process: online, pointed at the server, with its own empty HF_HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING_FACE_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_ENDPOINT=server.url,
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(extra or {})
    return env


@pytest.fixture
def hub_client(hub_server: HubServer, tmp_path: Path) -> ClientRunner:
    """Run Python code in a fresh process pointed at the server; `emit(key=value)` in the code reports back.

    Call it as ``hub_client(code, env={...}, timeout=...)``; it returns the merged emitted values and fails the
    test (with the process's output) when the code raises.
    """
    hf_home = tmp_path / "hf-home"
    counter = iter(range(1000))

    def run(code: str, env: dict[str, str] | None = None, timeout: int = 240) -> dict[str, Any]:
        script = tmp_path / f"client_{next(counter)}.py"
        script.write_text(_PRELUDE + textwrap.dedent(code), encoding="utf-8")
        env = client_env(hub_server, hf_home, env)
        argv = [sys.executable, str(script)]
        proc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            pytest.fail(f"client code failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        results: dict[str, Any] = {"_stdout": proc.stdout, "_stderr": proc.stderr}
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.update(json.loads(line[len("RESULT ") :]))
        return results

    return run


@pytest.fixture(scope="session")
def trained_run_template(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real finished run folder: a copy of the session's tiny-demo run (tests/conftest.py), trained once for the
    integration tests too (80 steps, eval every 20, three held-out samples)."""
    return Path(shutil.copytree(demo[0].run_dir, tmp_path_factory.mktemp("hub-runs") / "tiny-run"))


@pytest.fixture
def trained_run(trained_run_template: Path, tmp_path: Path) -> Path:
    """A private copy of the finished tiny run (so each test's status.json and README.md are its own)."""
    return Path(shutil.copytree(trained_run_template, tmp_path / "run"))


def ask_to_push(run_dir: Path, repo_id: str) -> None:
    """Make a run one that asked to be pushed, as a run started with a repo is: its config.yaml names hub.repo_id
    (the tiny run's names none, and a failed push of such a run leaves its status.json alone)."""
    from trainer.config import load_yaml, save_yaml

    config = load_yaml(run_dir / "config.yaml")
    config.hub.repo_id = repo_id
    save_yaml(config, run_dir / "config.yaml")
