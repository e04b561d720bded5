"""Run on Hugging Face Jobs from the Train tab of a Space: the choice lists flavours with their price, the run goes
to the signed-in user's namespace with their own token (never the Space's), and a ZeroGPU Space sends background
training to Jobs instead, saying why."""

from __future__ import annotations

import pytest

from .conftest import Space, oauth, profile, simulate_space

ALICE_OAUTH = "hf_oauthALICE_jobs"


class RecordingJobs:
    """The Jobs backend's interface, recording what the app asked for (nothing leaves this machine)."""

    def __init__(self):
        self.started: list[tuple] = []

    def flavors(self, token):
        from trainer.runs.remote import Flavor

        assert token is False  # the public hardware list is read without any token, the Space's included
        return [
            Flavor("a10g-large", "1x Nvidia A10G", "1x A10G", 1.5),
            Flavor("h200", "1x Nvidia H200", "1x H200", 5.0),
        ]

    def start(self, config, namespace, token, flavor, timeout_s):
        self.started.append((namespace, token, flavor))
        return "job-1"

    def status(self, job_id, namespace, token):
        return "running", ""

    def logs(self, job_id, namespace, token):
        return []


@pytest.fixture
def jobs_space(tmp_path, monkeypatch):
    import trainer.runs.remote
    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService
    from trainer.ui import build_studio

    simulate_space(monkeypatch)
    monkeypatch.setenv("PHI3_STUDIO_DATA_DIR", str(tmp_path))
    recording = RecordingJobs()
    monkeypatch.setattr(trainer.runs.remote, "HfJobsBackend", lambda *a, **k: recording)
    manager = RunQueue(JobStore(tmp_path / "jobs.sqlite"), python="/bin/false")
    manager.poll_s = 60.0
    return Space(build_studio(RunService(manager), on_gpu=False), manager, tmp_path), recording


def _start(space: Space, choice: str, who=None, token=None):
    values = space.form()
    values[space.components["run-on"]] = choice
    return space.fns["start"](values, who, token)


def test_a_signed_in_user_runs_on_jobs_with_their_own_token_at_a_shown_price(jobs_space):
    space, recording = jobs_space
    choices = [value for _, value in space.components["run-on"].choices]
    assert choices == [
        "this machine",
        "Hugging Face Jobs, a10g-large: 1x Nvidia A10G, $1.50/h",
        "Hugging Face Jobs, h200: 1x Nvidia H200, $5.00/h",
    ]
    outputs = _start(space, choices[2], profile("alice"), oauth(ALICE_OAUTH))
    assert outputs[0] == ""  # no problem: started
    assert recording.started == [("alice", ALICE_OAUTH, "h200")]  # the user's namespace and token, never the Space's
    (job,) = space.manager.store.list()
    assert (job.owner, job.backend, job.status) == ("alice", "hf-jobs", "running")


def test_a_visitor_starts_nothing_and_zerogpu_sends_training_to_jobs(jobs_space, monkeypatch):
    space, recording = jobs_space
    choices = [value for _, value in space.components["run-on"].choices]
    assert "Sign in" in _start(space, choices[1])[0] and recording.started == []
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    refused = _start(space, "this machine", profile("alice"), oauth(ALICE_OAUTH))[0]
    assert "ZeroGPU Space" in refused and "Hugging Face Jobs" in refused and recording.started == []
    assert space.manager.store.list() == []


def test_a_job_cannot_continue_from_a_run_folder_on_the_server(jobs_space):
    from .conftest import finished_run

    space, recording = jobs_space
    parent = finished_run(space.manager.store, space.data_dir, "alice", "alice-run")
    values = space.form(adapter_name_or_path=f"run #{parent.id}")
    values[space.components["run-on"]] = [v for _, v in space.components["run-on"].choices][1]
    problem = space.fns["start"](values, profile("alice"), oauth(ALICE_OAUTH))[0]
    assert "a Hugging Face Job cannot read a run folder on this server" in problem and recording.started == []
