"""Phi-3 Fine-Tune Studio: fine-tune Phi-3 with LoRA / QLoRA (TRL + PEFT), from a form, the CLI or Python.

The package is importable without torch: heavy libraries are imported inside the functions that use them.
Importing it forbids compute kernels fetched from the Hub unless USE_HUB_KERNELS allows them (trainer/hubkernels.py).
"""

from trainer import hubkernels

__version__ = "0.1.0"

hubkernels.install()
