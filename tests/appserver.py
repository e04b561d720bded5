"""The real app (`python app.py`) started as a person starts it, on a free local port, for the browser and HTTP tests
and the load benchmark."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from trainer.paths import PROJECT_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(data_dir: Path, env: dict[str, str], timeout_s: float = 120.0) -> Iterator[str]:
    """Serve the app with `data_dir` as its data dir and `env` on top of this process's environment (its HF_*
    variables left out), wait until it answers, yield its URL and stop it afterwards. Its output goes to
    `data_dir/app.log`, whose tail is the error when it never answers."""
    import httpx

    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(
        PHI3_STUDIO_DATA_DIR=str(data_dir),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    full_env.update(env)
    url = f"http://127.0.0.1:{port}"
    with open(data_dir / "app.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError((data_dir / "app.log").read_text()[-3000:])
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
