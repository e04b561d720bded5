"""The job store and queue: state transitions, one job at a time, cancel, recovery after a restart, failure causes.

Workers here are a stand-in script (not the trainer) so the tests take seconds: it reads what to do from the run's
config.yaml (data.system_prompt = "sleep:S", "exit:N" or "crash") and handles SIGTERM like the real worker.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from trainer.config import load_config
from trainer.errors import EXIT_CANCELLED
from trainer.runs import folder as rf
from trainer.runs import processes
from trainer.runs.processes import failure_cause, pid_alive
from trainer.runs.queue import JobStore, RunQueue
from trainer.runs.state import FINISHED

FAKE_WORKER = textwrap.dedent(
    """
    import os, signal, sys, time, pathlib, yaml
    args = sys.argv
    run_dir = pathlib.Path(args[args.index("--run-dir") + 1])
    what = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["system_prompt"]
    (run_dir / "worker.txt").write_text(f"token={os.environ.get('HF_TOKEN', '')} resume={'--resume' in args}")
    print("worker started", flush=True)
    stop = []
    time.sleep(float(os.environ.get("FAKE_START_S", "0")))  # the real worker imports torch before its handler
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # as trainer.runs.processes.on_term does
    kind, _, arg = what.partition(":")
    if kind == "sleep":
        end = time.time() + float(arg)
        while time.time() < end:
            if stop:
                (run_dir / "checkpoints" / "checkpoint-1").mkdir(parents=True)
                print("cancelled", flush=True)
                sys.exit(3)
            time.sleep(0.05)
    elif kind == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(float(arg))
    elif kind == "exit":
        print("error: data.dataset_name: no such file. Check the path.", flush=True)
        sys.exit(int(arg))
    elif kind == "crash":
        raise RuntimeError("boom")
    elif kind == "push-fails":
        print("error: trained, push failed: Hub unreachable. Retry: python -m trainer push RUN", flush=True)
        sys.exit(4)
    """
)


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    launcher = tmp_path / "python"
    launcher.write_text(f'#!/bin/sh\nshift 3\nexec {sys.executable} {script} "$@"\n')  # drop "-m trainer train"
    launcher.chmod(0o755)
    return RunQueue(JobStore(tmp_path / "jobs.sqlite"), python=str(launcher), grace_s=1.0)


def _config(what: str):
    return load_config(preset="tiny-demo", overrides=[f"system_prompt={what}"])


def _wait(manager, job_id, states=FINISHED, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        job = manager.store.get(job_id)
        if job.status in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck in {manager.store.get(job_id).status}")


def test_a_job_runs_to_success(manager):
    job = manager.submit(_config("sleep:0.2"), owner="alice")
    assert job.status == "running" and job.pid and job.started_at
    done = _wait(manager, job.id)
    assert (done.status, done.exit_code, done.error) == ("succeeded", 0, None)
    assert done.finished_at >= done.started_at
    assert (Path(done.run_dir) / "config.yaml").exists()
    assert "worker started" in (Path(done.run_dir) / rf.LOG_FILE).read_text()  # stdout goes to log.txt


def test_one_job_at_a_time_and_queue_positions(manager):
    first = manager.submit(_config("sleep:1.5"))
    second = manager.submit(_config("sleep:0.1"))
    third = manager.submit(_config("sleep:0.1"))
    assert manager.store.get(first.id).status == "running"
    assert (second.status, third.status) == ("queued", "queued")
    assert (manager.store.queue_position(second.id), manager.store.queue_position(third.id)) == (1, 2)
    _wait(manager, first.id)
    assert _wait(manager, second.id).started_at >= manager.store.get(first.id).finished_at
    assert _wait(manager, third.id).started_at >= manager.store.get(second.id).finished_at
    assert all(manager.store.get(j.id).status == "succeeded" for j in (first, second, third))


def test_cancel_a_running_job_stops_it_cleanly(manager):
    job = manager.submit(_config("sleep:30"))
    time.sleep(0.5)
    manager.cancel(job.id)
    done = _wait(manager, job.id)
    assert (done.status, done.exit_code) == ("cancelled", EXIT_CANCELLED)
    assert not pid_alive(job.pid)
    assert done.resumable  # the worker saved a checkpoint on SIGTERM
    lingering = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.daemon]
    assert lingering == []  # the SIGKILL timer of the cancel must not keep the server (or pytest) alive


def test_a_cancel_while_the_worker_starts_is_handled_like_any_other(manager, monkeypatch):
    """A Cancel that lands before the worker's SIGTERM handler is installed waits for it
    (trainer.runs.processes.term_held): the worker still saves its checkpoint and exits 3, never killed by the
    signal's default action (-15)."""
    monkeypatch.setenv("FAKE_START_S", "0.5")  # under the grace period (1 s) before SIGKILL
    job = manager.submit(_config("sleep:30"))
    while manager.store.get(job.id).pid is None:
        time.sleep(0.01)
    manager.cancel(job.id)  # while the worker is still "importing"
    done = _wait(manager, job.id)
    assert (done.status, done.exit_code) == ("cancelled", EXIT_CANCELLED) and done.resumable


def test_cancel_kills_a_worker_that_ignores_sigterm(manager):
    job = manager.submit(_config("ignore-term:60"))
    time.sleep(0.5)
    manager.cancel(job.id)
    done = _wait(manager, job.id, timeout=10)
    assert done.status == "cancelled" and done.exit_code == -signal.SIGKILL


def test_cancel_a_queued_job_and_the_queue_moves_on(manager):
    running = manager.submit(_config("sleep:0.5"))
    queued = manager.submit(_config("sleep:0.1"))
    after = manager.submit(_config("sleep:0.1"))
    assert manager.cancel(queued.id).status == "cancelled"
    assert _wait(manager, after.id).status == "succeeded"
    assert manager.store.get(queued.id).started_at is None and manager.store.get(running.id).status == "succeeded"


def test_failed_job_records_exit_code_and_cause(manager):
    bad = _wait(manager, manager.submit(_config("exit:2")).id)
    assert (bad.status, bad.exit_code) == ("failed", 2)
    assert bad.error == "data.dataset_name: no such file. Check the path."
    crash = _wait(manager, manager.submit(_config("crash")).id)
    assert crash.status == "failed" and crash.error == "RuntimeError: boom"
    assert rf.read_json(Path(crash.run_dir) / rf.STATUS_FILE)["state"] == "failed"


def test_trained_but_push_failed_is_its_own_state(manager):
    job = _wait(manager, manager.submit(_config("push-fails")).id)
    assert (job.status, job.exit_code) == ("push_failed", 4) and job.finished
    assert job.error.startswith("trained, push failed: Hub unreachable.")
    assert not job.resumable  # nothing to resume: the adapter is saved; Retry push publishes it


def test_recovery_after_a_restart_marks_dead_workers_interrupted(manager, tmp_path):
    store = manager.store
    with_ckpt = store.create(tmp_path / "runs" / "a", name="a")
    without = store.create(tmp_path / "runs" / "b", name="b")
    (tmp_path / "runs" / "a" / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for job in (with_ckpt, without):
        store.update(job.id, status="running", pid=dead.pid, started_at=time.time())
    RunQueue(store, python=manager.python).recover()  # a new server process
    a, b = store.get(with_ckpt.id), store.get(without.id)
    assert a.status == b.status == "interrupted"
    assert a.resumable and "resume it from its last checkpoint" in a.error
    assert not b.resumable and "start it again" in b.error


def test_recovery_keeps_watching_a_live_worker(manager, tmp_path):
    store = manager.store
    job = store.create(tmp_path / "runs" / "live", name="live")
    (tmp_path / "runs" / "live").mkdir(parents=True)
    rf.write_status(tmp_path / "runs" / "live", "succeeded")
    sleeper = subprocess.Popen(["sleep", "1"], start_new_session=True)
    store.update(job.id, status="running", pid=sleeper.pid, started_at=time.time())
    restarted = RunQueue(store, python=manager.python)
    restarted.recover()
    assert store.get(job.id).status == "running"  # not marked failed: its worker is alive
    sleeper.wait()
    assert _wait(restarted, job.id).status == "succeeded"


def test_resume_requeues_with_the_resume_flag(manager):
    job = manager.submit(_config("sleep:30"))
    time.sleep(0.5)
    manager.cancel(job.id)
    _wait(manager, job.id)
    first_start = manager.store.get(job.id).started_at
    resumed = manager.resume(job.id, token="hf_secret_token")
    assert resumed.status == "running" and resumed.resume
    assert resumed.started_at == first_start  # the run's "started" time is when it first started
    marker = Path(job.run_dir) / "worker.txt"
    end = time.time() + 10
    while "resume=True" not in marker.read_text() and time.time() < end:
        time.sleep(0.05)
    assert marker.read_text() == "token=hf_secret_token resume=True"
    manager.cancel(job.id)
    assert _wait(manager, job.id).status == "cancelled"


def test_token_reaches_the_worker_environment_only(manager, tmp_path):
    job = _wait(manager, manager.submit(_config("sleep:0.1"), token="hf_secret_token").id)
    assert (Path(job.run_dir) / "worker.txt").read_text().startswith("token=hf_secret_token")
    dump = "\n".join(sqlite3.connect(tmp_path / "jobs.sqlite").iterdump())
    assert "hf_secret_token" not in dump
    assert "hf_secret_token" not in (Path(job.run_dir) / "config.yaml").read_text()


def test_delete_removes_a_finished_run_only(manager):
    running = manager.submit(_config("sleep:30"))
    with pytest.raises(ValueError, match="cancel it before deleting"):
        manager.delete(running.id)
    manager.cancel(running.id)
    _wait(manager, running.id)
    manager.delete(running.id)
    assert manager.store.get(running.id) is None and not Path(running.run_dir).exists()


def test_owners_see_only_their_runs(manager):
    manager.submit(_config("sleep:0.1"), owner="alice")
    manager.submit(_config("sleep:0.1"), owner="bob")
    assert [j.owner for j in manager.store.list(owner="alice")] == ["alice"]
    assert len(manager.store.list()) == 2  # not signed in (local): everything


def test_store_rejects_unknown_states_and_fields(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create(tmp_path / "r", name="r")
    with pytest.raises(ValueError, match="unknown job status"):
        store.update(job.id, status="exploded")
    with pytest.raises(KeyError):
        store.update(job.id, token="x")


@pytest.mark.parametrize(
    ("log", "code", "expected"),
    [
        ("...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate", 1, "CUDA out of memory: lower the"),
        ("error: data.dataset_name: 'x' not found. Check the ID.", 2, "data.dataset_name: 'x' not found."),
        ("Traceback (most recent call last):\n  File x\nValueError: bad", 1, "ValueError: bad"),
        ("", -9, "the worker was killed"),
        ("all fine", 7, "the worker exited with code 7"),
    ],
)
def test_failure_cause(log, code, expected):
    assert failure_cause(log, code).startswith(expected)


def test_pid_alive():
    assert pid_alive(os.getpid())
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not pid_alive(proc.pid)


def test_a_reused_pid_or_a_thread_id_is_not_the_worker():
    """Cancel signals a pid only while it is still the worker: never a later process, nor some process's thread."""
    me = os.getpid()
    assert pid_alive(me, processes.process_start(me))
    assert not pid_alive(me, processes.process_start(me) + 1)  # same number, another start time: a reused pid
    ready, done = threading.Event(), threading.Event()
    tids = []
    worker = threading.Thread(target=lambda: (tids.append(threading.get_native_id()), ready.set(), done.wait(5)))
    worker.start()
    ready.wait(5)
    try:
        os.kill(tids[0], 0)  # the kernel answers for a thread id as for a process ...
        assert not pid_alive(tids[0])  # ... but it is this test's thread, not a worker
    finally:
        done.set()
        worker.join()
    assert not pid_alive(True) and not pid_alive(1) and not pid_alive(0)


def test_a_cli_run_whose_pid_now_names_another_process_is_interrupted_and_never_signalled(manager, tmp_path):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        start = processes.process_start(bystander.pid)
        _cli_run(tmp_path / "runs", "old", state="running", pid=bystander.pid, pid_start=start - 1)
        (job,) = manager.adopt_runs()
        assert job.status == "interrupted" and job.pid is None
        manager.store.update(job.id, status="running", pid=bystander.pid)  # as if the table still said so
        manager.cancel(job.id)
        time.sleep(0.3)
        assert bystander.poll() is None  # the process that reused the number was left alone
    finally:
        bystander.kill()


def test_two_servers_racing_for_the_queue_start_one_job(tmp_path):
    """Two processes (say, a restarted server and the old one) claim at the same moment: only one job runs."""
    store = JobStore(tmp_path / "jobs.sqlite")
    for i in range(4):
        store.create(tmp_path / f"run-{i}", name=f"run {i}")
    racer = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from trainer.runs.queue import JobStore
        store = JobStore({str(tmp_path / "jobs.sqlite")!r})
        while time.time() < {time.time() + 1.5}:
            pass  # start together
        claimed = [job.id for job in (store.claim_next() for _ in range(50)) if job is not None]
        print(claimed)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", racer], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    claimed = [eval(p.communicate(timeout=60)[0]) for p in procs]  # noqa: S307 - our own printed list
    assert sorted(claimed[0] + claimed[1]) == [1]  # one claim in all: the oldest job, once
    assert [job.status for job in reversed(store.list())] == ["running", "queued", "queued", "queued"]


def _cli_run(runs: Path, folder: str, **status) -> Path:
    """A run folder as `python -m trainer train` leaves it (config.yaml, status.json), no job-table row."""
    run_dir = runs / folder
    run_dir.mkdir(parents=True)
    (run_dir / rf.CONFIG_FILE).write_text("model: {}\n")
    if status:
        rf.write_status(run_dir, status.pop("state"), **status)
    return run_dir


def test_runs_started_with_the_cli_are_listed_with_their_state(manager, tmp_path):
    runs = tmp_path / "runs"
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        _cli_run(runs, "done", state="succeeded", name="tiny-demo: pirate_chat", started_at=1.0, finished_at=2.0)
        _cli_run(runs, "training", state="running", name="mine", pid=live.pid, started_at=3.0)
        _cli_run(runs, "killed", state="running", name="gone", pid=dead.pid)
        _cli_run(runs, "being-made")  # no status.json yet
        _cli_run(runs, "web-queued", state="queued")  # a web job between its folder and its row
        added = {Path(j.run_dir).name: j for j in manager.adopt_runs()}
        assert set(added) == {"done", "training", "killed"}
        assert (added["done"].status, added["done"].name, added["done"].owner) == (
            "succeeded",
            "tiny-demo: pirate_chat",
            None,
        )
        assert (added["done"].started_at, added["done"].finished_at) == (1.0, 2.0)
        assert (added["training"].status, added["training"].pid) == ("running", live.pid)
        assert added["killed"].status == "interrupted" and added["killed"].pid is None
        assert manager.adopt_runs() == []  # each folder is listed once
        rf.write_status(runs / "being-made", "running", pid=dead.pid)  # its status arrives later: listed then
        assert [Path(j.run_dir).name for j in manager.adopt_runs()] == ["being-made"]
        live.terminate()
        rf.write_status(runs / "training", "cancelled")
        assert _wait(manager, added["training"].id).status == "cancelled"  # watched until the CLI run ends
    finally:
        live.kill()


def test_a_run_folder_of_malformed_json_is_skipped_and_the_rest_listed(manager, tmp_path):
    runs = tmp_path / "runs"
    for folder, text in (("a-list", "[1]"), ("a-string", '"succeeded"'), ("a-number", "7")):
        (_cli_run(runs, folder) / rf.STATUS_FILE).write_text(text)
    _cli_run(runs, "good", state="succeeded", name="good run")
    assert [Path(j.run_dir).name for j in manager.adopt_runs()] == ["good"]  # no AttributeError: the app starts


def test_listing_cli_runs_looks_inside_only_when_the_runs_folder_changed(manager, tmp_path, monkeypatch):
    _cli_run(tmp_path / "runs", "one", state="succeeded")
    assert len(manager.adopt_runs()) == 1
    looked = []
    monkeypatch.setattr(manager.store, "adopt_runs", lambda *a, **k: looked.append(1) or ([], 0))
    manager.adopt_runs()
    assert looked == []  # nothing new in runs/: not even a glob
    _cli_run(tmp_path / "runs", "two", state="succeeded")
    manager.adopt_runs()
    assert looked == [1]


def test_cancel_stops_a_cli_run_that_leads_no_process_group(manager, tmp_path):
    child = subprocess.Popen(["sleep", "30"])  # in the test's process group, like a CLI run started by a shell
    try:
        assert os.getpgid(child.pid) != child.pid
        run_dir = _cli_run(tmp_path / "runs", "cli", state="running", pid=child.pid)
        (job,) = manager.adopt_runs()
        manager.cancel(job.id)
        assert child.wait(timeout=10) == -signal.SIGTERM  # the run itself, not its group (that is ours)
        assert _wait(manager, job.id).status == "cancelled"
        assert run_dir.is_dir()
    finally:
        child.kill()


def test_folders_still_being_made_are_looked_at_again_and_stale_ones_settled(manager, tmp_path):
    runs = tmp_path / "runs"
    (runs / "making").mkdir(parents=True)  # no config.yaml yet: a run being created
    old_queued = _cli_run(runs, "old-queued", state="queued")  # a web job whose row was never written
    (runs / "not-a-run").mkdir()
    for folder in (old_queued, runs / "not-a-run"):
        os.utime(folder, (time.time() - 3600, time.time() - 3600))
    added = {Path(j.run_dir).name: j.status for j in manager.adopt_runs()}
    assert added == {"old-queued": "interrupted"}  # settled, not left queued without a row
    assert manager._runs_seen is None  # "making" is young: the next refresh looks again
    (runs / "making" / rf.CONFIG_FILE).write_text("model: {}\n")
    rf.write_status(runs / "making", "succeeded")
    assert [Path(j.run_dir).name for j in manager.adopt_runs()] == ["making"]
    assert manager._runs_seen is not None  # everything listed: the folder is not read again until it changes


# --------------------------------------------------------------------------- where a run trains: Hugging Face Jobs


class FakeJobs:
    """A Hugging Face Jobs backend with the seam's interface (start, status, logs, cancel), driven by the test."""

    def __init__(self, refuse: str | None = None):
        self.started: list[tuple] = []
        self.cancelled: list[str] = []
        self.stage, self.lines, self.refuse = "running", [], refuse
        self.polled = 0  # status asked

    def start(self, config, namespace, token, flavor, timeout_s):
        from trainer.runs.remote import JobsError

        if self.refuse:
            raise JobsError(self.refuse)
        self.started.append((config.run.name, namespace, token, flavor, timeout_s))
        return "job-1"

    def status(self, job_id, namespace, token):
        assert (job_id, namespace, token) == ("job-1", "alice", "hf_alice")  # always the owner's own namespace
        self.polled += 1
        return self.stage, ("Job failed with exit code: 2" if self.stage == "failed" else "")

    def logs(self, job_id, namespace, token):
        return list(self.lines)

    def cancel(self, job_id, namespace, token):
        self.cancelled.append(job_id)
        self.stage = "cancelled"


@pytest.fixture
def remote(manager):
    manager.remote, manager.poll_s = FakeJobs(), 0.05
    return manager.remote


def test_a_run_on_hf_jobs_is_followed_into_its_run_folder_and_leaves_the_local_queue_free(manager, remote):
    job = manager.submit(_config("sleep:30"), owner="alice", token="hf_alice", flavor="a10g-large")
    assert (job.status, job.backend) == ("running", "hf-jobs") and remote.started[0][1:4] == (
        "alice",
        "hf_alice",
        "a10g-large",
    )
    local = manager.submit(_config("sleep:0.1"), owner="alice", token="hf_alice")
    assert manager.store.get(local.id).status == "running"  # a Hugging Face Job uses none of this machine's GPU
    remote.lines = ["===== Job started =====", 'STUDIO_EVENT {"step": 1, "loss": 2.5}', "step 1/3 loss 2.5000"]
    run_dir = Path(job.run_dir)
    end = time.time() + 10
    while not rf.read_events(run_dir) and time.time() < end:
        time.sleep(0.05)
    assert rf.read_events(run_dir) == [{"step": 1, "loss": 2.5}]  # the loss curve, as for a local run
    assert "step 1/3 loss 2.5000" in (run_dir / rf.LOG_FILE).read_text()
    assert rf.read_json(run_dir / rf.STATUS_FILE)["phase"] == "training"
    remote.stage = "succeeded"
    assert _wait(manager, job.id).status == "succeeded"
    assert rf.read_json(run_dir / rf.STATUS_FILE)["state"] == "succeeded"
    _wait(manager, local.id)
    assert not any("hf_alice" in p.read_text(errors="ignore") for p in run_dir.rglob("*") if p.is_file())
    assert b"hf_alice" not in (Path(manager.store.path)).read_bytes()


def test_hf_jobs_cancel_failure_refusal_and_a_visitor(manager, remote):
    with pytest.raises(ValueError, match="paid by your account: sign in"):
        manager.submit(_config("sleep:1"), owner=None, token=None, flavor="h200")
    job = manager.submit(_config("sleep:1"), owner="alice", token="hf_alice", flavor="h200")
    manager.cancel(job.id)
    assert remote.cancelled == ["job-1"] and _wait(manager, job.id).status == "cancelled"
    remote.stage = "failed"
    failed = manager.submit(_config("sleep:1"), owner="alice", token="hf_alice", flavor="h200")
    assert _wait(manager, failed.id).error == "Job failed with exit code: 2"
    manager.remote = FakeJobs(refuse="Hugging Face Jobs: cannot start a job: the token was rejected.")
    refused = manager.submit(_config("sleep:1"), owner="alice", token="hf_bad", flavor="h200")
    assert (refused.status, refused.error) == (
        "failed",
        "Hugging Face Jobs: cannot start a job: the token was rejected.",
    )


def test_after_a_restart_the_owner_s_return_follows_their_job_again(manager, remote, monkeypatch):
    import trainer.runs.remote
    from trainer.runs.remote import JobsError

    job = manager.submit(_config("sleep:30"), owner="alice", token="hf_alice", flavor="a10g-large")
    restarted = RunQueue(manager.store, python=manager.python)  # a new server: no backend, no tokens yet
    restarted.poll_s = 0.05
    fresh = FakeJobs()  # the new server's own backend: only its follower asks it (the old server's asks `remote`)
    monkeypatch.setattr(trainer.runs.remote, "HfJobsBackend", lambda *a, **k: fresh)
    restarted.recover()
    assert restarted.store.get(job.id).status == "running"  # the job runs on at the Hub, not interrupted
    restarted.attach_token("alice", "hf_alice")  # the first thing the new server hears from alice
    deadline = time.time() + 10
    while not fresh.polled and time.time() < deadline:
        time.sleep(0.02)
    assert fresh.polled  # followed again, by a backend the follower made itself (nothing else has made one yet)
    with pytest.raises(ValueError, match="sign in again to cancel it"):  # another new server, before she returns
        RunQueue(manager.store, python=manager.python).cancel(job.id)
    fresh.cancel = lambda *a: (_ for _ in ()).throw(JobsError("Hugging Face Jobs: cannot cancel the job: x."))
    with pytest.raises(ValueError, match="cannot cancel the job"):  # a refusal the Runs tab shows as a warning
        restarted.cancel(job.id)
    fresh.stage = "succeeded"
    assert _wait(restarted, job.id).status == "succeeded"


def test_a_rebuilt_table_keeps_a_running_hugging_face_job_followed_and_cancellable(manager, remote, tmp_path):
    """The job table is lost while a Hugging Face Job runs: rebuilt from the run folders, it is a running remote job
    (not an interrupted local run that Cancel cannot reach), followed and cancellable again when its owner returns."""
    job = manager.submit(_config("sleep:30"), owner="alice", token="hf_alice", flavor="a10g-large")
    (tmp_path / "jobs.sqlite").rename(tmp_path / "jobs.sqlite.lost")
    rebuilt = RunQueue(JobStore(tmp_path / "jobs.sqlite"), python=manager.python)
    (adopted,) = rebuilt.adopt_runs()
    assert (adopted.status, adopted.backend, adopted.owner, adopted.run_dir) == (
        "running",
        "hf-jobs",
        "alice",
        job.run_dir,
    )
    time.sleep(0.5)  # no local pid watcher may take it for a worker that died (it has no pid here)
    assert rebuilt.store.get(adopted.id).status == "running"
    rebuilt.remote, rebuilt.poll_s = remote, 0.05
    rebuilt.attach_token("alice", "hf_alice")  # the owner comes back
    rebuilt.cancel(adopted.id)
    assert remote.cancelled == ["job-1"]  # the job on the Hub was cancelled, not left running
