"""Shared test setup: offline, CPU only, runs written to a temporary data dir; the tiny Phi-3 built once."""

from __future__ import annotations

import os

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


@pytest.fixture(scope="session")
def demo(tiny_model_path, tmp_path_factory):
    """One full tiny-demo run (the same as `python -m trainer demo`): (RunResult with the model, events).

    Read only: the integration tests check it, and the Hub tests push copies of its folder (tests/hub/conftest.py).
    """
    from trainer.config import preset_config
    from trainer.training import run

    events = []
    result = run(
        preset_config("tiny-demo"), on_event=events.append, run_dir=tmp_path_factory.mktemp("demo"), return_model=True
    )
    return result, events


@pytest.fixture(scope="session")
def qlora_run_template(tiny_model_path, tmp_path_factory):
    """A finished QLoRA run of the tiny demo on this CPU (bitsandbytes' CPU backend), 6 steps, built once (~9 s)."""
    from trainer.config import load_config
    from trainer.training import run

    run_dir = tmp_path_factory.mktemp("qlora") / "qlora-run"
    overrides = ["max_steps=6", "eval_steps=6", "save_steps=6", "sample_prompts=1", "load_in_4bit=true"]
    result = run(load_config(preset="tiny-demo", overrides=overrides), run_dir=run_dir)
    return run_dir, result


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
