"""Where the project's own files are: the repository root, the package and its bundled assets.

The lowest floor of the package: it imports nothing from `trainer`, so every module may import it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
ASSETS_DIR = PACKAGE_DIR / "assets"
EXAMPLES_DIR = PROJECT_ROOT / "examples"

TOKENIZER_DIR = ASSETS_DIR / "phi3-tokenizer"
"""The real Phi-3 tokenizer (vocabulary, special tokens, chat template), MIT, shipped for offline use."""

WARMUP_DATA = ASSETS_DIR / "warmup_chat.jsonl"
"""The plain chat corpus the tiny Phi-3 is warmed up on (see trainer.tiny)."""
