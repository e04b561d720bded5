"""Time the offline demo on this machine, per method, so the Train tab's time estimate for it is a measurement.

Runs the offline demo (the tiny-demo preset with LoRA and with QLoRA, tiny-demo-dpo and tiny-demo-grpo: what the
app runs on a CPU) `--repeats` times per method and builds the tiny model once in an empty cache. From each run's log
it reads when the training phase began and ended; the estimator's own token count for the run divided by that time is
the method's tokens/s, and the rest of the run (starting the process, reading the data, loading, evaluating before and
after, the sample replies, saving) is its fixed overhead. The medians go to benchmarks/demo-cpu/<date>.json (read
by `trainer.estimate.plan`) and a Markdown table beside it. Run it on a quiet machine: `uptime` before and after
is recorded.

    python scripts/calibrate_demo.py                # 3 runs per method, and one build
    python scripts/calibrate_demo.py --repeats 1    # quicker
    python scripts/calibrate_demo.py --methods grpo # some methods only (to <date>-<methods>.json; the newest file
                                                    # holding a method is the one read for it)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer.estimate.plan import DEMO_METHODS, DEMO_TIMINGS_DIR  # noqa: E402

DEMO_RUNS = {
    "lora": ("tiny-demo", []),
    "qlora": ("tiny-demo", ["--set", "model.load_in_4bit=true"]),
    "dpo": ("tiny-demo-dpo", []),
    "grpo": ("tiny-demo-grpo", []),
}
"""Each timed method: the preset the app runs for it and the settings on top (one per `DEMO_METHODS`)."""

PHASE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO trainer\.runs\.folder: phase: (.+)$", re.M)


def phase_times(log: str) -> dict[str, float]:
    """{phase: when it began (seconds since the epoch)} from a run's log.txt."""
    found = {}
    for stamp, phase in PHASE_LINE.findall(log):
        found[phase] = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return found


def estimated_tokens(method: str) -> int:
    """The tokens the Train tab's estimate counts for the demo with this method (from the preview, as the tab does:
    the rows' lengths, and a preference preset's pairs)."""
    from trainer import data
    from trainer.config import load_config
    from trainer.estimate import estimate_run, model_shape

    preset, extra = DEMO_RUNS[method]
    cfg = load_config(preset=preset, overrides=extra[1::2])
    tokenizer = data.preview_tokenizer(cfg.model.model_name_or_path)
    if cfg.training.method == "grpo":  # as the Train tab previews a GRPO run: its prompts
        from trainer.data.prompts import preview_prompts

        shown = preview_prompts(cfg, tokenizer)
    else:
        shown = data.preview(cfg.data, tokenizer, cfg.training.max_length)
    shape = model_shape(cfg.model.model_name_or_path)
    pairs = shown.pair_lengths
    estimate = estimate_run(cfg, lengths=shown.measured, total_rows=shown.n_total, shape=shape, pairs=pairs)
    return estimate.time.tokens


def time_build(cache: Path) -> float:
    started = time.time()
    subprocess.run(
        [sys.executable, "-c", "from trainer.tools.tiny import ensure_tiny_model; ensure_tiny_model()"],
        cwd=ROOT,
        env={**os.environ, "PHI3_STUDIO_CACHE": str(cache)},
        check=True,
        capture_output=True,
    )
    return time.time() - started


def time_run(method: str, out: Path, env: dict[str, str]) -> dict[str, float]:
    preset, extra = DEMO_RUNS[method]
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--preset", preset, "--run-dir", str(out), *extra],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.time() - started
    phases = phase_times((out / "log.txt").read_text())
    training = phases["evaluating after"] - phases["training"]
    return {"wall_s": round(wall, 2), "training_s": round(training, 2), "overhead_s": round(wall - training, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--methods", default=",".join(DEMO_METHODS), help="comma-separated, of " + ", ".join(DEMO_METHODS)
    )
    args = parser.parse_args()
    chosen = [m for m in args.methods.split(",") if m in DEMO_METHODS]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        tmp = Path(tmp)
        build_s = time_build(tmp / "cache")
        env = {**os.environ, "PHI3_STUDIO_CACHE": str(tmp / "cache"), "PHI3_STUDIO_DATA_DIR": str(tmp / "data")}
        methods = {}
        for method in chosen:
            runs = [time_run(method, tmp / f"{method}-{i}", env) for i in range(args.repeats)]
            tokens = estimated_tokens(method)
            training = statistics.median(r["training_s"] for r in runs)
            methods[method] = {
                "tokens": tokens,
                "tokens_per_s": round(tokens / training, 1),
                "overhead_s": round(statistics.median(r["overhead_s"] for r in runs), 1),
                "runs": runs,
            }
    import torch
    import transformers
    import trl

    report = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "build_s": round(build_s, 1),
        "methods": methods,
    }
    DEMO_TIMINGS_DIR.mkdir(parents=True, exist_ok=True)
    some = "" if chosen == list(DEMO_METHODS) else "-" + "-".join(chosen)
    path = DEMO_TIMINGS_DIR / f"{report['date']}{some}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# The offline demo's timings, {report['date']}",
        "",
        f"{report['machine']}; {report['versions']}; load average before/after "
        f"{report['load_average_before_after']}. Made by `python scripts/calibrate_demo.py --repeats {args.repeats}"
        f"{' --methods ' + args.methods if some else ''}`.",
        "",
        f"Building the demo model (first time only): **{report['build_s']:.0f} s**.",
        "",
        "| method | runs (wall s) | training s (median) | tokens | tokens/s | rest of the run s (median) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for method, m in methods.items():
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in m["runs"])
        training = statistics.median(r["training_s"] for r in m["runs"])
        figures = f"{training:.1f} | {m['tokens']:,} | {m['tokens_per_s']:.0f} | {m['overhead_s']:.1f}"
        lines.append(f"| {method} | {walls} | {figures} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
