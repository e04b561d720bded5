"""Know before you start: token lengths against max_length, peak memory against the device, training time.

- `trainer.estimate.tokens`: per-row lengths and assistant spans (one tokenizer pass), the histogram, the share of
  rows and of reply tokens that max_length cuts.
- `trainer.estimate.memory`: the model's shape and parameter counts, the peak-memory breakdown (formulas there).
- `trainer.estimate.device`: the device: this GPU, the CPU for the tiny demo, else the Space's suggested GPU.
- `trainer.estimate.plan`: fits / tight / will not fit with a suggested change, and the time estimate.
- `trainer.estimate.render`: `estimate_run` (all of it in one call) and `render_markdown` (the Train tab panel).

Pure functions; torch, transformers and TRL are imported only inside the calls that need them (device detection,
tokenising rows, reading an unknown model's config), so the web page can import this at no cost.

Example:
    >>> from trainer.config import preset_config
    >>> from trainer.estimate import estimate_run, render_markdown
    >>> print(render_markdown(estimate_run(preset_config("qlora"), rows=rows, tokenizer=tokenizer)))
"""

from trainer.estimate.device import GPUS, SPACE_HARDWARE, Device, Gpu, detect_device, gpu_device, space_hardware
from trainer.estimate.memory import MemoryBreakdown, ModelShape, estimate_memory, model_shape, with_changes
from trainer.estimate.plan import Fit, Suggestion, Throughput, TimeEstimate, check_fit, estimate_time, throughput
from trainer.estimate.render import RunEstimate, estimate_run, render_markdown
from trainer.estimate.tokens import LengthReport, RowTokens, length_report, row_tokens

__all__ = [
    "GPUS",
    "SPACE_HARDWARE",
    "Device",
    "Fit",
    "Gpu",
    "LengthReport",
    "MemoryBreakdown",
    "ModelShape",
    "RowTokens",
    "RunEstimate",
    "Suggestion",
    "Throughput",
    "TimeEstimate",
    "check_fit",
    "detect_device",
    "estimate_memory",
    "estimate_run",
    "estimate_time",
    "gpu_device",
    "length_report",
    "model_shape",
    "render_markdown",
    "row_tokens",
    "space_hardware",
    "throughput",
    "with_changes",
]
