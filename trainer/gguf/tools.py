"""llama.cpp's own conversion tools, at one llama.cpp commit: taken from llama-cpp-python's source distribution.

PyPI ships llama-cpp-python as a source distribution only; it carries llama.cpp's tree, with `convert_hf_to_gguf.py`,
`convert_lora_to_gguf.py`, their `conversion/` package and `gguf-py` at the same commit as the library it builds
(whose bindings quantize: `trainer.gguf.export`). The converters are not installed by pip, so the studio keeps them
in a cache folder of their own: the same release as the locked `llama-cpp-python`, its file checked against a pinned
SHA-256, only the converters' files unpacked. The GGUF export fetches them on first use (the Space reaches PyPI);
`python -m trainer export-gguf --fetch-tools` does it ahead (CI does, before the tests, which never go online).

The converters run in a subprocess with `gguf-py` first on `PYTHONPATH`, so their `gguf` package is theirs, whatever
`gguf` release is installed (transformers' GGUF loader uses the installed one).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
"""The llama-cpp-python release whose llama.cpp tree the converters come from; equal to the lock's (a test checks)."""
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
"""PyPI's llama_cpp_python-0.3.36.tar.gz."""
TOOLS_ENV = "PHI3_STUDIO_LLAMA_CPP_TOOLS"
"""Where the converters are (default: `<cache>/llama.cpp-<release>`, beside the tiny model's cache)."""
MEMBERS = (
    "convert_hf_to_gguf.py",
    "convert_lora_to_gguf.py",
    "conversion/",
    "gguf-py/",
    "models/ggml-vocab-phi-3.gguf",
)
"""What is unpacked from `vendor/llama.cpp/` of the source distribution."""


class ToolsMissing(RuntimeError):
    """llama.cpp's converters are not on this machine and could not be fetched."""


@dataclass(frozen=True)
class LlamaCppTools:
    """A folder holding llama.cpp's converters and gguf-py at one commit."""

    root: Path

    @property
    def converter(self) -> Path:
        return self.root / "convert_hf_to_gguf.py"

    @property
    def lora_converter(self) -> Path:
        return self.root / "convert_lora_to_gguf.py"

    def vocab(self, name: str) -> Path:
        """One of llama.cpp's vocabulary files (`models/ggml-vocab-<name>.gguf`)."""
        return self.root / "models" / f"ggml-vocab-{name}.gguf"

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` with this tree's gguf-py first on PYTHONPATH (the converters' own `gguf`)."""
        paths = [str(self.root / "gguf-py"), *filter(None, [env.get("PYTHONPATH")])]
        return {**env, "PYTHONPATH": os.pathsep.join(paths)}

    def complete(self) -> bool:
        """Every member unpacked (a folder left by an interrupted fetch is not)."""
        return (self.root / ".complete").is_file()


def tools_dir() -> Path:
    """Where the converters of the locked release are kept."""
    from trainer.tools.tiny import cache_root

    return Path(os.environ.get(TOOLS_ENV) or cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON}")


def llama_cpp_tools(fetch: bool = True) -> LlamaCppTools:
    """llama.cpp's converters, fetched from PyPI first if they are not here and `fetch` allows it.

    Raises:
        ToolsMissing: not here (and not fetched, or the fetch failed: the reason, and how to fetch them by hand).
    """
    tools = LlamaCppTools(tools_dir())
    if tools.complete():
        return tools
    if not fetch:
        raise ToolsMissing(
            f"llama.cpp's converters are not in {tools.root}: fetch them once with "
            "`python -m trainer export-gguf --fetch-tools` (downloads llama-cpp-python's source from PyPI)."
        )
    return fetch_tools(tools.root)


def fetch_tools(root: Path) -> LlamaCppTools:
    """Download the locked llama-cpp-python source distribution with pip, check its SHA-256 and unpack the
    converters into `root` (atomically: a folder beside it, renamed when complete)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as work:
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
        download += ["-d", work, f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
        done = subprocess.run(download, capture_output=True, text=True)
        archives = list(Path(work).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or len(archives) != 1:
            why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise ToolsMissing(f"could not download llama-cpp-python {LLAMA_CPP_PYTHON} from PyPI: {why[0]}")
        digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise ToolsMissing(f"{archives[0].name} has SHA-256 {digest}, not the pinned {SDIST_SHA256}: not used.")
        staged = Path(work) / "tools"
        unpack(archives[0], staged)
        (staged / ".complete").write_text(f"llama-cpp-python {LLAMA_CPP_PYTHON}\n")
        if root.exists():
            shutil.rmtree(root)
        staged.rename(root)
    return LlamaCppTools(root)


def unpack(archive: Path, into: Path) -> None:
    """Unpack MEMBERS of the archive's `vendor/llama.cpp/` into `into` (regular files only, no path leaves it)."""
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(prefix)
            if name == member.name or not member.isfile() or not name.startswith(MEMBERS):
                continue
            target = (into / name).resolve()
            if not target.is_relative_to(into.resolve()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
