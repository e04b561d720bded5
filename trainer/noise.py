"""Known, harmless noise from the libraries, silenced where it comes from (by module and message, never globally).

- bitsandbytes on a CPU without the optional `kernels` package logs that it falls back to its own 4-bit kernels;
- transformers 5 warns that `gradient_checkpointing` is becoming `activation_checkpointing` (TRL 1.x still uses the
  old name, and so do our settings, named as TRL's).
"""

from __future__ import annotations

import logging
import warnings

LOG_NOISE = {"bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",)}
WARNING_NOISE = (
    (FutureWarning, r"`gradient_checkpointing(_kwargs)?` is deprecated", r"transformers\.training_args"),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)


class _DropKnown(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def silence_known_noise() -> None:
    """Install the filters (idempotent): the named loggers drop the named messages; the named warnings are ignored."""
    for name, prefixes in LOG_NOISE.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in target.filters):
            target.addFilter(_DropKnown(prefixes))
    for category, message, module in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
