"""The demo model is never built by a handler: Start's checks read its recipe, a run's worker builds it as a phase
of its own (with progress, cancellable), and two processes asking at once build it once.

The build itself is replaced by a fake that writes a model folder step by step (the real one takes a minute, and
tests/conftest.py's `tiny_model_path` covers it): what is tested is who builds, when, and what they report.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from pathlib import Path

import pytest

from trainer.runs import folder as rf
from trainer.tools import tiny


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A machine whose cache holds no demo model; `built` counts the builds started."""
    monkeypatch.setenv(tiny.CACHE_ENV, str(tmp_path / "cache"))
    built: list[Path] = []

    def fake_build(out_dir, warmup=True, on_progress=None):
        built.append(Path(out_dir))
        for done in range(0, 41, 10):
            if on_progress:
                on_progress(done, 40)
            time.sleep(0.01)
        (Path(out_dir) / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(tiny, "build_tiny_model", fake_build)
    return built


def test_the_checks_at_start_read_the_recipe_and_build_nothing(empty_cache, tmp_path):
    from trainer.config import preset_config
    from trainer.preflight import check_before_queueing

    cfg = preset_config("tiny-demo")
    assert check_before_queueing(cfg, on_gpu=False) == []
    assert empty_cache == [] and not tiny.tiny_model_built()  # nothing built, nothing waited for

    cfg.lora.target_modules = ["q_proj"]  # still checked against the tiny model's real layers
    problems = check_before_queueing(cfg, on_gpu=False)
    assert problems and problems[0].startswith("lora.target_modules: q_proj is not a linear layer of tiny-phi3")
    assert empty_cache == []


def test_a_build_reports_its_steps_and_caches_the_model(empty_cache):
    seen: list[tuple[int, int]] = []
    path = tiny.ensure_tiny_model(on_progress=lambda done, total: seen.append((done, total)))
    assert (path / "config.json").exists() and path == tiny.tiny_model_dir()
    assert seen == [(0, 40), (10, 40), (20, 40), (30, 40), (40, 40)]
    assert tiny.ensure_tiny_model() == path and len(empty_cache) == 1  # the second ask reuses it
    assert not list(path.parent.glob(".building-*")) and not list(path.parent.glob("*.progress"))


def test_a_second_asker_waits_for_the_first_build_and_sees_its_progress(empty_cache):
    target = tiny.tiny_model_dir()
    target.parent.mkdir(parents=True)
    (target.parent / f"{target.name}.progress").write_text(json.dumps([30, 40]))
    seen: list[tuple[int, int]] = []
    with open(target.parent / f"{target.name}.lock", "a") as lock:  # another process is building
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiter = threading.Thread(target=tiny.ensure_tiny_model, args=(lambda d, t: seen.append((d, t)),))
        waiter.start()
        time.sleep(0.8)
        assert seen and seen[0] == (30, 40) and waiter.is_alive()  # waits, told the builder's progress
        (target / "config.json").parent.mkdir()
        (target / "config.json").write_text("{}")  # the other process finished
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(5)
    assert not waiter.is_alive() and empty_cache == []  # it used the other build, it did not build again


def test_a_cancelled_build_leaves_nothing_half_built(empty_cache):
    def cancel_at_20(done: int, total: int) -> None:
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny.ensure_tiny_model(on_progress=cancel_at_20)
    root = tiny.tiny_model_dir().parent
    assert not tiny.tiny_model_built() and not list(root.glob(".building-*")) and not list(root.glob("*.progress"))
    tiny.ensure_tiny_model()  # the next ask builds it afresh
    assert tiny.tiny_model_built() and len(empty_cache) == 2


def test_a_run_builds_the_demo_model_as_its_first_phase_and_a_cancel_stops_it(empty_cache, tmp_path):
    from trainer.callbacks import RunCancelled, build_for_run, disarm, request_stop

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    phases: list[tuple[str, list | None]] = []
    real_set_steps = rf.set_phase_steps

    def record(run_dir_, done, total):
        real_set_steps(run_dir_, done, total)
        status = rf.read_json(run_dir_ / rf.STATUS_FILE)
        phases.append((status["phase"], status["phase_steps"]))
        if done == 20:
            request_stop()  # the user pressed Cancel

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rf, "set_phase_steps", record)
            with pytest.raises(RunCancelled, match="while the demo model was being built"):
                build_for_run(run_dir)
    finally:
        disarm()
    assert phases == [(rf.BUILD_PHASE, [0, 40]), (rf.BUILD_PHASE, [10, 40]), (rf.BUILD_PHASE, [20, 40])]
    assert not tiny.tiny_model_built()


def test_the_runs_tab_shows_the_build_with_its_own_bar():
    from trainer.runs.store import Job
    from trainer.ui.runs_tab import progress_html

    job = Job(id=1, owner=None, name="demo", status="running", run_dir="x", created_at=0.0)
    shown = progress_html(job, [], {"phase": rf.BUILD_PHASE, "phase_steps": [80, 240]})
    assert "building the demo model (first time only)… · warm-up step 80 / 240" in shown
    assert 'style="width:33.3%"' in shown
