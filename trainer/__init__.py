"""Phi-3 Fine-Tune Studio: fine-tune Phi-3 with LoRA / QLoRA (TRL + PEFT), from a form, the CLI or Python.

The package is importable without torch: heavy libraries are imported inside the functions that use them.
"""

__version__ = "0.1.0"
