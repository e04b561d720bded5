"""Hub kernels (compute code that libraries download from the Hugging Face Hub at run time): off unless asked for.

With the `kernels` package installed (transformers 5.25 depends on it), two libraries would fetch code from the Hub:
- transformers swaps layers and attention for Hub kernels when asked to. Its documented switch is the environment
  variable ``USE_HUB_KERNELS`` (read at each use); this module sets it to ``NO`` unless it is set already.
- bitsandbytes (0.50), when it is imported on a CPU with AVX512-BF16, asks ``kernels.get_kernel`` for
  ``kernels-community/quantization-bitsandbytes``, whatever the environment says: it has no switch of its own. When
  `kernels` cannot be imported it keeps its own CPU kernels (its documented fallback) after logging a warning. So
  while Hub kernels are off, bitsandbytes is imported with `kernels` hidden (the import hook below) and that one
  warning, which names the kernel it then did not ask for, is dropped as expected.

Hub kernels are allowed when ``USE_HUB_KERNELS`` is true (1, on, yes or true, as transformers reads it). A run sets
it from its ``model.hub_kernels`` setting before anything imports bitsandbytes (`trainer.training.run`); the web
app's chat and estimate follow the environment the app was started with. `install` runs when the `trainer`
package is imported, so no entry point can import bitsandbytes before the hook is in place.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Iterator

from trainer.noise import DropMessages

ENV = "USE_HUB_KERNELS"
"""transformers' switch for Hub kernels, which this project also reads for bitsandbytes."""
BNB_FALLBACK_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_FALLBACK_MESSAGE = "Failed to load CPU gemm_4bit_forward"
"""The warning bitsandbytes logs when it keeps its own CPU kernel (expected while Hub kernels are off)."""

logger = logging.getLogger(__name__)


def allowed() -> bool:
    """Whether libraries may fetch kernels from the Hub in this process (``USE_HUB_KERNELS`` is true)."""
    return os.environ.get(ENV, "").strip().lower() in {"1", "on", "yes", "true"}


def set_allowed(allow: bool) -> None:
    """Allow or forbid Hub kernels from now on in this process and the processes it starts.

    bitsandbytes reads the choice once, when it is first imported: a change after that is logged and applies only
    to transformers (and to child processes).
    """
    if allow != allowed() and "bitsandbytes" in sys.modules:
        logger.warning(
            "Hub kernels are %s from now on, but bitsandbytes was imported before, under the other choice, and "
            "keeps it in this process (a new process takes the new one).",
            "allowed" if allow else "forbidden",
        )
    os.environ[ENV] = "YES" if allow else "NO"


def install() -> None:
    """Forbid Hub kernels unless ``USE_HUB_KERNELS`` says otherwise, and put the bitsandbytes import hook in place
    (once per process)."""
    os.environ.setdefault(ENV, "NO")
    if not any(isinstance(finder, _BitsandbytesWithoutHubKernels) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BitsandbytesWithoutHubKernels())


class _BitsandbytesWithoutHubKernels(importlib.abc.MetaPathFinder):
    """Finds bitsandbytes as Python would, and has its package run with `kernels` hidden while Hub kernels are off."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "bitsandbytes" or allowed():
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _LoaderWithoutHubKernels(spec.loader)
        return spec


class _LoaderWithoutHubKernels(importlib.abc.Loader):
    """The package's own loader, whose module runs (with all it imports at import time) with `kernels` hidden."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def __getattr__(self, name: str):  # resource readers and the like: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _kernels_hidden():
            self._loader.exec_module(module)


@contextlib.contextmanager
def _kernels_hidden() -> Iterator[None]:
    """`import kernels` raises ImportError inside (a None entry in sys.modules), as if it were not installed."""
    missing = object()
    saved = sys.modules.get("kernels", missing)
    sys.modules["kernels"] = None  # type: ignore[assignment]
    fallback_log = logging.getLogger(BNB_FALLBACK_LOGGER)
    quiet = DropMessages((BNB_FALLBACK_MESSAGE,))
    fallback_log.addFilter(quiet)
    try:
        yield
    finally:
        fallback_log.removeFilter(quiet)
        if saved is missing:
            sys.modules.pop("kernels", None)
        else:
            sys.modules["kernels"] = saved
