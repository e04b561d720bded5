"""Shared test setup: offline, CPU only, runs written to a temporary data dir; the tiny Phi-3 built once."""

from __future__ import annotations

import os

# No network, ever: the HF libraries read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
