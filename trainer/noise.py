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
import re
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


LOG_VIEW_NOISE = re.compile(
    r"^(?:"
    r"\S+\.py:\d+: \w*Warning: .*"  # a Python warning as the warnings module prints it: "<file>:<line>: ..."
    r"|\s+warnings\.warn\(.*"  # ... and the source line it prints under it
    r"|.*\d+%\|.*\|.*"  # a progress bar (tqdm)
    r"|.*Failed to load CPU gemm_4bit_forward.*"  # bitsandbytes' Hub-kernel fallback (trainer.hubkernels)
    r")$"
)
"""Lines of a run's log that only a library's maintainers can act on: the Runs tab leaves them out of its view."""


def for_people(log_text: str) -> str:
    """A run's log as the Runs tab shows it: without `LOG_VIEW_NOISE` (log.txt itself keeps every line)."""
    return "\n".join(line for line in log_text.splitlines() if not LOG_VIEW_NOISE.match(line))
