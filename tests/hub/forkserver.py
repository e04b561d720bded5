"""Starts the Hub tests' client scripts as forks of one process that has torch imported already (conftest.py).

A client is a fresh Python process in every way the tests rely on: its environment is set before any Hugging Face
library is imported (none is imported here, and this file checks that), it has its own pid, working directory, stdout
and stderr, and it exits with the code `python script.py` would, after what Python does at exit that a test could see
(non-daemon threads joined, atexit handlers, streams flushed). What it skips: importing torch and bitsandbytes (about
3 s on 2 cores; neither reads HF_* variables), and the teardown of every module at exit (another 1.2 s once
transformers is imported).

Protocol, one JSON object per line: this process first says which startup variables its imports set
``{"preloaded": {...}}``; then the test writes a request to stdin
``{"script", "env", "cwd", "stdout", "stderr"}`` (the last two: files to write the output to); this process answers
``{"pid": ...}`` once the client runs and ``{"code": ...}`` when it exited (its exit code, -N for signal N).
Closing stdin ends this process.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path

PRELOAD = ("torch", "bitsandbytes", "safetensors.torch")
"""Slow to import and independent of the HF_* environment."""
HF_LIBRARIES = {"huggingface_hub", "transformers", "datasets", "peft", "trl", "accelerate", "tokenizers", "hf_xet"}
"""Libraries that read HF_* variables at import: a client must import them itself, after its environment is set."""


STARTUP_ENV = (
    "PYTHON",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS",
    "MALLOC_",
    "LD_",
    "TORCH",
    "PYTORCH",
    "CUDA",
    "BNB_",
)
"""Variables read when Python starts or torch loads: a client whose values differ is started as a plain process."""


def startup_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP_ENV)}


class ForkServer:
    """The test's side: starts this file as a process and runs client scripts through it."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path):
        self.env, self.log = env, log
        with open(log, "wb") as errors:
            self.proc = subprocess.Popen(
                [sys.executable, __file__], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors, bufsize=0,
            )  # fmt: skip
        self._buffer = b""
        self._preloaded: dict[str, str] | None = None  # variables torch set while it loaded (its defaults)

    def forkable(self, env: dict[str, str]) -> bool:
        """Whether a process with `env` starts as this one did (what its preload set itself may be left out)."""
        if self._preloaded is None:
            self._preloaded = self._answer(time.monotonic() + 120)["preloaded"]
        expected = {**startup_env(self.env), **self._preloaded}
        mine = startup_env(env)
        return all(mine.get(k) == v or (k in self._preloaded and k not in mine) for k, v in expected.items()) and all(
            k in expected for k in mine
        )

    def run(self, script: Path, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """Run `python script` with `env` in `cwd` (as subprocess.run with capture_output, text and timeout)."""
        if not self.forkable(env):  # it needs a Python or torch started with its own settings
            return subprocess.run(
                [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
            )
        out, err = script.with_suffix(".stdout"), script.with_suffix(".stderr")
        request = {"script": str(script), "env": env, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        deadline = time.monotonic() + timeout
        pid = self._answer(time.monotonic() + 60)["pid"]
        try:
            code = self._answer(deadline)["code"]
        except TimeoutError:
            os.kill(pid, 9)
            self._answer(time.monotonic() + 60)
            raise subprocess.TimeoutExpired([sys.executable, str(script)], timeout) from None
        read = lambda path: path.read_text(encoding="utf-8", errors="replace")  # noqa: E731
        return subprocess.CompletedProcess([sys.executable, str(script)], code, read(out), read(err))

    def _answer(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.proc.stdout], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the fork server exited: {self.log.read_text(errors='replace')[-3000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _client(request: dict) -> None:
    """In the forked child: become the client process and run its script; exits, never returns."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = [request["script"]]
    sys.path[0] = os.path.dirname(os.path.abspath(request["script"]))  # as `python script.py` sets it
    try:
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # as the interpreter does: the traceback on stderr, exit code 1
        traceback.print_exc()
        code = 1
    _exit(code)


def _exit_code(exc: SystemExit) -> int:
    """What `python script.py` exits with on sys.exit(x)."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """Python's own exit, less the teardown of every module (1.2 s once transformers is imported, in a fresh process
    too): non-daemon threads joined, atexit handlers run (logging's flush, weakref finalizers), streams flushed."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main() -> None:
    import importlib

    before = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    leaked = HF_LIBRARIES & {name.split(".")[0] for name in sys.modules}
    if leaked:
        raise SystemExit(
            f"forkserver: preloading imported {sorted(leaked)}, which must be imported after the env is set"
        )
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # nothing but answers goes to the test's pipe
    preloaded = {k: v for k, v in startup_env(dict(os.environ)).items() if before.get(k) != v}
    answers.write(json.dumps({"preloaded": preloaded}) + "\n")  # e.g. TORCHINDUCTOR_CACHE_DIR, torch's default
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            answers.close()
            _client(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
