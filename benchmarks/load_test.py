"""Load test of the Runs tab on a simulated Space: N signed-in users poll their runs once a second while a run trains.

    python benchmarks/load_test.py --users 20 --seconds 60 --out benchmarks/load

It starts the app as a Space runs it (sign-in on, the Space's own HF_TOKEN set), gives each simulated user one
finished run of their own, queues a tiny training run (it starts with the app and trains on the CPU throughout),
then each user, signed in through a real signed session cookie, calls the Runs tab's refresh through the app's API
once a second. It records every call's latency and error, and checks that every answer showed the user their own
run and nothing of anyone else's. Results: load.json and load.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.appserver import running_app  # noqa: E402
from tests.security.conftest import SPACE_ENV, finished_run  # noqa: E402
from tests.security.test_http import session_cookie  # noqa: E402
from trainer.config import load_config, save_yaml  # noqa: E402
from trainer.runs import folder as rf  # noqa: E402
from trainer.runs.queue import JobStore  # noqa: E402


def prepare(data: Path, users: list[str], train: bool = True) -> dict[str, int]:
    """One finished run per user, and a queued tiny training run (of the first user) that trains for minutes."""
    store = JobStore(data / "jobs.sqlite")
    runs = {user: finished_run(store, data, user, f"run-of-{user}").id for user in users}
    if not train:
        return runs
    run_dir = data / "runs" / "training"
    run_dir.mkdir(parents=True)
    cfg = load_config(preset="tiny-demo", overrides=["max_steps=100000", "save_steps=100000", "eval_steps=100000"])
    save_yaml(cfg, run_dir / rf.CONFIG_FILE)
    rf.write_status(run_dir, "queued", owner=users[0], name="training")
    store.create(run_dir, name="training", owner=users[0])
    return runs


def refresh(http, url: str, run_id: int, seen: dict) -> list:
    """One call of the Runs tab's refresh, as the page makes it (the refresh is not queued: one POST, one answer)."""
    response = http.post(f"{url}/gradio_api/run/refresh", json={"data": [str(run_id), seen]})
    response.raise_for_status()
    return response.json()["data"]


def poll(url: str, user: str, own: int, others: list[str], seconds: float, out: dict, offset: float) -> None:
    """One user: refresh their run once a second, keeping what the page keeps (its `seen` state), like a browser.

    Users opened the page at different moments: each starts `offset` seconds into the first second.
    """
    import httpx

    time.sleep(offset)
    seen: dict = {}
    with httpx.Client(headers=session_cookie(user), timeout=30) as http:
        end = time.time() + seconds
        while time.time() < end:
            start = time.perf_counter()
            try:
                outputs = refresh(http, url, own, seen)
                out["latencies"].append(1000 * (time.perf_counter() - start))
                seen = outputs[-1] if isinstance(outputs[-1], dict) else seen
                text = json.dumps(outputs)
                if f"run-of-{user}" not in outputs[0] or any(f"run-of-{other}" in text for other in others):
                    out["wrong"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                out["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - start)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "load")
    parser.add_argument("--no-train", action="store_true", help="no training run in the background (a baseline)")
    args = parser.parse_args()
    users = [f"user{i:02d}" for i in range(args.users)]
    data = Path(tempfile.mkdtemp(prefix="load-test-"))
    runs = prepare(data, users, train=not args.no_train)
    try:
        with running_app(data, {**SPACE_ENV, "HF_HOME": str(data / "hf-home"), "HF_HUB_OFFLINE": "1"}) as url:
            training = data / "runs" / "training"
            for _ in range(0 if args.no_train else 300):  # wait until the run trains (the tiny model is built once)
                if any("loss" in e for e in rf.read_events(training)):
                    break
                time.sleep(1)
            results = {u: {"latencies": [], "errors": [], "wrong": 0} for u in users}
            offsets = random.Random(0).sample(range(1000), len(users))  # ms into the first second, one per user
            threads = [
                threading.Thread(
                    target=poll,
                    args=(url, u, runs[u], [o for o in users if o != u], args.seconds, results[u], offsets[i] / 1000),
                )
                for i, u in enumerate(users)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            steps = [e["step"] for e in rf.read_events(training) if "loss" in e]
    finally:
        for job in JobStore(data / "jobs.sqlite").list():  # workers outlive the server by design: stop ours
            if job.status == "running" and job.pid:
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    latencies = sorted(x for r in results.values() for x in r["latencies"])
    errors = [e for r in results.values() for e in r["errors"]]
    import torch

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "users": args.users,
        "seconds": args.seconds,
        "calls": len(latencies) + len(errors),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "errors": len(errors),
        "error_examples": errors[:5],
        "answers_showing_another_users_run": sum(r["wrong"] for r in results.values()),
        "training_steps_during_the_test": (min(steps), max(steps)) if steps else None,
    }
    import gradio

    report["versions"]["gradio"] = gradio.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(report, indent=2))
    (args.out / "load.md").write_text(
        f"{report['users']} signed-in users, each polling their Runs tab once a second for {report['seconds']:g} s "
        f"while a tiny run trained (steps {report['training_steps_during_the_test']}), on {report['machine']}, "
        f"{report['date']}: {report['calls']} calls, p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, "
        f"max {report['max_ms']} ms, {report['errors']} errors, {report['answers_showing_another_users_run']} "
        "answers showing another user's run.\n"
    )
    print(json.dumps(report, indent=2))
    return 0 if not errors and not report["answers_showing_another_users_run"] else 1


if __name__ == "__main__":
    sys.exit(main())
