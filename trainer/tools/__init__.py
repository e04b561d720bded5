"""Tooling beside the product: the benchmarks, the prepared GPU check and the tiny Phi-3 builder.

- bench.py: the training speed/memory benchmark (`python -m trainer bench`).
- bench_chat.py: the compare-chat benchmark (`python -m trainer bench-chat`).
- gpu_check.py: the prepared GPU check: the GPU tests and both benchmarks (`python -m trainer gpu-check`).
- tiny.py: the tiny Phi-3 for the offline demo and the tests (`python -m trainer.tools.tiny` builds it).

The product (training, the runs service, the Hub, the web app) never imports this package, except tiny.py: the
offline demo's model, which a run's worker builds as its first phase and the app starts building in the background
on a CPU (trainer.modeling, trainer.callbacks, trainer.training, trainer.estimate and trainer.ui import it). The CLI
(trainer/__main__.py) is the front door of the rest: its bench, bench-chat and gpu-check commands call into here.
"""
