"""Publishing to the Hub, against the local Hub-protocol server (tests/hub/server.py); no network, no real Hub.

Client code (huggingface_hub, datasets, transformers, PEFT) runs unchanged in a subprocess pointed at the server
(see conftest.py for why); pure pieces (model card, loss curve, retry classification) run in-process.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainer.hub import (
    EVAL_COLOR,
    TOKEN_INVALID,
    TOKEN_MISSING,
    TRAIN_COLOR,
    HubError,
    Series,
    base_model_id,
    card_metadata,
    check_push_access,
    is_transient,
    loss_curve_png,
    loss_figure,
    model_card,
    push_run,
    render_loss_chart,
    resolve_token,
    with_retries,
)
from trainer.runs import folder as rf

from .conftest import ALICE_TOKEN, BOB_TOKEN, CAROL_READ_TOKEN, PROJECT_ROOT, ClientRunner, ask_to_push
from .server import HubServer

PUSHED_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "config.yaml",
    "events.jsonl",
    "README.md",
    "loss.png",
}
CHAT_ROWS = (PROJECT_ROOT / "examples" / "pirate_chat.jsonl").read_text(encoding="utf-8").splitlines()[:40]


def push_code(run_dir: Path, repo_id: str, token: str, retries: int = 4) -> str:
    """Client code that pushes a run and reports the URL, or the HubError with every message of its chain."""
    return f"""
    from pathlib import Path
    from trainer.hub import HubError, push_run

    try:
        emit(url=push_run(Path({str(run_dir)!r}), {repo_id!r}, {token!r}, retries={retries}, backoff_s=0.01))
    except HubError as exc:
        chain, e = [], exc
        while e is not None:
            chain.append(str(e))
            e = e.__cause__ or e.__context__
        emit(error=str(exc), chain=chain)
    """


def statuses(hub: HubServer, path_part: str, method: str = "POST") -> list[int]:
    return [status for _, _, status in hub.requests(path_part, method)]


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def all_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- the server speaks the protocol


def test_server_speaks_the_hub_protocol(hub_server: HubServer, hub_client: ClientRunner, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello hub\n")
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    hub_server.tree_page_size = 2  # force the client through Link-header pagination
    out = hub_client(f"""
    import hashlib
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(token={ALICE_TOKEN!r})
    emit(whoami=api.whoami()["name"], url=str(api.create_repo("alice/proto", private=True)))
    emit(again=str(api.create_repo("alice/proto", exist_ok=True)))
    try:
        api.create_repo("alice/proto")
    except HfHubHTTPError as exc:
        emit(conflict=exc.response.status_code)
    info = api.upload_folder(folder_path={str(folder)!r}, repo_id="alice/proto", commit_message="add")
    emit(commit=info.oid, head=api.model_info("alice/proto").sha)
    emit(tree=sorted(f.path for f in api.list_repo_tree("alice/proto", recursive=True)))
    emit(top=sorted(f.path for f in api.list_repo_tree("alice/proto")))
    infos = api.get_paths_info("alice/proto", ["notes.txt", "sub", "nope"])
    emit(paths=sorted((p.path, type(p).__name__) for p in infos))
    path = hf_hub_download("alice/proto", "sub/weights.bin", token={ALICE_TOKEN!r})
    meta = get_hf_file_metadata(hf_hub_url("alice/proto", "sub/weights.bin"), token={ALICE_TOKEN!r})
    emit(downloaded=hashlib.sha256(open(path, "rb").read()).hexdigest(), etag=meta.etag, size=meta.size)
    for name, token in (("bob", {BOB_TOKEN!r}), ("anonymous", False)):
        try:
            HfApi().model_info("alice/proto", token=token)
            emit(**{{name + "_sees_private": True}})
        except RepositoryNotFoundError:
            emit(**{{name + "_sees_private": False}})
    for name, token in (("bob", {BOB_TOKEN!r}), ("carol", {CAROL_READ_TOKEN!r})):
        try:
            HfApi().create_repo("alice/not-yours", token=token)
        except HfHubHTTPError as exc:
            emit(**{{name + "_create": exc.response.status_code}})
    try:
        HfApi().whoami(token="hf_not_a_token")
    except HfHubHTTPError as exc:
        emit(bad_token=exc.response.status_code)
    """)
    weights_sha = hashlib.sha256((folder / "sub" / "weights.bin").read_bytes()).hexdigest()
    assert out["whoami"] == "alice"
    assert out["url"] == out["again"] == f"{hub_server.url}/alice/proto"
    assert out["conflict"] == 409
    assert out["commit"] == out["head"]
    assert out["tree"] == [".gitattributes", "notes.txt", "sub", "sub/weights.bin"]
    assert out["top"] == [".gitattributes", "notes.txt", "sub"]
    assert out["paths"] == [["notes.txt", "RepoFile"], ["sub", "RepoFolder"]]
    assert out["downloaded"] == out["etag"] == weights_sha  # LFS file: ETag is its sha256
    assert out["size"] == 256 * 40
    assert not out["bob_sees_private"] and not out["anonymous_sees_private"]
    assert out["bob_create"] == out["carol_create"] == 403
    assert out["bad_token"] == 401
    # what the server holds and how it got there
    assert hub_server.repos[("model", "alice/proto")].private
    assert hub_server.files("alice/proto")["notes.txt"] == b"hello hub\n"
    assert len(statuses(hub_server, "/lfs-storage/", "PUT")) == 1  # the binary went through the LFS batch API
    assert statuses(hub_server, "/commit/") == [200]
    assert len(hub_server.requests("/tree/main", "GET")) >= 3  # 4-5 entries at 2 per page


# --------------------------------------------------------------------------- push a real trained run


@pytest.mark.slow
def test_pushed_adapter_loads_by_repo_id_with_the_same_logits(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path
) -> None:
    out = hub_client(push_code(trained_run, "alice/phi3-tiny-pirate", ALICE_TOKEN))
    assert out.get("url") == f"{hub_server.url}/alice/phi3-tiny-pirate", out.get("error")

    # one commit with the adapter at the root (where PEFT looks) and the run's files beside it
    assert statuses(hub_server, "/commit/") == [200]
    pushed = hub_server.files("alice/phi3-tiny-pirate")
    assert set(pushed) == PUSHED_FILES | {".gitattributes"}
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert pushed[name] == (trained_run / rf.ADAPTER_DIR / name).read_bytes()
    assert pushed["README.md"] == (trained_run / "README.md").read_bytes()
    assert hub_server.repos[("model", "alice/phi3-tiny-pirate")].private
    status = rf.read_json(trained_run / rf.STATUS_FILE)
    assert status["state"] == "succeeded"  # the run's state is left alone
    assert status["push_state"] == "pushed" and status["push_error"] is None
    assert status["repo_url"] == out["url"]

    # by repo ID, through transformers/PEFT/huggingface_hub: same logits as the local adapter; the card's snippet runs
    sample = rf.read_json(trained_run / rf.SAMPLES_FILE)[0]
    loaded = hub_client(
        f"""
    import contextlib, io, os, re
    import torch
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trainer.tools.tiny import ensure_tiny_model

    base_path = str(ensure_tiny_model())
    tokenizer = AutoTokenizer.from_pretrained({str(trained_run / "adapter")!r})
    messages = [{{"role": "user", "content": {sample["prompt"]!r}}}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = ids["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(base_path).eval()
    adapter_dir = {str(trained_run / "adapter")!r}
    local = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), adapter_dir)
    remote = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path), "alice/phi3-tiny-pirate", token={ALICE_TOKEN!r}
    )
    with torch.no_grad():
        logits = [m.eval()(ids).logits for m in (base, local, remote)]
    emit(
        remote_vs_local=(logits[2] - logits[1]).abs().max().item(),
        adapter_vs_base=(logits[1] - logits[0]).abs().max().item(),
        allclose=torch.allclose(logits[1], logits[2]),
    )
    card = ModelCard.load("alice/phi3-tiny-pirate", token={ALICE_TOKEN!r})
    emit(card_base_model=card.data.base_model, card_library=card.data.library_name)
    snippet = re.search(r"```python\\n(.*?)```", card.content, re.S).group(1)
    os.environ["HF_TOKEN"] = {ALICE_TOKEN!r}  # the reader's own login; the repo is private
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "model-card-snippet", "exec"), {{}})
    emit(snippet_reply=printed.getvalue().strip())
    from trainer.config import ModelConfig
    from trainer.modeling import adapter_problems  # continue training from the pushed adapter, read through PEFT
    asked = ModelConfig(model_name_or_path="tiny-phi3", adapter_name_or_path="alice/phi3-tiny-pirate")
    emit(continue_problems=adapter_problems(asked, {ALICE_TOKEN!r}))
    """
    )
    assert loaded["continue_problems"] == []  # was refused: "is a PEFTTYPE.LORA adapter" (str() of PEFT's enum)
    assert loaded["allclose"] and loaded["remote_vs_local"] == 0.0
    assert loaded["adapter_vs_base"] > 1e-4  # the comparison means something: the adapter changes the logits
    assert loaded["card_base_model"] == "tiny-phi3" and loaded["card_library"] == "peft"
    after = sample["after"]
    if sample["after_stopped"]:  # the snippet stops at <|end|> and reproduces the run's own greedy sample
        assert loaded["snippet_reply"] == after
    else:
        assert after.startswith(loaded["snippet_reply"][:20])


def test_push_refuses_a_run_without_adapter(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model: {}\n")
    with pytest.raises(HubError, match=r"^run folder: .*adapter has no adapter_config.json, adapter_model.safet"):
        push_run(tmp_path, "alice/x", ALICE_TOKEN)  # offline in this process: it fails before any network call


# --------------------------------------------------------------------------- refused before training


def refusal(hub_client: ClientRunner, repo_id: str, token: str) -> str:
    out = hub_client(f"""
    from trainer.hub import HubError, check_push_access
    try:
        emit(user=check_push_access({repo_id!r}, {token!r}))
    except HubError as exc:
        emit(error=str(exc))
    """)
    assert "error" in out, f"expected a refusal, got user {out.get('user')!r}"
    return out["error"]


def assert_nothing_written(hub: HubServer) -> None:
    assert not hub.requests("/api/repos/create") and not hub.requests("/commit/") and not hub.repos


def test_access_allowed_for_own_namespace_and_writable_org(hub_client: ClientRunner) -> None:
    out = hub_client(f"""
    from trainer.hub import check_push_access
    emit(own=check_push_access("alice/phi3-x", {ALICE_TOKEN!r}), org=check_push_access("acme/phi3-x", {ALICE_TOKEN!r}))
    """)
    assert out["own"] == out["org"] == "alice"


def test_refused_bad_token(hub_server: HubServer, hub_client: ClientRunner) -> None:
    assert refusal(hub_client, "alice/phi3-x", "hf_expiredOrMistyped000") == TOKEN_INVALID
    assert statuses(hub_server, "/api/whoami-v2", "GET") == [401]
    assert_nothing_written(hub_server)


def test_refused_other_users_namespace(hub_server: HubServer, hub_client: ClientRunner) -> None:
    message = refusal(hub_client, "bob/phi3-x", ALICE_TOKEN)
    assert message.startswith("hub.repo_id: you cannot write to 'bob/phi3-x': it is another user's namespace")
    assert message.endswith("Use alice/phi3-x.")
    assert_nothing_written(hub_server)


def test_refused_read_only_org(hub_server: HubServer, hub_client: ClientRunner) -> None:
    message = refusal(hub_client, "readonly-org/phi3-x", ALICE_TOKEN)
    assert message == (
        "hub.repo_id: you cannot write to 'readonly-org/phi3-x': you have read-only access to the organization "
        "'readonly-org'. Ask an admin of readonly-org for write access, or use alice/phi3-x."
    )
    assert_nothing_written(hub_server)


def test_refused_read_only_token(hub_server: HubServer, hub_client: ClientRunner) -> None:
    message = refusal(hub_client, "carol/phi3-x", CAROL_READ_TOKEN)
    assert message.startswith("Hugging Face token: read-only, so it cannot push to 'carol/phi3-x'.")
    assert_nothing_written(hub_server)


@pytest.mark.parametrize(
    ("repo_id", "expected"),
    [
        ("alice/bad--name", "hub.repo_id: 'alice/bad--name' is not a valid repo ID (Cannot have -- or .. in repo_id)"),
        ("alice/-dash", "hub.repo_id: 'alice/-dash' is not a valid repo ID (Repo id must use alphanumeric chars"),
        ("alice/a b", "hub.repo_id: 'alice/a b' is not a valid repo ID"),
        ("a/b/c", "hub.repo_id: 'a/b/c' is not a valid repo ID (Repo id must be in the form"),
        ("alice/model.git", "hub.repo_id: 'alice/model.git' is not a valid repo ID (Repo_id cannot end by '.git')"),
        ("phi3-lora", "hub.repo_id: 'phi3-lora' has no namespace. Use <your user name>/phi3-lora."),
        ("", "hub.repo_id: empty."),
    ],
)
def test_refused_invalid_repo_name(repo_id: str, expected: str) -> None:
    # In this process the HF libraries are offline, so any network call would fail differently: none is made.
    with pytest.raises(HubError) as info:
        check_push_access(repo_id, ALICE_TOKEN)
    assert str(info.value).startswith(expected)
    assert ALICE_TOKEN not in str(info.value)


def test_refused_missing_token() -> None:
    with pytest.raises(HubError) as info:
        check_push_access("alice/phi3-x", None)
    assert str(info.value) == TOKEN_MISSING


def test_resolve_token_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    stored = tmp_path / "token"
    stored.write_text("hf_storedLogin123\n")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(stored))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv456")
    assert resolve_token("  hf_fromOAuth789 ") == "hf_fromOAuth789"
    assert resolve_token("") == resolve_token(None) == "hf_fromEnv456"
    monkeypatch.delenv("HF_TOKEN")
    assert resolve_token() == "hf_storedLogin123"
    stored.unlink()
    assert resolve_token() is None


# --------------------------------------------------------------------------- data by Hub ID


@pytest.mark.slow
def test_dataset_by_id_loads_and_trains(hub_server: HubServer, hub_client: ClientRunner, tmp_path: Path) -> None:
    rows_file = tmp_path / "train.jsonl"
    rows_file.write_text("\n".join(CHAT_ROWS) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    out = hub_client(f"""
    from pathlib import Path
    from huggingface_hub import HfApi
    from trainer.config import DataConfig, load_config
    from trainer.data import prepare
    from trainer.hub import model_card
    from trainer.training import run

    api = HfApi(token={ALICE_TOKEN!r})
    api.create_repo("alice/pirates", repo_type="dataset", private=True)
    rows = {str(rows_file)!r}
    api.upload_file(
        path_or_fileobj=rows, path_in_repo="data/train.jsonl", repo_id="alice/pirates", repo_type="dataset"
    )
    prepared = prepare(DataConfig(dataset_name="alice/pirates"), token={ALICE_TOKEN!r})
    emit(format=prepared.format, n_train=len(prepared.train), n_eval=len(prepared.eval), first=prepared.train[0])
    overrides = ["dataset_name=alice/pirates", "max_steps=2", "eval_steps=2", "save_steps=2", "sample_prompts=0"]
    result = run(load_config(preset="tiny-demo", overrides=overrides), run_dir={str(run_dir)!r}, token={ALICE_TOKEN!r})
    emit(step=result.global_step, card=model_card(Path({str(run_dir)!r}), repo_id="alice/phi3-pirates"))
    """)
    assert out["format"] == "messages"
    assert out["n_train"] + out["n_eval"] == len(CHAT_ROWS) and out["n_eval"] == 4
    assert {m["role"] for m in out["first"]["messages"]} == {"user", "assistant"}
    assert out["step"] == 2
    assert rf.read_json(run_dir / rf.STATUS_FILE)["state"] == "succeeded"
    from huggingface_hub import ModelCard

    assert ModelCard(out["card"]).data.datasets == ["alice/pirates"]  # a Hub dataset is named in the card
    leaks = [name for name, data in all_bytes(run_dir).items() if ALICE_TOKEN.encode() in data]
    assert not leaks  # the token reached training (private data) but no file


def test_missing_dataset_is_reported(hub_server: HubServer, hub_client: ClientRunner) -> None:
    hub_server.add_repo("alice/pirates", {"data/train.jsonl": "\n".join(CHAT_ROWS).encode()}, "dataset", private=True)
    out = hub_client(f"""
    from trainer.config import DataConfig
    from trainer.data import DataError, prepare
    cases = (("missing", "alice/no-such-data", {ALICE_TOKEN!r}), ("private", "alice/pirates", {BOB_TOKEN!r}))
    for name, repo, token in cases:
        try:
            prepare(DataConfig(dataset_name=repo), token=token)
        except DataError as exc:
            emit(**{{name: str(exc)}})
    """)
    for key, repo in (("missing", "alice/no-such-data"), ("private", "alice/pirates")):
        assert out[key].startswith(f"data.dataset_name: dataset '{repo}' not found or not readable (")
        assert "Check the ID and that your token can read it" in out[key]
        assert BOB_TOKEN not in out[key] and ALICE_TOKEN not in out[key]


def test_missing_split_is_reported(hub_server: HubServer, hub_client: ClientRunner) -> None:
    hub_server.add_repo("alice/pirates", {"data/train.jsonl": "\n".join(CHAT_ROWS).encode()}, "dataset")
    out = hub_client("""
    from trainer.config import DataConfig
    from trainer.data import DataError, prepare
    try:
        prepare(DataConfig(dataset_name="alice/pirates", dataset_train_split="training"))
    except DataError as exc:
        emit(error=str(exc))
    """)
    assert out["error"] == (
        "data.dataset_train_split: alice/pirates has no split 'training'. Available splits: train. Use one of these."
    )


# --------------------------------------------------------------------------- retries


@pytest.mark.slow
def test_push_survives_two_server_errors(hub_server: HubServer, hub_client: ClientRunner, trained_run: Path) -> None:
    hub_server.fail_next(1, status=500, path="/api/repos/create")
    hub_server.fail_next(1, status=502, path="/commit/")
    out = hub_client(push_code(trained_run, "alice/phi3-retry", ALICE_TOKEN))
    assert out.get("url") == f"{hub_server.url}/alice/phi3-retry", out.get("error")
    assert statuses(hub_server, "/api/repos/create") == [500, 200]
    assert statuses(hub_server, "/commit/") == [502, 200]  # one commit landed, after the retry
    assert set(hub_server.files("alice/phi3-retry")) == PUSHED_FILES | {".gitattributes"}
    assert rf.read_json(trained_run / rf.STATUS_FILE)["push_state"] == "pushed"


@pytest.mark.slow
def test_push_survives_a_dropped_connection(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path
) -> None:
    hub_server.drop_next(1, path="/commit/")
    out = hub_client(push_code(trained_run, "alice/phi3-drop", ALICE_TOKEN))
    assert out.get("url") == f"{hub_server.url}/alice/phi3-drop", out.get("error")
    assert statuses(hub_server, "/commit/") == [0, 200]  # 0: closed without an answer


@pytest.mark.slow
def test_push_does_not_retry_client_errors(hub_server: HubServer, hub_client: ClientRunner, trained_run: Path) -> None:
    ask_to_push(trained_run, "alice/phi3-422")  # a run that asked records its failed push
    hub_server.fail_next(1, status=422, path="/commit/")
    out = hub_client(push_code(trained_run, "alice/phi3-422", ALICE_TOKEN))
    assert out["error"].startswith("Hugging Face Hub: pushing to 'alice/phi3-422' failed (HTTP 422")
    assert statuses(hub_server, "/commit/") == [422]
    assert rf.read_json(trained_run / rf.STATUS_FILE)["push_state"] == "push_failed"


@pytest.mark.slow
def test_permanent_failure_keeps_the_run_and_a_retry_succeeds(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path
) -> None:
    ask_to_push(trained_run, "alice/phi3-later")
    adapter_before = file_hashes(trained_run / rf.ADAPTER_DIR)
    hub_server.fail_next(100, status=503, path="/commit/")
    failed = hub_client(push_code(trained_run, "alice/phi3-later", ALICE_TOKEN, retries=2))
    assert failed["error"].startswith("Hugging Face Hub: pushing to 'alice/phi3-later' failed after retries (HTTP 503")
    assert failed["error"].endswith(f"The adapter is safe in {trained_run / 'adapter'}; push again to retry.")
    assert statuses(hub_server, "/commit/") == [503, 503, 503]  # first try + 2 retries
    assert file_hashes(trained_run / rf.ADAPTER_DIR) == adapter_before  # nothing local lost
    status = rf.read_json(trained_run / rf.STATUS_FILE)
    assert status["state"] == "succeeded"
    assert status["push_state"] == "push_failed" and status["push_error"] == failed["error"]
    assert len(hub_server.repos[("model", "alice/phi3-later")].commits) == 1  # only the repo's initial commit

    hub_server.clear_faults()
    retried = hub_client(push_code(trained_run, "alice/phi3-later", ALICE_TOKEN))
    assert retried["url"] == f"{hub_server.url}/alice/phi3-later"
    status = rf.read_json(trained_run / rf.STATUS_FILE)
    assert status["push_state"] == "pushed" and status["push_error"] is None and status["state"] == "succeeded"
    assert set(hub_server.files("alice/phi3-later")) == PUSHED_FILES | {".gitattributes"}


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (502, True), (503, True), (504, True), (429, True), (408, True)]
    + [(400, False), (401, False), (403, False), (404, False), (409, False), (422, False)],
)
def test_retry_classification_by_status(status: int, transient: bool) -> None:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(status, request=httpx2.Request("POST", "http://hub.test/api/models/a/b/commit/main"))
    error = HfHubHTTPError(f"HTTP {status}", response=response)
    assert is_transient(error) is transient
    try:  # wrapped, as the client wraps LFS upload errors
        raise RuntimeError("Error while uploading 'x' to the Hub.") from error
    except RuntimeError as wrapped:
        assert is_transient(wrapped) is transient


def test_retry_classification_of_network_errors() -> None:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    assert is_transient(httpx2.ConnectError("refused"))
    assert is_transient(httpx2.RemoteProtocolError("Server disconnected without sending a response."))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError("Invalid metadata in README.md"))
    assert not is_transient(OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."))


def test_with_retries_doubles_its_wait_logs_each_retry_and_raises_the_error_as_it_was(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # no real wait
    calls: list[str] = []

    def fails(times: int, error: Exception) -> Any:
        def call() -> str:
            calls.append("call")
            if len(calls) <= times:
                raise error
            return "done"

        return call

    with caplog.at_level(logging.WARNING, logger="trainer.hub.retry"):
        assert with_retries("uploading to alice/x", fails(2, ConnectionResetError("reset")), 4, 0.5) == "done"
    assert len(calls) == 3 and waits == [0.5, 1.0]
    assert [record.getMessage() for record in caplog.records] == [
        "uploading to alice/x failed (ConnectionResetError: reset); retry 1 of 4 in 0.5 s",
        "uploading to alice/x failed (ConnectionResetError: reset); retry 2 of 4 in 1.0 s",
    ]
    calls.clear()
    waits.clear()
    down = TimeoutError("timed out")
    with pytest.raises(TimeoutError) as info:
        with_retries("whoami", fails(100, down), 3, 1.0)
    assert info.value is down and len(calls) == 4 and waits == [1.0, 2.0, 4.0]  # first try + 3 retries
    calls.clear()
    waits.clear()
    with pytest.raises(ValueError, match="Invalid metadata"):
        with_retries("uploading", fails(100, ValueError("Invalid metadata in README.md")), 3, 1.0)
    assert len(calls) == 1 and waits == []  # not transient: tried once


@pytest.mark.parametrize(
    ("error", "transient"),
    [  # what hf-xet (the upload path of real users) raises, as reported in huggingface/xet-core's issues
        (
            RuntimeError(
                "Data processing error: CAS service error : ReqwestMiddleware Error: Request failed after 5 retries"
            ),
            True,
        ),
        (RuntimeError("Data processing error: CAS service error : IO Error: Timer expired"), True),
        (
            RuntimeError(
                "Data processing error: CAS service error : Error : single flight error: Real call failed: "
                "CasObjectError(InternalIOError(reqwest::Error { kind: Decode }))"
            ),
            True,
        ),
        (RuntimeError("Data processing error: File I/O error: No such file or directory"), False),
        ("auth", False),
        ("missing", False),
    ],
)
def test_retry_classification_of_xet_errors(error, transient) -> None:
    import hf_xet

    if error == "auth":
        error = hf_xet.XetAuthenticationError("token refresh failed: 401")
    elif error == "missing":
        error = hf_xet.XetObjectNotFoundError("xorb not found")
    assert is_transient(error) is transient
    try:  # huggingface_hub lets them through, or wraps them
        raise RuntimeError("Error while uploading 'adapter_model.safetensors' to the Hub.") from error
    except RuntimeError as wrapped:
        assert is_transient(wrapped) is transient


@pytest.mark.slow
def test_offline_mode_is_reported_not_retried(trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as with HF_HUB_OFFLINE=1 left set (read at call time)
    ask_to_push(trained_run, "alice/phi3-offline")
    with pytest.raises(HubError) as info:
        push_run(trained_run, "alice/phi3-offline", ALICE_TOKEN, backoff_s=30)  # a retry would hang the test
    assert str(info.value) == (
        "Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE), so checking the token for 'alice/phi3-offline' is "
        "impossible. Unset it."
    )
    status = rf.read_json(trained_run / rf.STATUS_FILE)
    assert status["push_state"] == "push_failed" and status["push_error"] == str(info.value)


# --------------------------------------------------------------------------- the token stays secret


@pytest.mark.slow
def test_token_never_reaches_files_logs_or_messages(
    hub_server: HubServer, hub_client: ClientRunner, trained_run: Path
) -> None:
    hub_server.fail_next(100, status=500, path="alice/phi3-leak-fail/commit")
    out = hub_client(f"""
    import logging
    from pathlib import Path
    from trainer.hub import HubError, check_push_access, push_run

    run_dir = Path({str(trained_run)!r})
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")  # as the worker logs: into the run folder
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)  # every library's debug output, HTTP included

    messages = []
    attempts = (
        lambda: push_run(run_dir, "alice/phi3-leak-fail", {ALICE_TOKEN!r}, retries=1, backoff_s=0.01),
        lambda: push_run(run_dir, "bob/phi3-leak", {ALICE_TOKEN!r}, backoff_s=0.01),
        lambda: push_run(run_dir, "alice/phi3-leak", {ALICE_TOKEN!r} + "x", backoff_s=0.01),
        lambda: check_push_access("readonly-org/phi3-leak", {ALICE_TOKEN!r}),
    )
    for attempt in attempts:
        try:
            attempt()
        except HubError as exc:
            chain, e = [], exc
            while e is not None:
                chain.append(str(e) + repr(e.args))
                e = e.__cause__ or e.__context__
            messages.append(chain)
    emit(url=push_run(run_dir, "alice/phi3-leak", {ALICE_TOKEN!r}, backoff_s=0.01), messages=messages)
    """)
    assert out["url"].endswith("/alice/phi3-leak")
    assert len(out["messages"]) == 4
    log_text = (trained_run / "log.txt").read_text(encoding="utf-8")
    assert "pushed run" in log_text and "HTTP Request" in log_text  # the log did capture the push, at debug level
    secret = ALICE_TOKEN.encode()
    assert [name for name, data in all_bytes(trained_run).items() if secret in data] == []
    assert [m for chain in out["messages"] for m in chain if ALICE_TOKEN in m] == []
    assert ALICE_TOKEN not in out["_stdout"] + out["_stderr"]
    assert [name for name, data in hub_server.files("alice/phi3-leak").items() if secret in data] == []


# --------------------------------------------------------------------------- the model card


@pytest.mark.slow
def test_model_card_parses_and_tells_the_whole_story(trained_run: Path) -> None:
    from huggingface_hub import ModelCard

    from trainer.hub.card import public_config_text

    text = model_card(trained_run, repo_id="alice/phi3-tiny-pirate")
    assert text == model_card(trained_run, repo_id="alice/phi3-tiny-pirate")  # deterministic: no clock, no network
    card = ModelCard(text)
    assert card.data.base_model == "tiny-phi3"
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "text-generation"
    assert card.data.license == "mit"
    assert card.data.tags == ["trl", "sft", "lora", "phi3", "generated_from_trainer"]
    assert card.data.get("datasets") is None  # trained on a local file
    status = rf.read_json(trained_run / rf.STATUS_FILE)
    sample = rf.read_json(trained_run / rf.SAMPLES_FILE)[0]
    versions = rf.read_json(trained_run / rf.VERSIONS_FILE)
    body = card.text
    for expected in (
        "the local file `pirate_chat.jsonl`",
        f"| {status['eval_loss_before']:.4f} |",
        f"| {status['eval_loss_after']:.4f} |",
        "![Train and eval loss](loss.png)",
        sample["prompt"],
        sample["before"],
        sample["after"],
        'adapter_id = "alice/phi3-tiny-pirate"',
        "PeftModel.from_pretrained(model, adapter_id)",
        "apply_chat_template(",
        'convert_tokens_to_ids("<|end|>")',
        public_config_text((trained_run / "config.yaml").read_text(encoding="utf-8")).strip(),  # all settings
        "dataset_name: pirate_chat.jsonl",  # a local dataset by its file name: no paths of this machine
        f"- peft: {versions['peft']}",
        f"- transformers: {versions['transformers']}",
    ):
        assert expected in body, expected
    assert str(trained_run) not in text  # no local paths


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (
            {"model_name_or_path": "tiny-phi3"},
            {"dataset_name": "examples/pirate_chat.jsonl"},
            {"base_model": "tiny-phi3", "license": "mit", "tag": "lora", "datasets": None},
        ),
        (
            {"model_name_or_path": "microsoft/Phi-3-mini-4k-instruct", "load_in_4bit": True},
            {"dataset_name": "iamtarun/python_code_instructions_18k_alpaca"},
            {
                "base_model": "microsoft/Phi-3-mini-4k-instruct",
                "license": "mit",
                "tag": "qlora",
                "datasets": ["iamtarun/python_code_instructions_18k_alpaca"],
            },
        ),
        (
            {"model_name_or_path": "/models/my-llama"},
            {"dataset_name": "alice/pirates"},
            {"base_model": "my-llama", "license": None, "tag": "lora", "datasets": ["alice/pirates"]},
        ),
    ],
)
def test_card_metadata(model: dict[str, Any], data: dict[str, Any], expected: dict[str, Any]) -> None:
    from huggingface_hub import ModelCardData

    meta = card_metadata({"model": model, "data": data})
    assert meta["base_model"] == expected["base_model"]
    assert meta.get("license") == expected["license"]
    assert expected["tag"] in meta["tags"] and {"trl", "sft", "phi3", "generated_from_trainer"} <= set(meta["tags"])
    assert meta.get("datasets") == expected["datasets"]
    assert yaml.safe_load(ModelCardData(**meta).to_yaml()) == meta


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
        ("tiny-phi3", "tiny-phi3"),
        ("/root/.cache/phi3-studio/tiny-phi3-abc", "tiny-phi3-abc"),
        ("./models/phi3-local/", "phi3-local"),
    ],
)
def test_base_model_id(name: str, expected: str) -> None:
    assert base_model_id(name) == expected


# --------------------------------------------------------------------------- the loss curve


def _pixels_near(image: Any, color: tuple[int, int, int], tolerance: int = 30) -> int:
    import numpy as np

    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int((np.abs(rgb - np.array(color, dtype=np.int16)) <= tolerance).all(axis=-1).sum())


@pytest.mark.slow
def test_loss_curve_png_draws_both_series(trained_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = loss_curve_png(trained_run, tmp_path / "loss.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (800, 450)
        rgb = image.convert("RGB")
        assert _pixels_near(rgb, TRAIN_COLOR) > 50  # train-loss marker + legend
        assert _pixels_near(rgb, EVAL_COLOR) > 500  # eval-loss line from step 0 to step 5 + legend
    assert not list(tmp_path.glob(".loss.png.*"))  # written atomically, no temp file left


def test_loss_chart_lines_and_empty_runs() -> None:
    train = Series("train loss", [(s, 10 / (1 + s)) for s in range(0, 100, 5)], TRAIN_COLOR)
    image = render_loss_chart([train, Series("eval loss", [], EVAL_COLOR)])
    assert _pixels_near(image, TRAIN_COLOR) > 1000 and _pixels_near(image, EVAL_COLOR) == 0
    empty = render_loss_chart([Series("train loss", [], TRAIN_COLOR)])
    assert _pixels_near(empty, TRAIN_COLOR) == 0 and empty.size == (800, 450)
    again = render_loss_chart([train, Series("eval loss", [], EVAL_COLOR)])
    assert again.tobytes() == image.tobytes()  # the same events draw the same pixels
    both = render_loss_chart([train, Series("eval loss", [(0, 12.0), (50, 2.0), (95, 1.0)], EVAL_COLOR)])
    assert _pixels_near(both, TRAIN_COLOR) > 1000 and _pixels_near(both, EVAL_COLOR) > 1000


@pytest.mark.parametrize(
    ("steps", "losses"),
    [
        ([5], [3.0]),  # one logged step
        ([0, 1, 2, 3, 4, 5], [4.9, 4.5, 4.2, 3.9, 3.7, 3.6]),
        ([0, 250, 500, 750, 1000], [10.0, 6.0, 3.0, 1.0, 0.0]),
        ([10, 20, 30], [0.3, 0.1, 0.05]),
        ([0, 40, 80], [-1.0, 0.0, 1.0]),
    ],
)
def test_loss_chart_ticks_are_round_and_steps_whole(steps: list[int], losses: list[float]) -> None:
    axes = loss_figure([Series("train loss", list(zip(steps, losses, strict=True)), TRAIN_COLOR)]).axes[0]
    x_low, x_high = axes.get_xlim()
    y_low, y_high = axes.get_ylim()
    assert x_low < min(steps) and max(steps) < x_high and y_low < min(losses) and max(losses) < y_high  # all shown
    x_ticks = [tick for tick in axes.get_xticks() if x_low <= tick <= x_high]
    y_ticks = [tick for tick in axes.get_yticks() if y_low <= tick <= y_high]
    assert len(x_ticks) >= 2 and all(float(tick).is_integer() for tick in x_ticks)  # a step is a whole number
    assert 3 <= len(y_ticks) <= 8
    for ticks in (x_ticks, y_ticks):
        gap = ticks[1] - ticks[0]
        power = 10 ** math.floor(math.log10(gap))
        assert any(gap == pytest.approx(m * power) for m in (1, 2, 5))  # 1, 2 or 5 x 10^k apart
        assert all(tick / gap == pytest.approx(round(tick / gap)) for tick in ticks)  # round: multiples of the gap
