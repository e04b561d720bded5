"""Shared test setup: offline, CPU only, runs written to a temporary data dir; the tiny Phi-3 built once."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from pathlib import Path

# No network, ever: the HF libraries read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Speed only, no behaviour: these tune the C runtime of this process and of every process the tests start (they
# inherit os.environ: Hub clients, workers, the app, jobs), never what the code does.
# - glibc hands each freed buffer of more than 128 KiB back to the kernel (munmap, or a trim of the heap's top), so
#   every training step page-faults its logits buffers (tens of MB) in again: a third of a tiny run's CPU time was
#   in the kernel. Keep freed memory for reuse (at most 32 MiB per buffer is served from the heap; larger ones are
#   still mapped and unmapped).
# - On two shared cores, torch's second OpenMP thread spun waiting for the first while another process held the
#   other core (a tiny run took 10 s instead of 7 s on one thread); PASSIVE waits sleep instead of spinning.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
    "MALLOC_TRIM_THRESHOLD_": 2**31 - 1,
    "MALLOC_TOP_PAD_": 128 * 2**20,
}
for _name, _value in MALLOC_ENV.items():
    os.environ.setdefault(_name, str(_value))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads its OpenMP runtime: after this file


def _keep_freed_memory() -> None:
    """The same malloc settings for this process, whose malloc read its environment before this file ran."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    for option, name in ((-3, "MALLOC_MMAP_THRESHOLD_"), (-1, "MALLOC_TRIM_THRESHOLD_"), (-2, "MALLOC_TOP_PAD_")):
        mallopt(option, int(os.environ[name]))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD


_keep_freed_memory()

import pytest  # noqa: E402

E2E_DIR = Path(__file__).resolve().parent / "e2e"


@pytest.fixture(autouse=True, scope="session")
def _data_dir(tmp_path_factory):
    """Runs land in a temporary data dir, not in the repository."""
    os.environ["PHI3_STUDIO_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield


@pytest.fixture(scope="session")
def tiny_model_path():
    """The tiny Phi-3 folder (built and cached on first use, ~1 minute on 2 cores)."""
    from trainer.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def phi3_tokenizer():
    """The real Phi-3 tokenizer shipped in trainer/assets."""
    from transformers import AutoTokenizer

    from trainer.paths import TOKENIZER_DIR

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def _demo_run(run_dir: Path):
    from trainer.config import preset_config
    from trainer.training import run

    events = []
    result = run(preset_config("tiny-demo"), on_event=events.append, run_dir=run_dir, return_model=True)
    return result, events


def _qlora_run(run_dir: Path):
    from trainer.config import load_config
    from trainer.training import run

    overrides = ["max_steps=6", "eval_steps=6", "save_steps=6", "sample_prompts=1", "load_in_4bit=true"]
    return run_dir, run(load_config(preset="tiny-demo", overrides=overrides), run_dir=run_dir)


SHARED_RUNS = {"demo": (_demo_run, "demo", ""), "qlora_run_template": (_qlora_run, "qlora", "qlora-run")}
"""The session's shared runs: fixture name -> (what trains it, its temporary folder, a subfolder to train in)."""
_RUNS: dict[str, concurrent.futures.Future] = {}
"""The shared runs trained (in the foreground, or in the background by `train_meanwhile`) or being trained now."""


def _run_dir(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, folder, sub = SHARED_RUNS[name]
    return tmp_path_factory.mktemp(folder) / sub if sub else tmp_path_factory.mktemp(folder)


def _shared_run(name: str, tmp_path_factory: pytest.TempPathFactory):
    """The run `name`: trained in the background (waiting for it if need be), else trained now."""
    if name not in _RUNS:
        trained: concurrent.futures.Future = concurrent.futures.Future()
        trained.set_result(SHARED_RUNS[name][0](_run_dir(name, tmp_path_factory)))
        _RUNS[name] = trained  # so that `train_meanwhile` leaves it out
    return _RUNS[name].result()


@pytest.fixture(scope="session")
def train_meanwhile(request, tiny_model_path, tmp_path_factory):
    """Trains the shared runs that selected tests need (demo, then QLoRA) in a background thread of this process.

    The browser tests ask for this: they mostly wait for other processes (the app, its worker, Chromium), so a core
    is free while they run. No test outside tests/e2e starts before these runs are done (`pytest_runtest_setup`
    below): in-process training must not overlap a test that patches the trainer or reads the trainer's logs. The
    runs are the same as when trained in the foreground (seeded; nothing else in this process uses torch meanwhile).
    """
    needed = {name for item in request.session.items for name in item.fixturenames if name in SHARED_RUNS}
    futures = {name: concurrent.futures.Future() for name in SHARED_RUNS if name in needed - _RUNS.keys()}
    folders = {name: _run_dir(name, tmp_path_factory) for name in futures}

    def train_all() -> None:
        for name, future in futures.items():
            try:
                future.set_result(SHARED_RUNS[name][0](folders[name]))
            except BaseException as exc:  # raised again in the tests that need the run
                future.set_exception(exc)

    _RUNS.update(futures)
    threading.Thread(target=train_all, name="shared-runs", daemon=True).start()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Only the browser tests run beside the background training (see `train_meanwhile`)."""
    if E2E_DIR not in Path(item.path).resolve().parents:
        concurrent.futures.wait(list(_RUNS.values()))


@pytest.fixture(scope="session")
def demo(tiny_model_path, tmp_path_factory):
    """One full tiny-demo run (the same as `python -m trainer demo`): (RunResult with the model, events).

    Read only: the integration tests check it, and the Hub tests push copies of its folder (tests/hub/conftest.py).
    """
    return _shared_run("demo", tmp_path_factory)


@pytest.fixture(scope="session")
def qlora_run_template(tiny_model_path, tmp_path_factory):
    """A finished QLoRA run of the tiny demo on this CPU (bitsandbytes' CPU backend), 6 steps: (folder, RunResult)."""
    return _shared_run("qlora_run_template", tmp_path_factory)


OPT_IN_MARKERS = ("gpu", "fullsize")
"""Tests that run only when a -m expression names their marker: GPU tests, and the full-size Phi-3-mini (minutes)."""


def pytest_collection_modifyitems(config, items):
    """Opt-in tests (-m gpu, -m fullsize) run only when a -m expression names them; otherwise they are deselected,
    never skipped."""
    expression = config.option.markexpr or ""
    skipped = [marker for marker in OPT_IN_MARKERS if marker not in expression]
    opt_in = [item for item in items if any(item.get_closest_marker(marker) for marker in skipped)]
    if opt_in:
        config.hook.pytest_deselected(items=opt_in)
        items[:] = [item for item in items if item not in opt_in]
