"""The prepared GPU check: every measurement that needs a CUDA GPU, as one command that saves as it goes.

    scripts/gpu_check.sh              # on a bare GPU machine: installs the carried wheels, then runs this
    python -m trainer gpu-check --dry-run --out /tmp/check   # the same steps on the tiny model, on a CPU

Steps, in this order; each step's output is saved the moment it ends, and a failed or timed-out step does not stop
the next one:

1. gpu-tests: `pytest -m gpu tests/gpu` (bf16 LoRA and 4-bit QLoRA training, the batched compare chat, the SDPA
   fallback without flash-attn, the gradient-checkpointing estimate), JUnit XML and log.
2. train-bench: `python -m trainer bench` on the Phi-3-mini architecture: LoRA, DPO and QLoRA, stock TRL baseline vs
   the fast path (and Liger), sequence lengths 2048 and 1024.
3. chat-bench: `python -m trainer bench-chat`: the compare chat batched vs sequential.
4. grpo-bench: `python -m trainer bench-grpo`: a GRPO step's time, its generation share and tokens/s, peak memory.

The folder (default `benchmarks/<date>-<gpu>/`) gets check.json (each step's command, status, seconds) and
README.md (device, driver, versions, date, and each step's tables), ready to commit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.paths import PROJECT_ROOT
from trainer.versions import versions_line


@dataclass(frozen=True)
class Step:
    """One step of the check: a command with a time limit, and the files it writes under the output folder."""

    name: str
    argv: list[str]
    timeout_s: int
    report: str  # the Markdown file the step writes ("" for the tests: their log tail is reported)


def steps(out: Path, dry_run: bool) -> list[Step]:
    """The check's steps. A dry run collects the GPU tests (they fail by design without CUDA) and runs both
    benchmarks on the tiny model, so the script, the wheels and the benchmarks are proven on a CPU."""
    python = sys.executable
    tests = [python, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider"]
    tests += ["--collect-only"] if dry_run else [f"--junitxml={out / 'gpu-tests.xml'}"]
    # DPO before QLoRA: the step writes after each configuration, so a cut at its time limit keeps LoRA and DPO
    bench = [python, "-m", "trainer", "bench", "--methods", "lora,dpo,qlora", "--out", str(out / "train")]
    chat = [python, "-m", "trainer", "bench-chat", "--out", str(out / "chat")]
    grpo = [python, "-m", "trainer", "bench-grpo", "--out", str(out / "grpo")]
    if dry_run:
        bench += ["--tiny", "--seq-lens", "96", "--steps", "6", "--warmup-steps", "2", "--liger"]
        chat += ["--tiny", "--max-new-tokens", "24", "--repeats", "2"]
        grpo += ["--tiny", "--steps", "3", "--warmup-steps", "1", "--completion-len", "16"]
    else:
        bench += ["--seq-lens", "2048,1024", "--steps", "50", "--warmup-steps", "8", "--liger"]
        grpo += ["--steps", "6", "--warmup-steps", "1", "--completion-len", "256"]
    return [
        Step("gpu-tests", tests, 160, ""),
        Step("train-bench", bench, 250, "train/bench.md"),  # writes after each configuration: a cut keeps figures
        Step("chat-bench", chat, 60, "chat/chat.md"),
        Step("grpo-bench", grpo, 90, "grpo/grpo.md"),
    ]


def default_out(device: str, day: str | None = None) -> Path:
    """benchmarks/<date>-<gpu> (e.g. benchmarks/2026-12-01-h200), or <date>-cpu-dry-run for a dry run."""
    words = [w for w in re.split(r"[^a-z0-9]+", device.lower()) if w and w not in ("nvidia", "tesla")]
    gpu = next((w for w in words if re.fullmatch(r"[a-z]+\d+[a-z]*", w)), "-".join(words[:2]) or "gpu")
    return PROJECT_ROOT / "benchmarks" / f"{day or time.strftime('%Y-%m-%d')}-{gpu}"


def run_check(out: Path, dry_run: bool, mirror: Path | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """Run the steps, saving check.json and README.md in `out` after each (and copying `out` to `mirror`).

    Returns:
        The check's record: environment, and each step's command, status (passed/failed/timed out), seconds.
    """
    from trainer.tools.bench import environment

    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "dry_run": dry_run,
        "environment": environment(),
        "steps": [],
    }
    for step in steps(out, dry_run):
        if only and step.name not in only:
            continue
        start = time.time()
        log = out / f"{step.name}.log"
        with log.open("w") as sink:
            try:
                code = subprocess.run(
                    step.argv, cwd=PROJECT_ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=step.timeout_s
                ).returncode
                status = "passed" if code == 0 else f"failed (exit {code})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {step.timeout_s} s"
        record["steps"].append(
            {
                "name": step.name,
                "command": " ".join(step.argv),
                "status": status,
                "seconds": round(time.time() - start),
            }
        )
        _save(out, record, mirror)
    return record


def _save(out: Path, record: dict[str, Any], mirror: Path | None) -> None:
    """Write check.json and README.md; copy the folder to `mirror` when given (the device tool's $OUT)."""
    import shutil

    (out / "check.json").write_text(json.dumps(record, indent=2))
    (out / "README.md").write_text(summary(out, record))
    if mirror is not None:
        shutil.copytree(out, mirror / out.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("random-adapter"))


def summary(out: Path, record: dict[str, Any]) -> str:
    """README.md of the check: where and when, each step's status, then each step's own tables (or log tail)."""
    env = record["environment"]
    versions = versions_line(env)  # every library it ran with
    lines = [
        f"# GPU check{' (dry run on the tiny model)' if record['dry_run'] else ''}, {record['date']}",
        "",
        f"Device: {env['device']}"
        + (f" · driver {env['driver']} · CUDA {env['cuda']}" if env.get("driver") else "")
        + f" · Python {env['python']} · {versions}",
        "",
        "| step | status | seconds |",
        "| --- | --- | ---: |",
        *(f"| {s['name']} | {s['status']} | {s['seconds']} |" for s in record["steps"]),
    ]
    reports = {step.name: step.report for step in steps(out, record["dry_run"])}
    for s in record["steps"]:
        lines += ["", f"## {s['name']}", "", f"`{s['command'].replace(str(PROJECT_ROOT) + '/', '')}`", ""]
        report = out / reports[s["name"]] if reports.get(s["name"]) else None
        if report is not None and report.exists():
            lines.append(report.read_text().rstrip())
        else:
            tail = (out / f"{s['name']}.log").read_text(errors="replace").strip().splitlines()[-15:]
            lines += ["```", *tail, "```"]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `gpu-check` command's options."""
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the tiny model, on a CPU")
    parser.add_argument("--out", type=Path, help="output folder (default: benchmarks/<date>-<gpu>)")
    parser.add_argument("--mirror", type=Path, help="also copy the folder here after each step (e.g. $OUT)")
    parser.add_argument("--only", help="comma-separated step names (gpu-tests, train-bench, chat-bench)")


def cmd_gpu_check(args: argparse.Namespace) -> int:
    """`python -m trainer gpu-check`: run the check; exit 0 only when every step passed (2: no GPU, no --dry-run)."""
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    out = args.out or default_out("cpu-dry-run" if args.dry_run else torch.cuda.get_device_name(0))
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    record = run_check(out, args.dry_run, args.mirror, only)
    print((out / "README.md").read_text(), end="")
    return 0 if all(s["status"] == "passed" for s in record["steps"]) else 1
