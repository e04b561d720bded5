"""The versions a run, a benchmark or the GPU check ran with (read from the installed packages' metadata)."""

from __future__ import annotations

import importlib.metadata
import platform

LIBRARIES = (
    *("torch", "transformers", "trl", "peft", "datasets", "accelerate", "huggingface_hub", "tokenizers"),
    *("safetensors", "bitsandbytes", "kernels", "flash-attn", "liger-kernel", "gradio"),
)
"""Every library whose version shapes a run (those not installed are left out)."""


def library_versions() -> dict[str, str]:
    """{"python": ..., <library>: <version>} for each installed library of `LIBRARIES`."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def versions_line(versions: dict[str, str]) -> str:
    """The library versions of `versions` (as `library_versions` gives them) on one line: "torch 2.13.0 · ..."."""
    return " · ".join(f"{name} {versions[name]}" for name in LIBRARIES if versions.get(name))
