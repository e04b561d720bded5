"""Shared test setup: offline, CPU only, runs written to a temporary data dir; the tiny Phi-3 built once.

The README's command runs the suite in parallel (`python -m pytest -q -n auto`: pytest-xdist starts one worker
process per core and hands each its share of the tests). Each worker is a process of its own, so it runs the
session fixtures below for itself, once: its own data dir, its own tokenizer, its own shared runs. The one thing all
workers share is the tiny model, which the product builds once per machine (holding a lock file) and caches.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

# No network, ever: the HF libraries read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under xdist, each worker (and every process its tests start) gets its share of the cores, as each process of a
# run on several processes does (trainer/runs/queue.py). Torch's threads default to every core: two workers on two
# cores would run four threads that wait on one another (two tiny-demo runs at once took 142 s each, not 30 s).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))  # read by torch at import


@pytest.fixture(autouse=True, scope="session")
def _data_dir(tmp_path_factory):
    """Runs land in a temporary data dir, not in the repository (one per process: each xdist worker has its own)."""
    os.environ["PHI3_STUDIO_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield


@pytest.fixture(scope="session")
def tiny_model_path():
    """The tiny Phi-3 folder, built and cached on first use (~1 minute on 2 cores). When several workers ask at
    once, one builds it while the others wait for its lock file (`ensure_tiny_model`), as the app's processes do."""
    from trainer.tools.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def phi3_tokenizer():
    """The real Phi-3 tokenizer shipped in trainer/assets."""
    from transformers import AutoTokenizer

    from trainer.paths import TOKENIZER_DIR

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this test run shares (each worker's temporary folder is one of its children);
    without xdist, this process's own temporary folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session")
def demo(shared_dir, tiny_model_path):
    """One full tiny-demo run (the same as `python -m trainer demo`), trained once for the whole test run: (RunResult,
    the events as they were handed to `on_event`).

    Read only: the integration tests check it, and the Hub tests push copies of its folder (tests/hub/conftest.py).
    The first worker to ask trains it (20 s alone on 2 cores) while holding a lock; the others wait for the lock and
    read the same folder. What only the training process saw is kept beside it for the tests: the events handed to
    `on_event`, what `run` returned and the process's pid (the tests compare them with the run folder). The model is
    not kept (a test that needs the trained model in memory trains a short run of its own).
    """
    import json

    from trainer.config import preset_config
    from trainer.runs import folder as rf
    from trainer.training import RunResult, run

    run_dir, seen = shared_dir / "demo-run", shared_dir / "demo-run-seen.json"
    with _flock(shared_dir / "demo-run.lock", fcntl.LOCK_EX):
        if not seen.exists():
            events: list[dict] = []
            result = run(preset_config("tiny-demo"), on_event=events.append, run_dir=run_dir)
            fields = ("global_step", "eval_loss_before", "eval_loss_after", "samples")
            returned = {name: getattr(result, name) for name in fields}
            seen.write_text(json.dumps({"events": events, "pid": os.getpid(), "result": returned}))
    kept = json.loads(seen.read_text())
    return RunResult(run_dir=run_dir, adapter_dir=run_dir / rf.ADAPTER_DIR, **kept["result"]), kept["events"]


@pytest.fixture(scope="session")
def demo_pid(demo, shared_dir) -> int:
    """The pid of the process that trained the demo run (see `demo`)."""
    import json

    return json.loads((shared_dir / "demo-run-seen.json").read_text())["pid"]


@pytest.fixture(scope="session")
def qlora_run_template(tiny_model_path, tmp_path_factory):
    """A finished QLoRA run of the tiny demo on this CPU (bitsandbytes' CPU backend), 6 steps: (folder, RunResult).

    Read only (tests copy the folder before they change it); a few seconds to train, so each worker that needs it
    trains its own."""
    from trainer.config import load_config
    from trainer.training import run

    overrides = ["max_steps=6", "eval_steps=6", "save_steps=6", "sample_prompts=1", "load_in_4bit=true"]
    run_dir = tmp_path_factory.mktemp("qlora") / "qlora-run"
    return run_dir, run(load_config(preset="tiny-demo", overrides=overrides), run_dir=run_dir)


OPT_IN_MARKERS = ("gpu", "fullsize")
"""Tests that run only when a -m expression names their marker: GPU tests, and the full-size Phi-3-mini (minutes)."""


def pytest_collection_modifyitems(config, items):
    """Opt-in tests (-m gpu, -m fullsize) run only when a -m expression names them; otherwise they are deselected,
    never skipped. Tests marked `alone` come first: run while the other workers are between short tests, they wait
    for no long one (waiting behind a browser test's minute-long setup left a worker idle for that minute)."""
    expression = config.option.markexpr or ""
    skipped = [marker for marker in OPT_IN_MARKERS if marker not in expression]
    opt_in = [item for item in items if any(item.get_closest_marker(marker) for marker in skipped)]
    if opt_in:
        config.hook.pytest_deselected(items=opt_in)
        items[:] = [item for item in items if item not in opt_in]
    items.sort(key=lambda item: item.get_closest_marker("alone") is None)  # stable: the rest keep their order


@contextlib.contextmanager
def _flock(path: Path, mode: int):
    """Holds an flock on `path` (shared or exclusive) until the block ends."""
    with open(path, "a") as file:
        fcntl.flock(file, mode)
        yield  # closing the file releases the lock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a test marked `alone` runs while no other worker runs a test: it times something (Start answering
    within 2 s, training steps not waiting for uploads) that another test training beside it would slow down.

    Every test holds a shared lock on one file of this test run while it runs (setup to teardown); an `alone` test
    holds it exclusively. Tests pass a turnstile first, which an `alone` test holds while it waits, so it gets in
    ahead of the tests that come after it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing runs beside
        return (yield)
    shared = Path(item.config.option.basetemp).parent  # each worker's temporary folder is one of this run's
    lock, turnstile = shared / "alone.lock", shared / "alone.turnstile"
    if item.get_closest_marker("alone"):
        with _flock(turnstile, fcntl.LOCK_EX), _flock(lock, fcntl.LOCK_EX):
            return (yield)
    with _flock(turnstile, fcntl.LOCK_EX):
        pass
    with _flock(lock, fcntl.LOCK_SH):
        return (yield)
