"""Two signed-in users on a Space: each sees and touches only their own runs, acts with their own token only, and
reaches nothing of the server's by a typed path or a forged id."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from trainer.runs import folder as rf
from trainer.runs.access import Caller, caller_from, dataset_problem, upload_dir

from .conftest import ALICE_OAUTH, BOB_OAUTH, SPACE_TOKEN, oauth, profile, wait_for

ALICE, BOB = profile("alice"), profile("bob")


def _ids(update) -> list[str]:
    return [value for _, value in update["choices"]]


def test_each_user_sees_only_their_runs(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    assert _ids(space.fns["refresh_picker"](None, ALICE)) == [str(alice_run.id)]
    assert _ids(space.fns["refresh_picker"](None, BOB)) == [str(bob_run.id)]
    outputs = space.fns["refresh"](str(alice_run.id), {}, ALICE, oauth(ALICE_OAUTH))
    samples = outputs[space.refreshed.index("samples")]
    assert "alice-run" in outputs[0] and "secret prompt of alice-run" in samples
    assert _ids(outputs[-2]) == [str(alice_run.id)]


@pytest.mark.parametrize("forged", ["BOB", "../2", "2 OR 1=1", "-2", "02x", "99999", "", None, "1e3", "２"])
def test_another_users_run_and_forged_ids_show_nothing(space, forged):
    bob_run = space.run_of("bob")
    job_id = str(bob_run.id) if forged == "BOB" else forged
    outputs = space.fns["refresh"](job_id, {}, ALICE, oauth(ALICE_OAUTH))
    shown = " ".join(str(o) for o, name in zip(outputs, space.refreshed, strict=True) if name != "seen")
    assert "bob" not in shown and "No runs yet" in outputs[0]


@pytest.mark.parametrize("action", ["cancel", "resume", "delete"])
def test_another_users_run_cannot_be_acted_on(space, action):
    bob_run = space.run_of("bob")
    with pytest.warns(UserWarning, match="no such run, or not yours"):
        space.action(action)(str(bob_run.id), ALICE, oauth(ALICE_OAUTH))
    assert space.manager.store.get(bob_run.id) == bob_run and Path(bob_run.run_dir).is_dir()


def test_a_user_deletes_their_own_run(space):
    alice_run = space.run_of("alice")
    space.action("delete")(str(alice_run.id), ALICE, oauth(ALICE_OAUTH))
    assert space.manager.store.get(alice_run.id) is None and not Path(alice_run.run_dir).exists()


def test_retry_push_checks_the_owner_and_uses_the_users_own_token(space, monkeypatch):
    calls = []
    monkeypatch.setattr(space.manager, "retry_push", lambda job_id, token: calls.append((job_id, token)))
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    with pytest.warns(UserWarning, match="not yours"):
        space.fns["retry_push"](str(bob_run.id), ALICE, oauth(ALICE_OAUTH))
    space.fns["retry_push"](str(alice_run.id), ALICE, oauth(ALICE_OAUTH))
    space.fns["retry_push"](str(bob_run.id), BOB, None)  # signed in without an OAuth token
    assert calls == [(alice_run.id, ALICE_OAUTH), (bob_run.id, False)]  # never the Space's HF_TOKEN (None reads so)


def test_a_user_downloads_only_their_own_adapter_as_a_copy(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    with pytest.warns(UserWarning, match="not yours"):
        assert space.fns["download"](str(bob_run.id), ALICE)["value"] is None
    path = Path(space.fns["download"](str(alice_run.id), ALICE)["value"])
    assert space.data_dir not in path.parents  # a temporary copy, never a data-dir file
    with zipfile.ZipFile(path) as archive:
        assert archive.read("adapter_model.safetensors") == b"weights of alice-run"


def test_a_run_is_queued_for_its_owner_with_their_own_token(space):
    outputs = space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))
    assert outputs[0] == "", outputs[0]
    job = space.manager.store.get(int(outputs[-1]["value"]))
    assert job.owner == "alice"
    assert (str(job.id), outputs[-1]["value"]) in [(v, v) for _, v in outputs[-1]["choices"]]  # selected at once
    assert job.name == "tiny-phi3: pirate_chat"  # no name typed, no preset sent: base model + dataset
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == ALICE_OAUTH  # the worker got alice's token
    names = wait_for(Path(job.run_dir) / "worker-env.txt").split()
    assert "PATH" in names and "PHI3_STUDIO_DATA_DIR" in names  # what it needs ...
    assert not [n for n in names if n.startswith("OAUTH_")]  # ... and no secret of the Space's (session signing key)


def test_without_an_oauth_token_a_run_never_borrows_the_spaces(space):
    outputs = space.fns["start"](space.form(), BOB, None)
    job = space.manager.store.get(int(outputs[-1]["value"]))
    assert wait_for(Path(job.run_dir) / "worker-token.txt") == "<none>"  # not SPACE_TOKEN


def test_the_runs_a_user_may_have_queued_are_limited(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # nothing starts: the runs stay queued
    first = space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))
    second = space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))
    third = space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))
    assert first[0] == second[0] == ""
    assert "you have 2 runs queued or training, the most this Space allows per user" in third[0]
    assert space.fns["start"](space.form(), BOB, oauth(BOB_OAUTH))[0] == ""  # a limit per user, not for all


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("examples/pirate_chat.jsonl", True),
        ("HuggingFaceH4/ultrachat_200k", True),
        ("teknium/OpenHermes-2.5", True),
        ("{bob_upload}", False),
        ("{data_dir}/jobs.jsonl", False),
        ("{data_dir}/runs", False),
        ("/etc/passwd", False),
        ("examples/../runs/alice-run/events.jsonl", False),
        ("~/.cache/huggingface/token", False),
    ],
)
def test_a_run_on_a_space_uses_a_hub_dataset_an_example_or_an_own_upload(space, name, allowed):
    bob_upload = upload_dir(caller_from("bob", None)) / "0123456789abcdef.jsonl"
    bob_upload.parent.mkdir(parents=True, exist_ok=True)
    bob_upload.write_text("{}\n")
    (space.data_dir / "jobs.jsonl").write_text("{}\n")
    name = name.format(bob_upload=bob_upload, data_dir=space.data_dir)
    assert (dataset_problem(caller_from("alice", ALICE_OAUTH), name) is None) is allowed
    if not allowed:
        outputs = space.fns["start"](space.form(dataset_name=name), ALICE, oauth(ALICE_OAUTH))
        assert "a file you uploaded" in outputs[0] and len(space.manager.store.list()) == 2


def test_uploads_go_to_the_users_folder_in_a_random_folder_under_a_safe_name(space, tmp_path):
    data = tmp_path / "../evil name;$(x).jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ho"}]}\n')
    update, error = space.fns["upload"](str(data), ALICE)
    saved = Path(update["value"])
    assert error == "" and saved.parent.parent == space.data_dir / "uploads" / "alice"
    assert re.fullmatch(r"[0-9a-f]{16}", saved.parent.name)  # a folder no one can guess or choose
    assert saved.name == "evil_name___x.jsonl" and saved.read_text() == data.read_text()  # the name, made safe
    assert dataset_problem(caller_from("alice", ALICE_OAUTH), str(saved)) is None
    assert dataset_problem(caller_from("bob", BOB_OAUTH), str(saved)) is not None  # not bob's


def _uploads(tmp_path, limits):
    """The run service's upload handling under `limits` (its job table in `tmp_path`)."""
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService

    return RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite"), limits=limits)).save_upload


def test_an_upload_over_the_limit_is_refused(tmp_path, monkeypatch):
    from trainer.runs.access import Limits

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    data = tmp_path / "big.jsonl"
    data.write_bytes(b"x" * 2 * 2**20)
    saved, error = _uploads(tmp_path, Limits(upload_mb=1))(Caller("alice", None), str(data))
    assert saved is None and "is 2 MB; uploads here are up to 1 MB" in error


def test_a_users_uploads_together_are_limited(tmp_path, monkeypatch):
    from trainer.runs.access import Limits

    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    data = tmp_path / "part.jsonl"
    data.write_bytes(b"x" * 2**20)
    save_upload = _uploads(tmp_path, Limits(upload_mb=2, uploads_mb=3))
    kept = [save_upload(Caller("alice", None), str(data)) for _ in range(4)]  # 10 x 10 MB were all kept
    assert [saved is not None for saved, _ in kept] == [True, True, True, False]
    assert "already take 3 MB, and **part.jsonl** would pass the 3 MB a user may keep" in kept[3][1]
    assert save_upload(Caller("bob", None), str(data))[0] is not None  # per user, not for all


def test_compare_offers_only_the_users_runs_by_id(space):
    alice_run = space.run_of("alice")
    update = space.fns["adapter_choices"](None, ALICE)
    assert update["choices"] == [(f"run #{alice_run.id} · alice-run", str(alice_run.id))]  # an id, never a path
    bob_id = str(space.run_of("bob").id)
    assert space.fns["adapter_choices"](bob_id, ALICE)["value"] == str(alice_run.id)  # a forged current id: not kept
    assert space.fns["examples"](str(space.run_of("bob").id), ALICE)["choices"] == []
    assert space.fns["examples"](str(alice_run.id), ALICE)["choices"] == ["secret prompt of alice-run"]


@pytest.mark.parametrize(
    "typed", ["{bob_dir}", "{bob_dir}/adapter", "../runs/bob-run", "/etc", "bob-run", "trainer/assets", "examples/"]
)
def test_compare_never_loads_a_typed_path(space, typed, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the app's folder, as on a Space
    typed = typed.format(bob_dir=space.run_of("bob").run_dir)
    with pytest.warns(UserWarning) as shown:  # refused with a message; the panes stay as they are
        outputs = list(space.fns["send"]("Hi", [], [], None, typed, 16, 0.7, 0.9, True, "", ALICE, oauth(ALICE_OAUTH)))
    assert outputs == [(gr.skip(), gr.skip(), gr.skip())]
    assert "repo" in str(shown[0].message)
    if typed == "trainer/assets":  # a valid-looking repo ID that names a folder of the server
        assert "names a folder on this server" in str(shown[0].message)


def test_compare_of_another_users_run_is_refused(space):
    with pytest.warns(UserWarning, match="no such run, or not yours"):
        outputs = list(
            space.fns["send"]("Hi", [], [], str(space.run_of("bob").id), "", 16, 0.7, 0.9, True, "", ALICE, None)
        )
    assert outputs == [(gr.skip(), gr.skip(), gr.skip())]


def test_compare_loads_for_one_user_with_their_token_and_never_shares_the_engine(space, monkeypatch):
    from trainer.chat import ChatEngine

    loads = []

    class Engine:
        def stream_pair(self, *args, **kwargs):
            yield ("base", "tuned")

    def fake_from_source(source, base=None, token=None, local_base=True):
        loads.append((source, token, local_base))
        return Engine()

    monkeypatch.setattr(ChatEngine, "from_source", staticmethod(fake_from_source))
    send = space.fns["send"]
    list(send("Hi", [], [], None, "alice/pirate-adapter", 16, 0.7, 0.9, True, "", ALICE, oauth(ALICE_OAUTH)))
    list(send("Hi", [], [], None, "alice/pirate-adapter", 16, 0.7, 0.9, True, "", ALICE, oauth(ALICE_OAUTH)))
    list(send("Hi", [], [], None, "alice/pirate-adapter", 16, 0.7, 0.9, True, "", BOB, oauth(BOB_OAUTH)))
    assert loads == [
        ("alice/pirate-adapter", ALICE_OAUTH, False),  # loaded once for alice, with her token; no local base
        ("alice/pirate-adapter", BOB_OAUTH, False),  # bob's request loads it again, with his own token
    ]
    assert SPACE_TOKEN not in str(loads)


def test_a_hub_adapter_whose_base_is_a_server_folder_is_refused(tmp_path, monkeypatch):
    import json

    from trainer.chat import ChatEngine, ChatError

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(tmp_path), "task_type": "CAUSAL_LM"})
    )
    with pytest.raises(ChatError, match="names a folder on this server"):
        ChatEngine.from_source(adapter, local_base=False)


def test_an_admin_sees_every_run(space, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_ADMINS", "carol, dave")
    ids = _ids(space.fns["refresh_picker"](None, profile("carol")))
    assert sorted(ids) == sorted(str(j.id) for j in space.manager.store.list())
    assert _ids(space.fns["refresh_picker"](None, profile("erin"))) == []


def test_preview_reads_with_the_users_own_token(space, monkeypatch):
    import trainer.data

    tokens = []
    monkeypatch.setattr(trainer.data, "preview", lambda cfg, tok, n, token=None, **k: tokens.append(token) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        space.fns["preview"](space.form(), ALICE, oauth(ALICE_OAUTH))
    assert tokens == [ALICE_OAUTH]


def test_a_run_is_named_by_its_owner_or_by_its_preset_and_dataset(space):
    named = space.fns["start"]({**space.form(name="pirate v2")}, ALICE, oauth(ALICE_OAUTH))
    preset = space.fns["start"]({**space.form(), space.components["preset"]: "tiny-demo"}, ALICE, oauth(ALICE_OAUTH))
    forged = space.fns["start"]({**space.form(), space.components["preset"]: "<b>x</b>"}, BOB, oauth(BOB_OAUTH))
    names = [space.manager.store.get(int(o[-1]["value"])).name for o in (named, preset, forged)]
    assert names == ["pirate v2", "tiny-demo: pirate_chat", "tiny-phi3: pirate_chat"]  # a made-up preset is ignored
    labels = dict((v, label) for label, v in preset[-1]["choices"])
    assert labels[preset[-1]["value"]].endswith("tiny-demo: pirate_chat")  # the name is what the run list shows


def test_chat_with_this_run_opens_compare_on_the_owners_run_only(space):
    alice_run, bob_run = space.run_of("alice"), space.run_of("bob")
    (Path(alice_run.run_dir) / rf.ADAPTER_DIR).mkdir(exist_ok=True)
    tabs, picked = space.fns["chat_with"](str(alice_run.id), ALICE)
    assert tabs.selected == "compare" and picked["value"] == str(alice_run.id)
    assert [value for _, value in picked["choices"]] == [str(alice_run.id)]
    assert space.fns["chat_with"](str(bob_run.id), ALICE) == (gr.skip(), gr.skip())  # another user's run: nothing
    space.manager.store.update(alice_run.id, status="running")
    with pytest.warns(UserWarning, match="once it has finished"):
        assert space.fns["chat_with"](str(alice_run.id), ALICE) == (gr.skip(), gr.skip())


def test_a_run_on_a_space_fetches_hub_kernels_only_where_the_owner_allows_them(space, monkeypatch):
    from trainer.config import load_yaml
    from trainer.preflight import unavailable_options

    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # nothing starts: the runs stay queued
    monkeypatch.setenv("USE_HUB_KERNELS", "NO")  # the default (trainer.hubkernels)
    before = len(space.manager.store.list())
    assert "this Space does not run code fetched" in unavailable_options(on_gpu=False)["model.hub_kernels"]
    refused = space.fns["start"](space.form(**{"model.hub_kernels": True}), ALICE, oauth(ALICE_OAUTH))
    assert "**Hub kernels**" in refused[0] and "untick **Hub kernels**" in refused[0]
    assert "USE_HUB_KERNELS=YES" in refused[0].replace("\\", "") and len(space.manager.store.list()) == before
    assert space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))[0] == ""  # off, as by default: queued
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")  # the owner allows them (a Space variable)
    assert "model.hub_kernels" not in unavailable_options(on_gpu=False)
    assert space.fns["start"](space.form(**{"model.hub_kernels": True}), ALICE, oauth(ALICE_OAUTH))[0] == ""
    queued = space.manager.store.list()[: len(space.manager.store.list()) - before]  # the newest first
    assert sorted(load_yaml(Path(job.run_dir) / "config.yaml").model.hub_kernels for job in queued) == [False, True]


def test_a_user_without_an_oauth_token_is_checked_at_start_with_no_token_not_the_spaces(space, monkeypatch):
    import trainer.preflight

    tokens = []
    real = trainer.preflight.check_before_queueing

    def spy(cfg, on_gpu, token=None):
        tokens.append(token)
        return real(cfg, on_gpu, token)

    monkeypatch.setattr(trainer.preflight, "check_before_queueing", spy)
    monkeypatch.setattr(space.manager, "schedule", lambda: None)
    assert space.fns["start"](space.form(), BOB, None)[0] == ""
    assert space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))[0] == ""
    assert tokens == [False, ALICE_OAUTH]  # False: no token at all (None would read as the Space's HF_TOKEN)


def test_a_user_resumes_their_own_run_with_their_own_token(space, monkeypatch):
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # stays queued: its token is held for its worker
    alice_run = space.run_of("alice")
    (Path(alice_run.run_dir) / rf.CHECKPOINTS_DIR / "checkpoint-1").mkdir(parents=True)
    space.manager.store.update(alice_run.id, status="cancelled", needs_token=True)
    space.action("resume")(str(alice_run.id), ALICE, oauth(ALICE_OAUTH))
    assert space.manager.store.get(alice_run.id).status == "queued"
    assert space.manager._tokens.get(alice_run.id) == ALICE_OAUTH  # not "waiting for sign-in"


def test_compare_checks_the_adapters_base_before_reading_anything_of_it(tmp_path, monkeypatch):
    """An adapter whose base is no Phi-3 (an 80-layer Llama, say) is refused from the base's config alone: no
    tokenizer and no weights of it are read."""
    import json

    import transformers

    from trainer.chat import ChatEngine, ChatError

    base = tmp_path / "llama"
    transformers.LlamaConfig(
        num_hidden_layers=80, hidden_size=64, intermediate_size=128, num_attention_heads=4
    ).save_pretrained(base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(base), "task_type": "CAUSAL_LM"})
    )
    read = []
    for loader in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(loader, "from_pretrained", lambda *a, **k: read.append(a) or 1 / 0)
    with pytest.raises(ChatError, match="'llama' model; this studio trains Phi-3-family"):
        ChatEngine.from_source(adapter)
    assert read == []


def test_resume_counts_against_the_run_limit_and_its_time_limit_runs_from_the_first_start(space, monkeypatch):
    real_schedule = space.manager.schedule
    monkeypatch.setattr(space.manager, "schedule", lambda: None)  # the two new runs stay queued
    alice_run = space.run_of("alice")
    (Path(alice_run.run_dir) / rf.CHECKPOINTS_DIR / "checkpoint-1").mkdir(parents=True)
    rf.write_status(Path(alice_run.run_dir), "cancelled", started_at=time.time() - 119 * 60)  # 1 of 120 min left
    space.manager.store.update(alice_run.id, status="cancelled")
    queued = [space.fns["start"](space.form(), ALICE, oauth(ALICE_OAUTH))[-1]["value"] for _ in range(2)]
    with pytest.warns(UserWarning, match="you have 2 runs queued or training, the most this Space allows"):
        space.action("resume")(str(alice_run.id), ALICE, oauth(ALICE_OAUTH))  # a third active run: refused
    assert space.manager.store.get(alice_run.id).status == "cancelled"
    for job_id in queued:
        space.manager.cancel(int(job_id))
    monkeypatch.setattr(space.manager, "schedule", real_schedule)
    space.action("resume")(str(alice_run.id), ALICE, oauth(ALICE_OAUTH))
    assert 0 < float(wait_for(Path(alice_run.run_dir) / "worker-time-limit.txt")) <= 60  # not 120 minutes again
    rf.write_status(Path(alice_run.run_dir), "cancelled", started_at=time.time() - 121 * 60)
    space.manager.store.update(alice_run.id, status="cancelled")
    with pytest.warns(UserWarning, match="has had the 120 minutes a run may train here since it first started"):
        space.action("resume")(str(alice_run.id), ALICE, oauth(ALICE_OAUTH))


def test_the_runs_tab_shows_a_log_and_an_error_without_the_servers_paths(space):
    alice_run = space.run_of("alice")
    run_dir = Path(alice_run.run_dir)
    home = str(Path.home())
    (run_dir / rf.LOG_FILE).write_text(
        f"loading {run_dir}/adapter\nFileNotFoundError: {home}/.cache/phi3-studio/tiny-phi3/config.json\n"
    )
    space.manager.store.update(alice_run.id, status="failed", error=f"cannot read {space.data_dir}/uploads/x.jsonl")
    outputs = space.fns["refresh"](str(alice_run.id), {}, ALICE, oauth(ALICE_OAUTH))
    shown = " ".join(str(o) for o in outputs[:-1])  # the last: the tab's gr.State, kept on the server
    assert "loading <data dir>/runs/alice-run/adapter" in shown and "~/.cache/phi3-studio" in shown
    assert "cannot read \\<data dir\\>/uploads/x.jsonl" in shown  # escaped Markdown: shows as written
    assert str(space.data_dir) not in shown and home + "/" not in shown


def test_downloads_do_not_pile_up_a_temporary_folder_per_click(space, tmp_path, monkeypatch):
    import tempfile

    import trainer.ui.context

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    alice_run = space.run_of("alice")
    first = Path(space.fns["download"](str(alice_run.id), ALICE)["value"])
    assert first.is_file() and tmp_path / "phi3-studio-downloads" in first.parents
    monkeypatch.setattr(trainer.ui.context, "DOWNLOADS_KEPT_S", -1)  # as if an hour had passed
    second = Path(space.fns["download"](str(alice_run.id), ALICE)["value"])
    assert second.is_file() and not first.exists()
    assert len(list((tmp_path / "phi3-studio-downloads").iterdir())) == 1  # one per click, removed when old


@pytest.mark.parametrize(
    ("prompt", "max_new", "system", "refused"),
    [
        ("p" * 30_000_000, 16, "", "at most 20,000 characters"),
        ("Hi", 16, "s" * 20_001, "at most 20,000 characters"),
        ("Hi", 10**9, "", "from 1 to 2,048"),
        ("Hi", float("inf"), "", "from 1 to 2,048"),
        ("Hi", 0, "", "from 1 to 2,048"),
    ],
)
def test_compare_refuses_an_oversized_request_before_loading_anything(
    space, monkeypatch, prompt, max_new, system, refused
):
    from trainer.chat import ChatEngine

    loads = []
    monkeypatch.setattr(ChatEngine, "from_source", staticmethod(lambda *a, **k: loads.append(a)))
    with pytest.warns(UserWarning, match=refused):
        list(
            space.fns["send"](
                prompt,
                [],
                [],
                None,
                "alice/pirate-adapter",
                max_new,
                0.7,
                0.9,
                True,
                system,
                ALICE,
                oauth(ALICE_OAUTH),
            )
        )
    assert loads == []  # no model loaded, no GPU spent
