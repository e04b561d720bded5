"""Checkpoint pushes run in the background: submit returns at once, the newest waiting checkpoint wins, and no
failure of an upload (or of its report) reaches training."""

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


class Blocked:
    """A push that waits for a go-ahead, recording what it uploaded."""

    def __init__(self):
        self.go = threading.Event()
        self.started = threading.Event()
        self.seen: list[tuple[str, dict[str, bytes]]] = []

    def __call__(self, staging: Path, repo_id: str, token: str | None, private: bool = True) -> str:
        self.started.set()
        self.go.wait(5)
        self.seen.append((staging.name, {p.name: p.read_bytes() for p in staging.iterdir()}))
        return f"https://hub/{repo_id}"


def test_submit_returns_at_once_and_the_newest_waiting_checkpoint_wins(tmp_path):
    push, done = Blocked(), []
    uploader = CheckpointUploader("alice/x", "hf_token", on_done=lambda n, p: done.append((n, p)), push=push)
    start = time.perf_counter()
    for step in (1, 2, 3):
        folder = _checkpoint(tmp_path, step)
        uploader.submit(folder)
        shutil.rmtree(folder)  # the Trainer rotates checkpoints away; the upload must not depend on them
        if step == 1:
            assert push.started.wait(5)  # checkpoint-1 is uploading (and blocked) while 2 and 3 arrive
    assert time.perf_counter() - start < 2.0  # nothing waited for the (blocked) upload
    assert done == [("checkpoint-2", "checkpoint-3 was saved before it could be uploaded")]
    push.go.set()
    assert uploader.wait(timeout=10)
    assert done[1:] == [("checkpoint-1", None), ("checkpoint-3", None)]  # oldest first, each reported once
    assert push.seen[0] == (
        "checkpoint-1",
        {"adapter_config.json": b'{"step": 1}', "adapter_model.safetensors": b"weights-1"},  # adapter files only
    )
    assert [name for name, _ in push.seen] == ["checkpoint-1", "checkpoint-3"]


def test_failures_are_reported_never_raised_and_staging_is_cleaned(tmp_path):
    staged: list[Path] = []

    def failing_push(staging: Path, repo_id: str, token: str | None, private: bool = True) -> str:
        staged.append(staging)
        if staging.name == "checkpoint-1":
            raise HubError("Hugging Face Hub: pushing checkpoint-1 failed (HTTP 503). try again later.")
        raise OSError("disk went away")

    done: list[tuple[str, str | None]] = []

    def report(name, problem):
        done.append((name, problem))
        raise RuntimeError("the event file is gone")  # a failing report must not stop the uploads either

    for step in (1, 2):  # one uploader per checkpoint, so each is uploaded (none superseded)
        uploader = CheckpointUploader("alice/x", None, on_done=report, push=failing_push)
        uploader.submit(_checkpoint(tmp_path, step))
        assert uploader.wait(timeout=10)
    assert done == [
        ("checkpoint-1", "Hugging Face Hub: pushing checkpoint-1 failed (HTTP 503). try again later."),
        ("checkpoint-2", "OSError: disk went away"),
    ]
    assert all(not path.exists() for path in staged)  # the copies made for the uploads are gone


def test_wait_gives_up_after_its_timeout(tmp_path):
    push = Blocked()
    uploader = CheckpointUploader("alice/x", None, push=push)
    uploader.submit(_checkpoint(tmp_path, 1))
    assert push.started.wait(5)
    start = time.perf_counter()
    assert uploader.wait(timeout=0.3) is False  # a cancelled run does not hang on a stuck upload
    assert time.perf_counter() - start < 2.0
    push.go.set()


def test_a_full_disk_when_staging_is_reported_and_training_goes_on(tmp_path, monkeypatch):
    import trainer.hub.push as push_module

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(push_module.tempfile, "mkdtemp", no_space)
    done: list[tuple[str, str | None]] = []
    uploader = CheckpointUploader("alice/x", None, on_done=lambda n, p: done.append((n, p)), push=Blocked())
    uploader.submit(_checkpoint(tmp_path, 1))  # returns, does not raise
    assert uploader.wait(timeout=5)
    assert done == [("checkpoint-1", "could not copy it for the upload ([Errno 28] No space left on device)")]


def test_a_continued_dpo_checkpoint_pushes_the_tuned_adapter_without_trls_reference_copy(tmp_path, monkeypatch):
    import trainer.hub.push as push

    folder = _checkpoint(tmp_path, 4)
    (folder / "ref").mkdir()  # TRL's frozen copy of the parent adapter (the reference), saved in each checkpoint
    (folder / "ref" / "adapter_model.safetensors").write_bytes(b"the parent")
    (folder / "ref" / "adapter_config.json").write_text("{}")
    sent = []
    monkeypatch.setattr(push, "create_and_commit", lambda repo, files, *args: sent.extend(files) or ("url", None))
    assert push.push_checkpoint(folder, "alice/x", "hf_token") == "url"
    uploaded = {name: Path(path).read_bytes() for name, path in sent}
    assert uploaded == {
        "checkpoints/checkpoint-4/adapter_config.json": b'{"step": 4}',
        "checkpoints/checkpoint-4/adapter_model.safetensors": b"weights-4",
    }
