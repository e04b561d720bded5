"""Where the project's own files are: the repository root, the package and its bundled assets.

The lowest floor of the package: it imports nothing from `trainer`, so every module may import it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
ASSETS_DIR = PACKAGE_DIR / "assets"
EXAMPLES_DIR = PROJECT_ROOT / "examples"

TOKENIZER_DIR = ASSETS_DIR / "phi3-tokenizer"
"""The real Phi-3 tokenizer (vocabulary, special tokens, chat template), MIT, shipped for offline use."""

WARMUP_DATA = ASSETS_DIR / "warmup_chat.jsonl"
"""The plain chat corpus the tiny Phi-3 is warmed up on (see trainer.tools.tiny)."""


ENV_PREFIX = "PHI3_STUDIO_"
"""The one prefix of the studio's environment variables (``PHI3_STUDIO_ADMINS``, ``PHI3_STUDIO_DATA_DIR``...)."""
OLD_ENV_PREFIX = "STUDIO_"
"""The prefix some of them had before (``STUDIO_ADMINS``...): still read, with a deprecation line in the log."""
_warned: set[str] = set()


def env_setting(name: str) -> str | None:
    """The studio's environment variable `name` (``PHI3_STUDIO_...``), else its older ``STUDIO_...`` spelling (read,
    with a deprecation line in the log, once per process); None when neither is set."""
    if (value := os.environ.get(name)) is not None:
        return value
    old = OLD_ENV_PREFIX + name.removeprefix(ENV_PREFIX)
    if (value := os.environ.get(old)) is not None:
        if old not in _warned:
            _warned.add(old)
            logging.getLogger(__name__).warning("%s is deprecated: name it %s (it is read for now)", old, name)
        return value
    return None
