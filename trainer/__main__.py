"""Command line: `python -m trainer {train,data,demo,config} ...`.

    # the offline demo: build the tiny Phi-3, teach it a pirate persona on the CPU, show before/after
    python -m trainer demo --out runs/demo

    # train from a preset, a YAML file and overrides (later wins)
    python -m trainer train --preset lora --set dataset_name=user/my-chat-data --set learning_rate=1e-4
    python -m trainer train --config examples/cookbook-lora-notebook.yaml --num-train-epochs 1

    # look at a dataset the way training will see it (the same data flags as train)
    python -m trainer data inspect examples/pirate_alpaca.json
    python -m trainer data inspect my.csv --map question=user --map answer=assistant
    python -m trainer data inspect --preset cookbook-sample-finetune --max-rows 500

    # print a preset as YAML (the keys that differ, or --full)
    python -m trainer config show cookbook-sample-finetune

Bad input exits with code 2 and a message that names the problem and the fix.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from trainer import distributed as dist
from trainer.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    diff_dict,
    iter_fields,
    load_config,
    parse_scalar,
    preset_config,
)
from trainer.config.hints import MAP_FLAG, render_hints
from trainer.console import print_event
from trainer.errors import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_TIME_LIMIT
from trainer.evaluation import cli as eval_cli
from trainer.gguf import cli as gguf_cli
from trainer.hub import cli as hub_cli
from trainer.methods import result_summary
from trainer.noise import silence_known_noise
from trainer.runs import folder as rf
from trainer.tools.sweep import add_arguments as sweep_arguments

WORKER_ENV = "PHI3_STUDIO_WORKER"  # set by trainer.runs.queue: the console is the run's log.txt


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports, so --help is instant)."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Phi-3 Fine-Tune Studio: fine-tune Phi-3 with LoRA/QLoRA (TRL + PEFT).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `python -m trainer COMMAND --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="fine-tune as configured (preset < --config file < flags < --set)",
        description="Fine-tune Phi-3 with LoRA/QLoRA. Settings resolve as: defaults, then --preset, then the "
        "--config YAML, then the per-setting flags below, then --set key=value.",
    )
    _add_config_sources(train)
    train.add_argument("--run-dir", type=Path, help="run folder (default: a new folder under the data dir)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    _add_config_flags(train)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser(
        "inspect",
        help="detect the format, count rows and problems, preview rendered chat and token lengths",
        description="Load a dataset as training would (Hub ID or local .jsonl/.json/.csv/.parquet), detect its "
        "format, normalise it to chat messages and show the first rows rendered with the Phi-3 chat template. "
        "It takes the same data settings as train (a preset, a config file, the flags below, --set, --map).",
    )
    inspect.add_argument("source", nargs="?", help="Hub dataset ID or local file path (sets --dataset-name)")
    _add_config_sources(inspect)
    _add_config_flags(inspect, keys=[s.key for s in iter_fields() if s.section == "data"] + ["training.max_length"])
    inspect.add_argument("--rows", type=int, default=3, help="rows to show rendered (default: 3)")

    demo = sub.add_parser(
        "demo",
        help="offline end-to-end demo on the CPU with a tiny Phi-3 (about 25 s on 2 cores; the first run on a "
        "machine also builds the tiny model, about a minute more)",
        description="Build (or reuse) the tiny Phi-3 with the real tokenizer, fine-tune it with LoRA on the "
        "bundled pirate-persona dataset, and print the eval loss and sample replies before and after.",
    )
    demo.add_argument("--out", type=Path, help="run folder to write (default: a new folder under the data dir)")
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a tiny-demo setting, e.g. --set max_steps=30",
    )

    bench = sub.add_parser(
        "bench",
        help="speed/memory benchmark: TRL baseline vs the optimised path",
        description="Train the same LoRA adapter with the stock TRL baseline and with the optimised path, and "
        "report non-padding tokens/s, step time, peak GPU memory, MFU and per-step loss (bench.json, bench.md).",
    )
    bench.add_argument("--tiny", action="store_true", help="the tiny Phi-3 on the CPU (for tests)")
    bench.add_argument(
        "--methods", default="lora,qlora", help="comma-separated: lora, qlora, dpo (default: lora,qlora)"
    )
    bench.add_argument("--seq-lens", default="2048,1024", help="comma-separated sequence lengths")
    bench.add_argument("--steps", type=int, default=60, help="optimiser steps per configuration (default: 60)")
    bench.add_argument("--warmup-steps", type=int, default=10, help="steps excluded from the speed figures")
    bench.add_argument("--batch-size", type=int, default=4, help="rows per step (default: 4)")
    bench.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for bench.json and bench.md")
    bench.add_argument("--liger", action="store_true", help="also measure the optimised path with Liger kernels")
    from trainer.tools.gpu_check import add_arguments as gpu_check_arguments

    gpu_check_arguments(
        sub.add_parser(
            "gpu-check",
            help="the prepared GPU check: GPU tests, training and chat benchmarks, saved to benchmarks/",
            description="Run the GPU tests and both benchmarks on the Phi-3-mini architecture, saving each step's "
            "result as it ends (--dry-run: the same steps on the tiny model, on a CPU).",
        )
    )
    eval_cli.add_command(sub)
    gguf_cli.add_command(sub)
    bench_chat = sub.add_parser(
        "bench-chat",
        help="compare-chat benchmark: one mixed batch vs two sequential generates",
        description="Time to first token of both panes and tokens/s of the side-by-side chat (chat.json, chat.md).",
    )
    bench_chat.add_argument("--tiny", action="store_true", help="the tiny Phi-3 on the CPU (for tests)")
    bench_chat.add_argument("--max-new-tokens", type=int, default=128, help="tokens per pane (default: 128)")
    bench_chat.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default: 3)")
    bench_chat.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for chat.json and chat.md")
    from trainer.tools.bench_grpo import add_arguments as grpo_bench_arguments

    grpo_bench_arguments(sub.add_parser("bench-grpo", help="GRPO step time, generation tokens/s and memory"))

    chat = sub.add_parser(
        "chat",
        help="the base model and a tuned adapter answer the same prompt (one copy of the base in memory)",
        description="Load the base model once, attach the adapter, and print the base reply and the tuned reply to "
        "the same prompt (greedy by default, stopping at <|end|>).",
    )
    chat.add_argument("--adapter", required=True, help="a run folder, an adapter folder, or an adapter repo ID")
    chat.add_argument("--base", help="base model (default: the run's, or the adapter's base_model_name_or_path)")
    chat.add_argument("--prompt", required=True, help="the user message")
    chat.add_argument("--max-new-tokens", type=int, default=128, help="tokens per reply (default: 128)")
    chat.add_argument("--sample", action="store_true", help="sample (temperature 0.7, top-p 0.9) instead of greedy")

    hub_cli.add_command(sub)
    sweep = sub.add_parser(
        "sweep",
        help="one run per combination of a few settings' values, trained one after another, the best marked",
        description="Train one run per combination of the --grid values (or --sample of them), each a normal run in "
        "its own folder, named after its values; then print them with the best (lowest eval loss) marked.",
    )
    _add_config_sources(sweep)
    sweep_arguments(sweep)
    _add_config_flags(sweep)

    cfg = sub.add_parser("config", help="presets and config files").add_subparsers(
        dest="config_command", required=True
    )
    show = cfg.add_parser("show", help="print a preset as YAML", description="Print a preset as YAML.")
    show.add_argument("preset", choices=list(PRESETS))
    show.add_argument("--full", action="store_true", help="every setting, not only those that differ from defaults")
    cfg.add_parser("list", help="list the presets with a line each")
    return parser


def _add_config_sources(parser: argparse.ArgumentParser) -> None:
    """--config, --preset, --set and --map: where settings come from besides the per-setting flags."""
    parser.add_argument("--config", type=Path, help="YAML config file (partial is fine)")
    parser.add_argument("--preset", choices=list(PRESETS), help="start from a named preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )
    parser.add_argument(
        MAP_FLAG,
        dest="mapping",
        action="append",
        default=[],
        metavar="COLUMN=ROLE",
        help="map a dataset column to a chat role (system/user/assistant), repeatable; sets data.column_mapping",
    )


def _add_config_flags(parser: argparse.ArgumentParser, keys: list[str] | None = None) -> None:
    """One flag per RunConfig setting (e.g. --learning-rate), generated from the dataclass metadata; on a Space, none
    for a reward module (Python code: local runs only)."""
    from trainer.runs.access import space_mode

    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in iter_fields():
        if keys is not None and spec.key not in keys or (spec.key == "grpo.reward_module" and space_mode()):
            continue
        group = groups.setdefault(spec.section, parser.add_argument_group(f"{spec.section} settings"))
        bounds = [f"{k} {spec.meta[k]}" for k in ("min", "max") if spec.meta.get(k) is not None]
        choices = f" Choices: {', '.join(map(str, spec.choices))}." if spec.choices else ""
        extra = f" ({', '.join(bounds)})" if bounds else ""
        flag_only = {"nargs": "?", "const": "true"} if spec.type is bool else {}  # `--allow-malformed` alone: true
        group.add_argument(
            spec.flag,
            dest=f"cfg__{spec.key}",
            type=parse_scalar,  # read once, as --set and YAML read a value; handed on as that value
            metavar="VALUE",
            **flag_only,
            help=f"{spec.meta['help']}{choices}{extra} Default: {spec.default!r}.".replace("%", "%%"),
        )


def _config_from_args(args: argparse.Namespace, preset: str | None = None) -> RunConfig:
    """The run config: defaults < preset < --config file < per-setting flags and --map < --set."""
    values = {k[5:]: v for k, v in vars(args).items() if k.startswith("cfg__") and v is not None}
    if getattr(args, "source", None):
        values["data.dataset_name"] = args.source
    if mapping := getattr(args, "mapping", None):
        for item in mapping:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise ConfigError([f"{MAP_FLAG} {item}: expected COLUMN=ROLE, e.g. {MAP_FLAG} answer=assistant."])
        pairs = (item.split("=", 1) for item in mapping)
        values["data.column_mapping"] = {column.strip(): role.strip() for column, role in pairs}
    preset = preset or getattr(args, "preset", None)
    return load_config(getattr(args, "config", None), preset, args.overrides, values)


def cmd_train(args: argparse.Namespace) -> int:
    """`train`: resolve the config, fine-tune, print where the adapter is."""
    from trainer.hub import check_push_access, resolve_token
    from trainer.runs.access import Caller, reward_module_problem
    from trainer.runs.processes import on_term, worker_time_limit
    from trainer.training import RunCancelled, RunTimeLimit, request_stop, run

    if os.environ.get(WORKER_ENV):
        os.nice(10)  # a web app's worker: the server answering its users comes first on the CPU

    if args.resume and args.run_dir is None:
        raise ConfigError(["--resume: needs --run-dir, the folder of the run to continue."])
    if args.resume and args.config is None and (args.run_dir / rf.CONFIG_FILE).exists():
        args.config = args.run_dir / rf.CONFIG_FILE
    if args.run_dir is not None and not args.resume and _holds_a_run(args.run_dir):
        raise ConfigError(
            [f"--run-dir: {args.run_dir} already holds a run. Add --resume to continue it, or pick a new folder."]
        )
    config = _config_from_args(args)
    config.run.name = config.display_name(args.preset)
    if problem := reward_module_problem(Caller(None, None, local=True), config.grpo.reward_module):  # a Space: no
        raise ConfigError([problem])
    token = resolve_token()
    if config.hub.repo_id:  # as the web app does: a long run never fails at push time for a reason knowable now
        check_push_access(config.hub.repo_id, token)
    on_term(lambda signum, frame: request_stop())  # Cancel: checkpoint, then exit 3 (one held since start too)
    limit = worker_time_limit()
    try:
        result = run(
            config, on_event=print_event, run_dir=args.run_dir, resume=args.resume, token=token, time_limit_s=limit
        )
    except RunCancelled as exc:
        if not dist.is_main():  # a non-zero exit would make torchrun stop the main process while it records the stop
            return 0
        print(f"{'stopped' if isinstance(exc, RunTimeLimit) else 'cancelled'}: {exc}", flush=True)
        return EXIT_TIME_LIMIT if isinstance(exc, RunTimeLimit) else EXIT_CANCELLED
    if not dist.is_main():  # under torchrun: the main process reports and pushes
        return 0
    print(f"adapter saved to {result.adapter_dir}")
    if config.hub.repo_id and (
        code := hub_cli.push_and_report(result.run_dir, config.hub.repo_id, config.hub.private, config.hub.push_merged)
    ):
        return code
    for line in result_summary(result.run_dir):  # the eval loss, and a preference method's accuracy and margin
        print(line)
    return 0


def _holds_a_run(run_dir: Path) -> bool:
    """True when training already happened in the folder (a fresh job folder holds only its config and status)."""
    return any((run_dir / name).exists() for name in (rf.EVENTS_FILE, rf.CHECKPOINTS_DIR, rf.ADAPTER_DIR))


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep`: check every run of the sweep, then train them one after another and print the table."""
    from trainer.sweeps import parse_grid, sweep_configs
    from trainer.tools.sweep import run_sweep, summary

    base = _config_from_args(args)
    name = base.run.name.strip() or base.display_name(args.preset)
    # every run checked first: one ConfigError with all their problems
    configs = sweep_configs(base, parse_grid(args.axes), name, args.sample, args.sample_seed)
    print(f"sweep {name!r}: {len(configs)} runs", flush=True)
    print(summary(run_sweep(configs, name)))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """`chat`: base vs tuned replies to one prompt, labelled."""
    from trainer.chat import ChatEngine, GenerationSettings
    from trainer.hub import resolve_token

    engine = ChatEngine.from_source(args.adapter, args.base, token=resolve_token())
    messages = [{"role": "user", "content": args.prompt}]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, greedy=not args.sample)
    base_reply, tuned_reply = engine.reply_pair(messages, messages, settings)
    print(f"base  ({engine.model_cfg.model_name_or_path}): {base_reply}")
    print(f"tuned ({args.adapter}): {tuned_reply}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo`: tiny Phi-3 + pirate persona, end to end on the CPU."""
    from trainer.training import run

    args.config = None
    config = _config_from_args(args, preset="tiny-demo")
    config.run.name = config.display_name("tiny-demo")
    print(
        "Offline demo: a tiny random Phi-3 (real Phi-3 tokenizer), warmed up on plain chat, learns a pirate persona."
    )
    result = run(config, on_event=print_event, run_dir=args.out)
    drop = rf.loss_drop(result.eval_loss_before, result.eval_loss_after)
    print(
        f"\nheld-out eval loss: {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}"
        + (f" ({rf.loss_change(drop)})" if drop is not None else "")
    )
    for sample in result.samples:
        print(f"\nuser:   {sample['prompt']}\nbefore: {sample['before']}\nafter:  {sample['after']}")
    print(f"\nadapter: {result.adapter_dir}")
    return 0


def cmd_data_inspect(args: argparse.Namespace) -> int:
    """`data inspect`: what training would see of a dataset."""
    from trainer import data

    cfg = _config_from_args(args)
    print(
        data.format_preview(
            data.preview(
                cfg.data,
                data.preview_tokenizer(cfg.model.model_name_or_path),
                max_length=cfg.training.max_length,
                n=args.rows,
            )
        )
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: baseline vs optimised, written to --out."""
    from trainer.tools.bench import METHODS, run_bench

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if bad := [m for m in methods if m not in METHODS]:
        raise ConfigError([f"--methods: {', '.join(bad)} unknown. Use some of {', '.join(METHODS)}."])
    if args.warmup_steps >= args.steps:
        raise ConfigError(["--warmup-steps: must be smaller than --steps so some steps are measured."])
    seq_lens = [int(s) for s in args.seq_lens.split(",") if s.strip()]
    report = run_bench(
        args.tiny, methods, seq_lens, args.steps, args.warmup_steps, args.batch_size, args.out, liger=args.liger
    )
    print((args.out / "bench.md").read_text(), end="")
    return 0 if report["results"] and not any(r["error"] for r in report["results"]) else 1


def cmd_gpu_check(args: argparse.Namespace) -> int:
    """`gpu-check`: see trainer.tools.gpu_check."""
    from trainer.tools.gpu_check import cmd_gpu_check as run

    return run(args)


def cmd_bench_chat(args: argparse.Namespace) -> int:
    """`bench-chat`: the compare chat, batched vs sequential, written to --out."""
    from trainer.tools.bench_chat import run_chat_bench

    run_chat_bench(args.tiny, args.out, args.max_new_tokens, args.repeats)
    print((args.out / "chat.md").read_text(), end="")
    return 0


def cmd_bench_grpo(args: argparse.Namespace) -> int:
    """`bench-grpo`: see trainer.tools.bench_grpo."""
    from trainer.tools.bench_grpo import cmd_bench_grpo as run

    return run(args)


def cmd_config(args: argparse.Namespace) -> int:
    """`config show|list`."""
    import yaml

    if args.config_command == "list":
        for name, (description, _) in PRESETS.items():
            print(f"{name:26} {description}")
        return 0
    cfg = preset_config(args.preset)
    print(f"# preset {args.preset}: {PRESETS[args.preset][0]}")
    print(cfg.to_yaml() if args.full else yaml.safe_dump(diff_dict(cfg), sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = make_parser().parse_args(argv)
    silence_known_noise()
    console = logging.StreamHandler()
    # details go to the run's log.txt; the console shows progress lines (in a worker, the console IS log.txt)
    console.setLevel(logging.CRITICAL if os.environ.get(WORKER_ENV) else logging.WARNING)
    logging.basicConfig(handlers=[console], format="%(levelname)s %(name)s: %(message)s")
    handlers = {
        "train": cmd_train,
        **eval_cli.COMMANDS,  # eval, judge, benchmarks
        **gguf_cli.COMMANDS,  # export-gguf
        "demo": cmd_demo,
        "config": cmd_config,
        "bench": cmd_bench,
        "bench-chat": cmd_bench_chat,
        "bench-grpo": cmd_bench_grpo,
        "gpu-check": cmd_gpu_check,
        "push": hub_cli.command,
        "sweep": cmd_sweep,
        "chat": cmd_chat,
    }
    handler = cmd_data_inspect if args.command == "data" else handlers[args.command]
    code = 1  # an uncaught error
    try:
        code = handler(args)
    except Exception as exc:
        if not _is_bad_input(exc):
            raise
        # a worker's console is its log.txt, read back into the web app: leave the hints for the app to word
        print(f"error: {exc if os.environ.get(WORKER_ENV) else render_hints(str(exc), 'cli')}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    finally:
        jobs = {**dict.fromkeys(eval_cli.COMMANDS, rf.EVAL_DIR), "export-gguf": rf.GGUF_DIR}  # a job on a run
        folder = "run_dir" if args.command == "train" else "run" if args.command in jobs else ""  # a worker's
        if os.environ.get(WORKER_ENV) and getattr(args, folder, None) is not None and dist.is_main():
            # how this worker ended, for a server that restarts while it is gone (see RunQueue.recover)
            rf.write_exit(getattr(args, folder) / jobs.get(args.command, ""), code)
    return code


def _is_bad_input(exc: BaseException) -> bool:
    """Config and data problems found before training starts (not bugs, which keep their traceback)."""
    from trainer.chat import ChatError
    from trainer.data import DataError
    from trainer.hub import HubError

    return isinstance(exc, (ConfigError, DataError, HubError, ChatError))


if __name__ == "__main__":
    sys.exit(main())
