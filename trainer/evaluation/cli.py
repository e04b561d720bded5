"""`python -m trainer eval RUN`: the batch evaluation from the command line (and the worker of a queued one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.evaluation.benchmarks import TASKS, BenchmarkSettings
from trainer.evaluation.judge import DEFAULT_JUDGE, JudgeSettings
from trainer.evaluation.settings import EvalSettings
from trainer.runs.folder import EVAL_DIR, REQUEST_FILE


def add_command(sub) -> None:
    """The eval command and its arguments (the run, where the prompts come from, how many, how long the answers),
    and the judge command (`add_judge_command`)."""
    parser = sub.add_parser(
        "eval",
        help="batch evaluation: the base and the tuned model answer the same prompts, scored on the references",
        description="Answer the run's held-out rows (or a file, or a Hub dataset) with the base model and with the "
        "run's adapter in one batched decode, score both against the references (chrF, BLEU, ROUGE-L, the "
        "references' perplexity, reply lengths, stops) and write RUN/eval/.",
    )
    defaults = EvalSettings()
    parser.add_argument("run", type=Path, help="the run folder of a trained run")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompts", metavar="FILE", help="a file of chat rows with references (any training format)")
    source.add_argument("--dataset", metavar="ID", help="a Hub dataset of chat rows with references")
    parser.add_argument("--split", default=defaults.split, help=f"the --dataset split (default: {defaults.split})")
    parser.add_argument("--rows", type=int, default=defaults.rows, help=f"at most this many prompts ({defaults.rows})")
    parser.add_argument(
        "--max-new-tokens", type=int, default=defaults.max_new_tokens, help=f"per answer ({defaults.max_new_tokens})"
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help=f"prompts per batch ({defaults.batch_size})"
    )
    request = f"RUN/{EVAL_DIR}/{REQUEST_FILE}"
    parser.add_argument("--request", action="store_true", help=f"read the settings from {request} (a queued one)")
    add_judge_command(sub)
    add_benchmarks_command(sub)


def settings_from_args(args: argparse.Namespace):
    """The settings the flags ask for, or the queued request's with --request (an EvalSettings, or a JudgeSettings
    when the Runs tab queued a judge)."""
    if args.request:
        import json

        request = json.loads((args.run / EVAL_DIR / REQUEST_FILE).read_text(encoding="utf-8"))
        if "judge" in request:
            return JudgeSettings.from_dict(request["judge"])
        if "benchmarks" in request:
            return BenchmarkSettings(**request["benchmarks"])
        return EvalSettings.from_dict(request)
    source = "file" if args.prompts else "dataset" if args.dataset else "held-out"
    return EvalSettings(
        source=source,
        path=args.prompts or args.dataset,
        split=args.split,
        rows=args.rows,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )


def command(args: argparse.Namespace) -> int:
    """Evaluate the run; print the comparison table and where the results are. Exit codes as `train`'s."""
    from trainer.errors import EXIT_CANCELLED, EXIT_TIME_LIMIT
    from trainer.evaluation.metrics import comparison_markdown
    from trainer.evaluation.report import eval_dir, headline
    from trainer.evaluation.worker import EvalStopped, evaluate_run
    from trainer.hub import resolve_token
    from trainer.runs.processes import on_term, worker_time_limit

    stop = []
    on_term(lambda signum, frame: stop.append(signum))  # Cancel: the batch in hand ends, what was answered is kept
    settings = settings_from_args(args)
    if isinstance(settings, BenchmarkSettings):
        return _benchmarks(args.run, settings)
    if isinstance(settings, JudgeSettings):
        return _judge(args.run, settings, stop)
    try:
        summary = evaluate_run(
            args.run,
            settings,
            token=resolve_token(),
            should_stop=lambda: bool(stop),
            time_limit_s=worker_time_limit(),
            on_progress=lambda done, total: print(f"answered {done}/{total} prompts", flush=True),
        )
    except EvalStopped as exc:
        print(f"stopped: {exc}", flush=True)
        return EXIT_TIME_LIMIT if exc.time_limit else EXIT_CANCELLED
    print(headline(summary).replace("**", ""))
    print(comparison_markdown(summary))
    print(f"results: {eval_dir(args.run)}")
    return 0


def add_judge_command(sub) -> None:
    """The judge command: a judge model compares the two answers of each pair of the run's evaluation."""
    defaults = JudgeSettings()
    parser = sub.add_parser(
        "judge",
        help="a judge model compares the base's and the tuned model's answers of the run's evaluation",
        description="Ask a judge model (Hugging Face Inference Providers, your own token: HF_TOKEN or `hf auth "
        "login`) which of the two answers of each pair in RUN/eval/results.json is better, in both orders; write "
        "RUN/eval/judge.json with every verdict and its reason, and print the tuned model's win rate.",
    )
    parser.add_argument("run", type=Path, help="the run folder of an evaluated run (python -m trainer eval RUN)")
    parser.add_argument("--model", default=DEFAULT_JUDGE, help=f"the judge model (default: {DEFAULT_JUDGE})")
    parser.add_argument("--rubric-file", type=Path, help="a text file with your rubric (default: the studio's)")
    parser.add_argument("--rows", type=int, default=defaults.rows, help=f"at most this many pairs ({defaults.rows})")
    parser.add_argument("--provider", default=defaults.provider, help="the Inference Provider (default: auto)")
    parser.add_argument("--usd-per-million-tokens", type=float, help="your provider's price, for the estimate")


def judge_command(args: argparse.Namespace) -> int:
    """Judge the run's evaluation; print the estimate, then the tally and where the verdicts are."""
    from trainer.evaluation.judge import estimate_judge
    from trainer.evaluation.report import read_rows
    from trainer.runs.processes import on_term

    rubric = args.rubric_file.read_text(encoding="utf-8") if args.rubric_file else JudgeSettings().rubric
    settings = JudgeSettings(args.model, rubric, args.rows, args.provider, args.usd_per_million_tokens)
    if rows := read_rows(args.run):
        print(estimate_judge(rows, settings).markdown(settings.model).replace("**", ""), flush=True)
    stop: list[int] = []
    on_term(lambda signum, frame: stop.append(signum))
    return _judge(args.run, settings, stop)


def _judge(run: Path, settings, stop: list[int]) -> int:
    from trainer.errors import EXIT_CANCELLED, EXIT_TIME_LIMIT
    from trainer.evaluation.metrics import judge_text
    from trainer.evaluation.worker import EvalStopped, judge_run
    from trainer.hub import resolve_token
    from trainer.runs.processes import worker_time_limit

    try:
        result = judge_run(
            run,
            settings,
            token=resolve_token(),
            should_stop=lambda: bool(stop),
            on_progress=lambda done, total: print(f"judged {done}/{total} pairs", flush=True),
            time_limit_s=worker_time_limit(),
        )
    except EvalStopped as exc:
        print(f"stopped: {exc}", flush=True)
        return EXIT_TIME_LIMIT if exc.time_limit else EXIT_CANCELLED
    print(judge_text(result["summary"], settings.model))
    print(f"verdicts: {run / EVAL_DIR / 'judge.json'}")
    return 0


def add_benchmarks_command(sub) -> None:
    """The benchmarks command: lm-evaluation-harness tasks on the base and on base + adapter."""
    defaults = BenchmarkSettings()
    parser = sub.add_parser(
        "benchmarks",
        help="standard benchmarks (lm-evaluation-harness) on the base model and on base + adapter",
        description="Run lm-eval tasks (e.g. " + ", ".join(TASKS) + ") with a row limit on the run's base model and "
        "on base + its adapter, and write RUN/eval/benchmarks.json; the card shows them as model-index metadata.",
    )
    parser.add_argument("run", type=Path, help="the run folder of a trained run")
    parser.add_argument("--tasks", default=",".join(defaults.tasks), help="comma-separated lm-eval task names")
    parser.add_argument("--limit", type=int, default=defaults.limit, help=f"rows of each task ({defaults.limit})")
    parser.add_argument("--include-path", help="a folder of your own lm-eval task YAMLs")
    parser.add_argument("--no-chat-template", action="store_true", help="prompts as plain text, not chat turns")


def benchmarks_command(args: argparse.Namespace) -> int:
    """Run the benchmarks; print both sides' results."""
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    include = str(Path(args.include_path).resolve()) if args.include_path else None
    settings = BenchmarkSettings(tasks, args.limit, include, chat_template=not args.no_chat_template)
    return _benchmarks(args.run, settings)


def _benchmarks(run: Path, settings) -> int:
    from trainer.errors import EXIT_TIME_LIMIT
    from trainer.evaluation.benchmarks import benchmark_table, run_benchmarks
    from trainer.evaluation.worker import EvalStopped
    from trainer.runs.processes import worker_time_limit

    try:
        data = run_benchmarks(run, settings, time_limit_s=worker_time_limit())
    except EvalStopped as exc:
        print(f"stopped: {exc}", flush=True)
        return EXIT_TIME_LIMIT
    print("| task | metric | base | tuned | change |\n| --- | --- | ---: | ---: | ---: |")
    for row in benchmark_table(data):
        print("| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |")
    print(f"results: {run / EVAL_DIR / 'benchmarks.json'}")
    return 0


COMMANDS = {"eval": command, "judge": judge_command, "benchmarks": benchmarks_command}
"""The commands this module adds to `python -m trainer`, by name."""
