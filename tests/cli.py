"""`python -m trainer ...` run as a person runs it, in a subprocess from the project root, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys

from trainer.paths import PROJECT_ROOT


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the CLI with `args` (and `env` on top of this process's environment); its output is captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
