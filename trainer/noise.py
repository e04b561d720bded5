"""Known, harmless noise from the libraries, silenced where it comes from (by module and message, never globally).

- PEFT 0.21 reads `model.is_gradient_checkpointing`, which transformers 5.25 deprecates for
  `is_activation_checkpointing` (PEFT's own call, in `PeftModel.__init__`).

Our own code warns about nothing: the deprecations transformers 5.25 announces are avoided at their cause
(`activation_checkpointing` where transformers has it), and bitsandbytes' warning about a Hub kernel it did not load
is dropped only where it is expected, while Hub kernels are off (`trainer.hubkernels`).
"""

from __future__ import annotations

import logging
import os
import warnings

LOG_NOISE: dict[str, tuple[str, ...]] = {
    # a file that does not parse: the loader's own error names the file, the line and the fix (trainer.data.load)
    "datasets.packaged_modules.json.json": ("Failed to load JSON",),
}
"""{logger name: message prefixes it drops}."""
QUIET_ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
"""Set before `datasets` is imported: its "Generating train split" bars would come before a clean error (a person
sees the preview's row counts instead). Set by `silence_known_noise`, unless the environment says otherwise."""
WARNING_NOISE: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)
"""(category, message regex, module regex) of warnings to ignore."""


class DropMessages(logging.Filter):
    """A logging filter that drops the records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def silence_known_noise() -> None:
    """Install the filters (idempotent): the named loggers drop the named messages; the named warnings are ignored;
    the progress bars of `QUIET_ENV` are off."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name, prefixes in LOG_NOISE.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in target.filters):
            target.addFilter(DropMessages(prefixes))
    for category, message, module in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
