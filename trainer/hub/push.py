"""Publishing a run to the Hugging Face Hub: the adapter, the merged model, and checkpoints while training.

After training, `push_run` writes `README.md` (the model card) and `loss.png` into the run folder, then uploads the
adapter (weights, config, tokenizer files), `config.yaml`, `events.jsonl`, `README.md` and `loss.png` to the repo root
in ONE commit, retrying network errors and 5xx answers with exponential backoff (never 4xx). It deletes nothing
locally and records the outcome in `status.json` (`push_state`, `repo_url`, `push_error`) without touching the run's
`state`; a failed push that the run never asked for (`asked_to_push`) leaves `status.json` as it was.
`CheckpointUploader` pushes each checkpoint's adapter in the background, so training never waits on the network.
`huggingface_hub` talks to ``$HF_ENDPOINT`` (read when it is imported), which is how the tests point it at a local
Hub-protocol server.

Example:
    >>> from trainer.hub import check_push_access, push_run, resolve_token
    >>> token = resolve_token()                       # the OAuth token, HF_TOKEN or the stored `hf auth login`
    >>> check_push_access("alice/phi3-pirate-lora", token)
    'alice'
    >>> push_run(Path("runs/20250101-120000-run"), "alice/phi3-pirate-lora", token)
    'https://huggingface.co/alice/phi3-pirate-lora'
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.hub.auth import check_push_access
from trainer.hub.card import MODEL_CARD_FILE, commit_description, merged_card, model_card, public_config_text
from trainer.hub.chart import LOSS_CURVE_FILE, loss_curve_png
from trainer.hub.retry import HubError, hub_error, with_retries
from trainer.runs import folder as rf
from trainer.runs.state import RunState

logger = logging.getLogger(__name__)

RUN_FILES_PUSHED = (rf.CONFIG_FILE, rf.EVENTS_FILE, MODEL_CARD_FILE, LOSS_CURVE_FILE)
"""Run-folder files uploaded beside the adapter files (which go to the repo root, where PEFT looks for them)."""
EVAL_FILES_PUSHED = (
    rf.EVAL_SUMMARY_FILE,
    rf.EVAL_RESULTS_FILE,
    rf.EVAL_CHART_FILE,
    rf.EVAL_VOTES_FILE,
    rf.EVAL_JUDGE_FILE,
)
"""The run's evaluation (`python -m trainer eval`), uploaded under eval/ when it has one."""
ADAPTER_REQUIRED = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_SKIPPED = ("README.md",)  # PEFT's template card; ours replaces it


def files_to_push(run_dir: Path) -> list[tuple[str, Path]]:
    """(path in the repo, local file) for everything a push uploads: adapter files at the root, then run files.

    Args:
        run_dir: the run folder (README.md, loss.png and the evaluation's eval/ files are pushed when present).

    Returns:
        The files, adapter first.

    Raises:
        HubError: the adapter is missing (the run has not finished).
    """
    adapter = Path(run_dir) / rf.ADAPTER_DIR
    missing = [name for name in ADAPTER_REQUIRED if not (adapter / name).is_file()]
    if missing:
        raise HubError(
            f"run folder: {adapter} has no {', '.join(missing)}. Push a run that finished training "
            "(the adapter is saved at the end)."
        )
    files = [(p.name, p) for p in sorted(adapter.iterdir()) if p.is_file() and p.name not in ADAPTER_SKIPPED]
    files += [(name, Path(run_dir) / name) for name in RUN_FILES_PUSHED if (Path(run_dir) / name).is_file()]
    evaluation = Path(run_dir) / rf.EVAL_DIR  # the last evaluation, when the run has one (the card shows it)
    if any((evaluation / name).is_file() for name in EVAL_FILES_PUSHED):
        shown = [name for name in EVAL_FILES_PUSHED if (evaluation / name).is_file()]
        files += [(f"{rf.EVAL_DIR}/{name}", evaluation / name) for name in shown]
    return files


def push_run(
    run_dir: Path,
    repo_id: str,
    token: str,
    private: bool = True,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> str:
    """Publish a finished run: model card + loss curve + adapter + config + events, in one commit.

    Checks access first (`check_push_access`), writes README.md and loss.png into the run folder, creates the repo
    (existing is fine; its visibility is left as it is), then uploads in ONE commit. Network errors and 5xx answers
    are retried with exponential backoff (backoff_s, 2x, 4x ...); 4xx answers are not. Nothing local is deleted, and
    status.json gets `push_state` ("pushing", then "pushed" or "push_failed"), `repo_url` and `push_error`. A push
    the run never asked for (`asked_to_push` False: `python -m trainer push RUN --repo-id ...` of a run configured
    to stay local) records only its success: when it fails, status.json is left as it was.

    Args:
        run_dir: the finished run folder.
        repo_id: the model repo (namespace/name).
        token: a Hugging Face token with write access (never logged or stored).
        private: create the repo as private.
        retries: retries after the first attempt, for each Hub call.
        backoff_s: the first wait between attempts (doubled each time).

    Returns:
        The repo URL.

    Raises:
        HubError: access refused, the adapter is missing, or the Hub kept failing (the run folder is untouched
            apart from README.md, loss.png and status.json).
    """
    run_dir = Path(run_dir)
    files_to_push(run_dir)  # fail before any network call when the adapter is missing
    status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
    if status.get("state") != RunState.SUCCEEDED:
        logger.warning("pushing run %s whose state is %s", run_dir.name, status.get("state") or "unknown")
    asked = asked_to_push(run_dir, status)
    if asked:  # a push the run never asked for leaves its push state alone unless it succeeds
        _record_push(run_dir, push_state="pushing", repo_id=repo_id, push_error=None)
    keep = f"The adapter is safe in {run_dir / rf.ADAPTER_DIR}; push again to retry."
    try:
        user = check_push_access(repo_id, token, retries, backoff_s)
        rf.write_text_atomic(run_dir / MODEL_CARD_FILE, model_card(run_dir, repo_id=repo_id))
        loss_curve_png(run_dir, run_dir / LOSS_CURVE_FILE)
        files = [  # config.yaml as published: no server paths
            (name, public_config_text(path.read_text(encoding="utf-8")).encode() if name == rf.CONFIG_FILE else path)
            for name, path in files_to_push(run_dir)
        ]
        logger.info("pushing %d files of run %s to %s as %s", len(files), run_dir.name, repo_id, user)
        url, info = create_and_commit(
            repo_id,
            files,
            token,
            private,
            f"Upload LoRA adapter from run {run_dir.name}",
            commit_description(run_dir),
            retries,
            backoff_s,
        )
    except Exception as exc:
        error = hub_error(exc, token, f"pushing to {repo_id!r}", keep)
        if asked:
            _record_push(run_dir, push_state="push_failed", repo_id=repo_id, push_error=str(error))
        logger.error("push to %s failed: %s", repo_id, error)
        logger.debug("push failure details", exc_info=True)
        raise error from None
    _record_push(
        run_dir,
        push_state="pushed",
        repo_id=repo_id,
        repo_url=url,
        push_error=None,
        push_commit=getattr(info, "oid", None),
        pushed_at=time.time(),
    )
    logger.info("pushed run %s to %s (commit %s)", run_dir.name, url, getattr(info, "oid", "?"))
    return url


def asked_to_push(run_dir: Path, status: dict[str, Any] | None = None) -> bool:
    """Whether a run asked to be on the Hub: its config.yaml names a `hub.repo_id`, or status.json records a push.

    Args:
        run_dir: the run folder.
        status: its status.json, when already read.

    Returns:
        False for a run configured to stay local and never pushed (an unreadable config.yaml counts as no repo).
    """
    from trainer.config import ConfigError, load_yaml

    if status is None:
        status = rf.read_json(Path(run_dir) / rf.STATUS_FILE, {}) or {}
    if status.get("push_state"):
        return True
    try:
        return bool(load_yaml(Path(run_dir) / rf.CONFIG_FILE).hub.repo_id)
    except ConfigError:
        return False


def create_and_commit(
    repo_id: str,
    files: list[tuple[str, Path | bytes]],
    token: str,
    private: bool,
    message: str,
    description: str,
    retries: int,
    backoff_s: float,
) -> tuple[str, Any]:
    """Create the model repo (existing is fine) and upload files in ONE commit, each call retried; (url, commit)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()

    def create() -> str:
        return str(api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model"))

    def commit() -> Any:
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path) if isinstance(path, Path) else path)
            for name, path in files
        ]
        return api.create_commit(
            repo_id, operations, commit_message=message, commit_description=description, token=token, repo_type="model"
        )

    url = with_retries(f"creating {repo_id}", create, retries, backoff_s)
    return url, with_retries(f"uploading to {repo_id}", commit, retries, backoff_s)


def merged_repo_id(repo_id: str) -> str:
    """Where the merged full model goes: the adapter repo's name + '-merged'."""
    return f"{repo_id}-merged"


def merge_adapter(run_dir: Path, out_dir: Path) -> Path:
    """Merge the run's adapter into an unquantised copy of its base (bf16 on a GPU, fp32 on a CPU) and save it.

    QLoRA runs merge into the full-precision base too: merging into 4-bit weights would round the update away.

    Args:
        run_dir: the finished run folder (its config.yaml and adapter/).
        out_dir: where the merged model and tokenizer are written.

    Returns:
        out_dir.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.config import load_yaml
    from trainer.modeling import cuda_available, load_base_model

    config = load_yaml(Path(run_dir) / rf.CONFIG_FILE)
    dtype = "bfloat16" if cuda_available() else "float32"
    base = load_base_model(dataclasses.replace(config.model, load_in_4bit=False, dtype=dtype), for_training=False)
    merged = PeftModel.from_pretrained(base, Path(run_dir) / rf.ADAPTER_DIR).merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(Path(run_dir) / rf.ADAPTER_DIR).save_pretrained(out_dir)
    return Path(out_dir)


def push_merged(
    run_dir: Path, repo_id: str, token: str, private: bool = True, retries: int = 4, backoff_s: float = 1.0
) -> str:
    """Merge the adapter into its base and push the full model to `<repo_id>-merged` with its own card.

    Args:
        run_dir: the finished run folder.
        repo_id: the ADAPTER's repo ID; the merged model goes to `merged_repo_id(repo_id)`.
        token: a write token (never logged or stored).
        private: create the repo as private.
        retries: retries per Hub call on network errors and 5xx.
        backoff_s: the first wait between attempts.

    Returns:
        The merged repo's URL.

    Raises:
        HubError: no access, or the Hub kept failing (the merged files stay in `run_dir/merged`).
    """
    run_dir = Path(run_dir)
    target = merged_repo_id(repo_id)
    try:
        check_push_access(target, token, retries, backoff_s)
        out = merge_adapter(run_dir, run_dir / "merged")
        rf.write_text_atomic(out / MODEL_CARD_FILE, merged_card(run_dir, target, repo_id))
        files = [(p.name, p) for p in sorted(out.iterdir()) if p.is_file()]
        url, _ = create_and_commit(
            target,
            files,
            token,
            private,
            f"Upload merged model from run {run_dir.name}",
            commit_description(run_dir),
            retries,
            backoff_s,
        )
    except Exception as exc:
        error = hub_error(exc, token, f"pushing the merged model to {target!r}")
        _record_push(run_dir, merged_push_error=str(error))
        raise error from None
    _record_push(run_dir, merged_repo_url=url, merged_push_error=None)
    return url


def push_checkpoint(
    checkpoint_dir: Path, repo_id: str, token: str, private: bool = True, retries: int = 4, backoff_s: float = 1.0
) -> str:
    """Upload one checkpoint's adapter files to `checkpoints/<checkpoint name>/` of the repo, in one commit.

    Returns:
        The repo URL.

    Raises:
        HubError: the Hub kept failing or refused (the checkpoint stays on disk either way).
    """
    checkpoint_dir = Path(checkpoint_dir)
    files = [
        (f"checkpoints/{checkpoint_dir.name}/{name}", checkpoint_dir / name)
        for name in ADAPTER_REQUIRED
        if (checkpoint_dir / name).is_file()
    ]
    if len(files) != len(ADAPTER_REQUIRED):
        raise HubError(f"{checkpoint_dir}: no adapter files in this checkpoint.")
    try:
        url, _ = create_and_commit(
            repo_id,
            files,
            token,
            private,
            f"Upload {checkpoint_dir.name} adapter",
            "Pushed during training by Phi-3 Fine-Tune Studio.",
            retries,
            backoff_s,
        )
    except Exception as exc:
        raise hub_error(exc, token, f"pushing {checkpoint_dir.name} to {repo_id!r}") from None
    return url


class CheckpointUploader:
    """Pushes checkpoints' adapters in the background while training goes on; the newest checkpoint wins.

    `submit` copies the checkpoint's adapter files aside at once (the Trainer may delete the checkpoint folder when it
    rotates checkpoints) and returns. One daemon thread uploads them, oldest first. When checkpoints are saved faster
    than they upload, at most one waits: a newer one replaces it (the point is the latest adapter on the Hub), so
    staging copies never pile up. `wait` blocks until the uploads have ended (call it when training ends; give a
    timeout on cancel, so the worker can still exit in time). Every checkpoint is reported once through
    `on_done(name, problem)`: problem is None when it was pushed, else why not. Nothing here stops training: any
    failure is reported, and the checkpoint stays on disk.
    """

    def __init__(
        self,
        repo_id: str,
        token: str | None,
        private: bool = True,
        on_done: Callable[[str, str | None], None] | None = None,
        push: Callable[..., str] = push_checkpoint,
    ):
        self.repo_id, self.token, self.private = repo_id, token, private
        self.on_done = on_done or (lambda name, problem: None)
        self._push = push
        self._state = threading.Condition()
        self._waiting: Path | None = None  # the staging folder of the next upload
        self._busy = False
        self._closed = False
        threading.Thread(target=self._work, name="checkpoint-push", daemon=True).start()

    def submit(self, checkpoint_dir: Path) -> None:
        """Snapshot the checkpoint's adapter files and queue their upload; returns at once."""
        checkpoint_dir = Path(checkpoint_dir)
        try:
            staging = Path(tempfile.mkdtemp(prefix="checkpoint-push-")) / checkpoint_dir.name
            staging.mkdir()
            for name in ADAPTER_REQUIRED:
                if (checkpoint_dir / name).is_file():
                    shutil.copy2(checkpoint_dir / name, staging / name)
        except OSError as exc:
            self._report(checkpoint_dir.name, f"could not copy it for the upload ({exc})")
            return
        with self._state:
            superseded, self._waiting = self._waiting, staging
            self._state.notify_all()
        if superseded is not None:
            shutil.rmtree(superseded.parent, ignore_errors=True)
            self._report(superseded.name, f"{staging.name} was saved before it could be uploaded")

    def wait(self, timeout: float | None = None) -> bool:
        """Let the queued uploads finish and stop the worker; True when all ended within `timeout` seconds."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            return self._state.wait_for(lambda: self._waiting is None and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._waiting is not None or self._closed)
                if self._waiting is None:
                    return
                staging, self._waiting, self._busy = self._waiting, None, True
            try:
                self._push(staging, self.repo_id, self.token, private=self.private)
                problem = None
            except Exception as exc:  # noqa: BLE001 - a checkpoint upload never stops training
                problem = str(exc) if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
            finally:
                shutil.rmtree(staging.parent, ignore_errors=True)
            self._report(staging.name, problem)
            with self._state:
                self._busy = False
                self._state.notify_all()

    def _report(self, name: str, problem: str | None) -> None:
        try:
            self.on_done(name, problem)
        except Exception:  # noqa: BLE001 - reporting must not kill the uploads
            logger.exception("reporting the upload of %s failed", name)


def _record_push(run_dir: Path, **fields: Any) -> None:
    """Merge push fields into status.json, keeping the run's `state` as it is."""
    rf.write_status(run_dir, None, **fields)
