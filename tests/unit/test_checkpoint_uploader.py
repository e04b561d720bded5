"""Checkpoint pushes run in the background: submit returns at once, uploads keep their order, failures are reported."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from trainer.hub import CheckpointUploader, HubError


def _checkpoint(root: Path, step: int) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(f'{{"step": {step}}}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights-%d" % step)
    (folder / "optimizer.pt").write_bytes(b"not pushed")
    return folder


def test_submit_returns_before_the_upload_and_wait_waits(tmp_path):
    release = threading.Event()
    seen: list[tuple[str, dict[str, bytes]]] = []

    def slow_push(staging: Path, repo_id: str, token: str | None, private: bool = True) -> str:
        release.wait(5)
        seen.append((staging.name, {p.name: p.read_bytes() for p in staging.iterdir()}))
        return f"https://hub/{repo_id}"

    done: list[tuple[str, str | None]] = []
    uploader = CheckpointUploader("alice/x", "hf_token", on_done=lambda n, e: done.append((n, e)), push=slow_push)
    start = time.perf_counter()
    for step in (1, 2):
        folder = _checkpoint(tmp_path, step)
        uploader.submit(folder)
        shutil.rmtree(folder)  # the Trainer rotates checkpoints away; the upload must not depend on them
    assert time.perf_counter() - start < 1.0 and done == []  # nothing waited for the (blocked) upload
    release.set()
    uploader.wait()
    assert done == [("checkpoint-1", None), ("checkpoint-2", None)]  # in order, each reported
    assert seen[0] == (
        "checkpoint-1",
        {"adapter_config.json": b'{"step": 1}', "adapter_model.safetensors": b"weights-1"},
    )
    assert [name for name, _ in seen] == ["checkpoint-1", "checkpoint-2"]


def test_a_failed_upload_is_reported_not_raised_and_staging_is_cleaned(tmp_path):
    staged: list[Path] = []

    def failing_push(staging: Path, repo_id: str, token: str | None, private: bool = True) -> str:
        staged.append(staging)
        raise HubError("Hugging Face Hub: pushing checkpoint-1 failed (HTTP 503). try again later.")

    done: list[tuple[str, str | None]] = []
    uploader = CheckpointUploader("alice/x", None, on_done=lambda n, e: done.append((n, e)), push=failing_push)
    uploader.submit(_checkpoint(tmp_path, 1))
    uploader.wait()
    assert done == [("checkpoint-1", "Hugging Face Hub: pushing checkpoint-1 failed (HTTP 503). try again later.")]
    assert not staged[0].exists()  # the copy made for the upload is gone
