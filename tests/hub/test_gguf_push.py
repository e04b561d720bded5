"""Push GGUF: a run's exports go to `<repo>-GGUF` with a card of their own (tags gguf and the base model; how to run
them with llama.cpp, Ollama and LM Studio), or into the adapter repo's gguf/ folder, leaving its card alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer

pytestmark = pytest.mark.slow  # the pushed run is the tiny demo, trained once for the suite


def _exports(run_dir: Path) -> None:
    """Two exports as the export writes them (their bytes do not matter to the push)."""
    folder = run_dir / "gguf"
    folder.mkdir()
    for kind in ("q4_K_M", "q8_0"):
        (folder / f"{run_dir.name}-{kind}.gguf").write_bytes(b"GGUF" + kind.encode() * 1000)
        (folder / f"Modelfile.{kind}").write_text(f"FROM ./{run_dir.name}-{kind}.gguf\n")


def test_push_gguf_to_its_own_repo_with_a_card(hub_server: HubServer, hub_client: ClientRunner, trained_run: Path):
    _exports(trained_run)
    names = [f"{trained_run.name}-q4_K_M.gguf", f"{trained_run.name}-q8_0.gguf"]
    result = hub_client(f"""
        from pathlib import Path
        from trainer.gguf.push import push_gguf
        run = Path({str(trained_run)!r})
        emit(url=push_gguf(run, {names!r}, "alice/pirate-GGUF", {ALICE_TOKEN!r}, backoff_s=0.01))
    """)
    assert result["url"].endswith("/alice/pirate-GGUF")
    files = hub_server.files("alice/pirate-GGUF")
    assert set(files) - {".gitattributes"} == {*names, "Modelfile.q4_K_M", "Modelfile.q8_0", "README.md"}
    card = files["README.md"].decode()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "tiny-phi3" and "gguf" in front["tags"]
    assert f"--hf-file {names[0]}" in card and "ollama create" in card and "LM Studio" in card


def test_push_gguf_alongside_leaves_the_adapters_card(hub_server: HubServer, hub_client: ClientRunner, trained_run):
    _exports(trained_run)
    name = f"{trained_run.name}-q8_0.gguf"
    hub_client(f"""
        from pathlib import Path
        from trainer.gguf.push import push_gguf
        from trainer.hub import push_run
        push_run(Path({str(trained_run)!r}), "alice/pirate", {ALICE_TOKEN!r}, backoff_s=0.01)
        emit(url=push_gguf(Path({str(trained_run)!r}), [{name!r}], "alice/pirate", {ALICE_TOKEN!r}, alongside=True))
    """)
    files = hub_server.files("alice/pirate")
    assert {f"gguf/{name}", "gguf/Modelfile.q8_0", "adapter_model.safetensors"} <= set(files)
    assert "library_name: peft" in files["README.md"].decode()  # still the adapter's card
