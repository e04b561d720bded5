"""Batch evaluation of a run: the base and the tuned model answer the same prompts, scored on the references.

- `trainer.evaluation.settings`: `EvalSettings` (what to evaluate) and the estimate of its cost before it starts.
- `trainer.evaluation.batch`: both models answer and score in one mixed-adapter batch (pure model calls).
- `trainer.evaluation.metrics`: BLEU, chrF, ROUGE-L, perplexity, lengths, stops; the comparison table (pure).
- `trainer.evaluation.report`: `eval/` in the run folder (results.json, summary.json, chart.png) and its views.
- `trainer.evaluation.worker`: `evaluate_run`, one evaluation start to end (the CLI's and the queue's).
- `trainer.evaluation.cli`: `python -m trainer eval RUN`.

Example:
    >>> from trainer.evaluation.settings import EvalSettings
    >>> from trainer.evaluation.worker import evaluate_run
    >>> summary = evaluate_run("runs/20261207-101500-pirate", EvalSettings(rows=40))
    >>> summary["base"]["chrf"], summary["tuned"]["chrf"]
"""
