"""No code is fetched from the Hub at run time unless the owner asks (trainer/hubkernels.py).

Each check runs online against the local Hub, so a library that tried to fetch a kernel would ask this server: a
tiny run, its chat and estimate, and the app's start-up ask it nothing at all, and the output and the run's log.txt
name no kernel repository. The opt-in (`model.hub_kernels`)
is checked the other way round: the same run then does ask, which also proves these checks would see a fetch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appserver import running_app

from .conftest import ClientRunner, client_env
from .server import HubServer

pytestmark = pytest.mark.slow  # tiny QLoRA runs and the app in processes of their own

KERNEL_REPO = "kernels-community"


def _qlora_run(run_dir: Path, hub_kernels: bool) -> str:
    """Client code: a 2-step QLoRA run of the tiny demo through the CLI (the worker's path)."""
    return f"""
    from trainer.__main__ import main

    sets = ["load_in_4bit=true", "hub_kernels={str(hub_kernels).lower()}", "max_steps=2", "eval_steps=2",
            "save_steps=2", "sample_prompts=1"]
    emit(code=main(["train", "--preset", "tiny-demo", "--run-dir", {str(run_dir)!r}, *[f"--set={{s}}" for s in sets]]))
    import bitsandbytes.functional
    emit(bnb_asks_for_a_kernel=bitsandbytes.functional.has_avx512bf16())  # its CPU backend asks only then
    """


def _chat_and_estimate(run_dir: Path) -> str:
    """Client code, in a process that trains nothing (as the app's): base and tuned answer one prompt with the 4-bit
    run's adapter, and a QLoRA run is estimated."""
    return f"""
    from trainer.chat import ChatEngine, GenerationSettings
    from trainer.config import load_config
    from trainer.estimate import estimate_run

    engine = ChatEngine.from_source({str(run_dir)!r})
    messages = [{{"role": "user", "content": "What is the moon?"}}]
    emit(replies=list(engine.reply_pair(messages, messages, GenerationSettings(max_new_tokens=8, greedy=True))))
    emit(estimated=estimate_run(load_config(preset="tiny-demo", overrides=["load_in_4bit=true"])) is not None)
    """


def _kernel_requests(hub_server: HubServer) -> list[tuple[str, str, int]]:
    return [r for r in hub_server.requests() if KERNEL_REPO in r[1] or "/kernels/" in r[1]]


def test_a_qlora_run_and_its_chat_fetch_no_kernel(
    hub_server: HubServer, hub_client: ClientRunner, tiny_model_path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "qlora"
    trained = hub_client(_qlora_run(run_dir, hub_kernels=False))
    chatted = hub_client(_chat_and_estimate(run_dir))
    assert trained["code"] == 0 and all(isinstance(reply, str) for reply in chatted["replies"])
    assert chatted["estimated"]
    assert hub_server.requests() == []  # a tiny local run asks the Hub nothing at all, kernels included
    for out in (trained, chatted):
        assert KERNEL_REPO not in out["_stdout"] + out["_stderr"]
    assert KERNEL_REPO not in (run_dir / "log.txt").read_text()


def test_hub_kernels_when_the_run_asks_for_them(
    hub_server: HubServer, hub_client: ClientRunner, tiny_model_path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "qlora-kernels"
    out = hub_client(_qlora_run(run_dir, hub_kernels=True))
    assert out["code"] == 0
    asked = [path for _, path, _ in _kernel_requests(hub_server)]
    if out["bnb_asks_for_a_kernel"]:  # bitsandbytes asks on a CPU with AVX512-BF16 (as these machines have)
        assert asked, hub_server.requests()  # kernels checks the publisher first: /api/organizations/kernels-community
    else:
        assert asked == []


def test_the_app_starts_and_serves_without_fetching_a_kernel(
    hub_server: HubServer, tmp_path: Path, tiny_model_path
) -> None:
    import httpx

    env = client_env(hub_server, tmp_path / "hf-home")
    with running_app(tmp_path, env) as url:
        assert httpx.get(url, timeout=30).status_code == 200
        assert httpx.get(f"{url}/config", timeout=30).status_code == 200
    assert hub_server.requests() == []  # the app's start-up asks the Hub nothing, kernels included
    assert KERNEL_REPO not in (tmp_path / "app.log").read_text()
