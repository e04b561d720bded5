"""A run on every GPU of the machine: the worker's argv, Cancel and the hard kill of processes torchrun started in
sessions of their own, the exit code that counts, and failure causes read through torchrun's report.

The launcher here is a stand-in for torchrun (a script that starts one child in a new session and exits 1 when it
fails, as torchrun does), so the tests take a second; the real torchrun runs in tests/integration/test_worker.py.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainer import distributed as dist
from trainer.config import load_config, save_yaml
from trainer.runs import folder as rf
from trainer.runs import processes
from trainer.runs.processes import failure_cause, pid_alive, training_pids, worker_argv
from trainer.runs.queue import JobStore, RunQueue

FAKE_TORCHRUN = textwrap.dedent(
    """
    import signal, subprocess, sys
    args = sys.argv[1:]
    assert args[:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], args
    run_dir = args[args.index("--run-dir") + 1]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(99))  # were the launcher told to stop, it would exit 99
    child_script = sys.argv[0].replace("torchrun", "child")
    child = subprocess.Popen([sys.executable, child_script, run_dir], start_new_session=True)
    sys.exit(0 if child.wait() == 0 else 1)
    """
)

FAKE_CHILD = textwrap.dedent(
    """
    import json, os, pathlib, signal, sys, time
    import psutil
    run_dir = pathlib.Path(sys.argv[1])
    what = (run_dir / "config.yaml").read_text()
    stop = []
    signal.signal(signal.SIGTERM, signal.SIG_IGN if "ignore-term" in what else lambda *a: stop.append(1))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # as trainer.runs.processes.on_term does
    start = psutil.Process().create_time()
    status = json.loads((run_dir / "status.json").read_text())
    status["worker_pids"] = [[os.getpid(), start]]
    (run_dir / "status.json").write_text(json.dumps(status))
    end = time.time() + 30
    while not stop and time.time() < end:
        time.sleep(0.05)
    (run_dir / "exit.json").write_text(json.dumps({"code": 3}))
    sys.exit(3)
    """
)


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    (tmp_path / "fake_torchrun.py").write_text(FAKE_TORCHRUN)
    (tmp_path / "fake_child.py").write_text(FAKE_CHILD)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_torchrun.py"} "$@"\n')
    python.chmod(0o755)
    return RunQueue(JobStore(tmp_path / "jobs.sqlite"), python=str(python), grace_s=1.0, gpu_count=lambda: 2)


def _wait(until, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if found := until():
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_run_set_to_all_gpus_gets_one_process_per_gpu_under_torchrun(tmp_path):
    assert [dist.worker_processes("all", n) for n in (0, 1, 4)] == [1, 1, 4]
    assert dist.worker_processes("one", 4) == 1
    run = tmp_path / "run"
    assert worker_argv("py", run, resume=True, processes=4) == [
        *["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4"],
        *["-m", "trainer", "train", "--config", str(run / "config.yaml"), "--run-dir", str(run), "--resume"],
    ]
    assert worker_argv("py", run, processes=1)[:4] == ["py", "-m", "trainer", "train"]  # one GPU: no launcher

    manager = RunQueue(JobStore(tmp_path / "jobs.sqlite"), gpu_count=lambda: 2)
    for gpus, count in (("all", 2), ("one", 1)):
        save_yaml(load_config(preset="tiny-demo", overrides=[f"run.gpus={gpus}"]), run / rf.CONFIG_FILE)
        assert manager._processes(run) == count
    with pytest.raises(ValueError, match="run.gpus"):
        load_config(preset="tiny-demo", overrides=["run.gpus=2"])  # all or one

    save_yaml(load_config(preset="tiny-demo"), run / rf.CONFIG_FILE)  # all GPUs
    rf.write_status(run, "cancelled", world_size=1)  # its checkpoint was saved by one process
    assert manager._processes(run, resume=True) == 1 and manager._processes(run) == 2
    rf.write_status(run, "cancelled", world_size=4)  # saved on four GPUs, two here now: what there is
    assert manager._processes(run, resume=True) == 2


def test_the_queue_reads_a_run_s_gpus_from_its_status_not_its_config_again(tmp_path, monkeypatch):
    """submit records `run.gpus` in status.json with the folder; starting the worker reads it there (issue 29: the
    config.yaml that submit has just written is not parsed and validated again)."""
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    manager = RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false", gpu_count=lambda: 2)
    monkeypatch.setattr(manager, "schedule", lambda: None)  # queued only: no worker starts
    job = manager.submit(load_config(preset="tiny-demo", overrides=["run.gpus=one"]))
    run = Path(job.run_dir)
    assert rf.read_json(run / rf.STATUS_FILE)["gpus"] == "one"
    (run / rf.CONFIG_FILE).write_text("run: {gpus: all}\n")  # what the YAML says is not read again
    assert manager._processes(run) == 1


def test_cancel_stops_the_training_processes_not_the_launcher_and_their_exit_code_counts(manager):
    job = manager.submit(load_config(preset="tiny-demo"))
    run_dir = Path(job.run_dir)
    _wait(lambda: training_pids(run_dir))
    assert training_pids(run_dir) != [manager.store.get(job.id).pid]  # the child, in a session of its own
    manager.cancel(job.id)
    done = _wait(lambda: (j := manager.store.get(job.id)).finished and j)
    assert done.status == "cancelled" and done.exit_code == 3  # the main process's code, not the launcher's 1 or 99


def test_the_hard_kill_reaches_a_training_process_in_its_own_session(manager):
    job = manager.submit(load_config(preset="tiny-demo", overrides=["run.name=ignore-term"]))
    run_dir = Path(job.run_dir)
    child = _wait(lambda: training_pids(run_dir))[0]
    manager.cancel(job.id)  # the child ignores SIGTERM: after the grace period both are killed
    _wait(lambda: not pid_alive(child), timeout=10)
    assert _wait(lambda: manager.store.get(job.id).finished)


TORCHRUN_LOG = """\
step 3/400  loss 4.5372  lr 1.20e-03  948 tok/s  ETA 206 s
[rank0]: Traceback (most recent call last):
[rank0]:   File "/work/main/trainer/training.py", line 296, in _train
[rank0]:     dist.check_same_adapter(trainer)
[rank0]: RuntimeError: the 2 training processes ended with different adapters: e4e7017b, 7b29ba3b
E1130 10:03:38.049000 25538 site-packages/torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 1) \
local_rank: 0 (pid: 25558) of binary: /usr/bin/python
Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/torch/distributed/launcher/api.py", line 383, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
trainer FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 25558)
============================================================
"""


def test_a_failure_cause_is_read_from_the_training_process_not_from_torchruns_report():
    assert failure_cause(TORCHRUN_LOG, 1) == (
        "RuntimeError: the 2 training processes ended with different adapters: e4e7017b, 7b29ba3b"
    )
    bad_input = "error: data.dataset_name: no such file.\n" + TORCHRUN_LOG.split("[rank0]: Traceback")[1]
    assert failure_cause(bad_input, 1) == "data.dataset_name: no such file."


def test_only_live_training_processes_are_signalled(tmp_path):
    me = [os.getpid(), processes.process_start(os.getpid())]
    rf.write_status(tmp_path, "running", worker_pids=[me, [os.getpid(), me[1] + 1], [2**22 + 7, 1]])
    assert training_pids(tmp_path) == [os.getpid()]  # a reused pid (another start time) and a gone one are left out


def test_processes_that_end_with_different_adapters_stop_the_run_before_it_is_saved(monkeypatch):
    class Trainer:  # what check_same_adapter reads of a Trainer
        is_fsdp_enabled = False
        model = None

    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "fingerprint", lambda model: "same")
    monkeypatch.setattr(dist, "gather", lambda value: [value, value])
    dist.check_same_adapter(Trainer())  # equal: nothing to say
    monkeypatch.setattr(dist, "gather", lambda value: [value, "other"])
    with pytest.raises(RuntimeError, match="2 training processes ended with different adapters: same, other"):
        dist.check_same_adapter(Trainer())


def test_qlora_is_refused_under_the_fsdp_config_before_anything_loads(monkeypatch):
    from trainer.modeling import environment_problems

    qlora = load_config(preset="tiny-demo", overrides=["load_in_4bit=true"]).model
    assert not [p for p in environment_problems(qlora) if "FSDP" in p]
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    (problem,) = [p for p in environment_problems(qlora) if "FSDP" in p]
    assert problem.startswith("model.load_in_4bit: QLoRA does not train under the FSDP config")
    assert "set model.load_in_4bit to `False`" in problem
    assert not environment_problems(load_config(preset="tiny-demo").model)  # LoRA shards


def test_a_job_on_a_flavour_with_several_gpus_trains_on_all_of_them(monkeypatch):
    from types import SimpleNamespace

    from trainer.runs import remote as hfjobs

    class Api:  # the two HfApi calls `start` makes
        started: list[dict] = []

        def list_jobs_hardware(self, token):
            gpu = SimpleNamespace(quantity=4, model="L40S")
            return [SimpleNamespace(name="l40sx4", pretty_name="4x L40S", accelerator=gpu, unit_cost_usd=0.14,
                                    unit_label="minute")]  # fmt: skip

        def run_job(self, **spec):
            self.started.append(spec)
            return SimpleNamespace(id="job-1")

    monkeypatch.setenv(hfjobs.IMAGE_ENV, "hf.co/spaces/alice/studio")
    backend = hfjobs.HfJobsBackend.__new__(hfjobs.HfJobsBackend)
    backend.api = Api()
    for gpus, launch in (("all", "python -m torch.distributed.run --standalone --nproc_per_node 4 -m trainer"),
                         ("one", "python -m trainer")):  # fmt: skip
        config = load_config(preset="tiny-demo", overrides=[f"run.gpus={gpus}"])
        assert backend.start(config, "alice", "hf_alice", "l40sx4", 3600) == "job-1"
        assert f"&& exec {launch} train --config" in Api.started[-1]["command"][2]
    assert hfjobs.job_command(1) == hfjobs.JOB_COMMAND


def test_a_stop_seen_by_another_process_ends_this_one_too(monkeypatch):
    """After the loop every process asks all of them (a Cancel after the last step's vote may reach only some)."""
    from trainer import callbacks

    callbacks.arm(None)  # no stop here
    events: list[dict] = []
    callbacks.raise_if_stopped(7, events.append)  # one process: nothing to stop
    monkeypatch.setattr(dist, "any_rank", lambda *flags: (True, True))  # another process hit the time limit
    with pytest.raises(callbacks.RunTimeLimit, match="at step 7"):
        callbacks.raise_if_stopped(7, events.append)
    assert events == [{"step": 7, "message": "the training time limit was reached at step 7; checkpoint saved, "
                       "the run can be resumed"}]  # fmt: skip


def test_a_worker_inherits_no_secret_of_the_servers():
    from trainer.runs.processes import worker_environment

    server = {
        "PATH": "/usr/bin",
        "HF_HOME": "/data/.hf",
        "HF_TOKEN": "hf_space",
        "HUGGING_FACE_HUB_TOKEN": "hf_space",
        "OAUTH_CLIENT_SECRET": "signs-cookies",
        "OAUTH_CLIENT_ID": "id",
        "WANDB_API_KEY": "k",
        "MY_DB_PASSWORD": "p",
        "PHI3_STUDIO_MAX_RUN_MINUTES": "30",
        "HF_TOKEN_PATH": "/data/token-file",
    }
    assert worker_environment(server) == {
        "PATH": "/usr/bin",
        "HF_HOME": "/data/.hf",
        "PHI3_STUDIO_MAX_RUN_MINUTES": "30",
        "HF_TOKEN_PATH": "/data/token-file",
    }
