"""The prepared GPU check (trainer.tools.gpu_check): the steps it runs, where it writes, that it saves as it goes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trainer.tools.gpu_check as gc
from trainer.paths import PROJECT_ROOT


def test_a_real_check_runs_the_gpu_tests_then_the_benchmarks_on_phi3_mini(tmp_path):
    tests, train, chat, grpo = gc.steps(tmp_path, dry_run=False)
    assert [tests.name, train.name, chat.name, grpo.name] == ["gpu-tests", "train-bench", "chat-bench", "grpo-bench"]
    assert " -m gpu tests/gpu " in " ".join(tests.argv) and f"--junitxml={tmp_path / 'gpu-tests.xml'}" in tests.argv
    assert all("--tiny" not in step.argv for step in (train, chat, grpo))  # the Phi-3-mini architecture
    assert grpo.argv[grpo.argv.index("--completion-len") + 1] == "256" and grpo.report == "grpo/grpo.md"
    assert train.argv[train.argv.index("--seq-lens") + 1] == "2048,1024"
    assert train.argv[train.argv.index("--methods") + 1] == "lora,dpo,qlora" and "--liger" in train.argv
    assert int(train.argv[train.argv.index("--steps") + 1]) >= 50  # loss parity is judged over the first 50 steps
    assert sum(s.timeout_s for s in (tests, train, chat, grpo)) <= 9.5 * 60  # within one 10-minute device call


def test_a_dry_run_collects_the_gpu_tests_and_benchmarks_the_tiny_model(tmp_path):
    tests, train, chat, grpo = gc.steps(tmp_path, dry_run=True)
    assert "--collect-only" in tests.argv  # they fail by design without CUDA
    assert all("--tiny" in step.argv for step in (train, chat, grpo))


@pytest.mark.parametrize(
    ("device", "folder"),
    [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA A10G", "a10g"), ("cpu-dry-run", "cpu-dry")],
)
def test_results_go_to_benchmarks_date_gpu(device, folder):
    assert gc.default_out(device, "2026-12-01") == PROJECT_ROOT / "benchmarks" / f"2026-12-01-{folder}"


def test_each_step_is_saved_as_it_ends_and_a_failed_or_slow_step_does_not_stop_the_next(tmp_path, monkeypatch):
    python = sys.executable
    fake = [
        gc.Step("gpu-tests", [python, "-c", "print('5 passed')"], 30, ""),
        gc.Step("train-bench", [python, "-c", "import time; print('starting', flush=True); time.sleep(30)"], 1, ""),
        gc.Step("chat-bench", [python, "-c", "import sys; sys.exit('no GPU')"], 30, ""),
    ]
    seen: list[list[str]] = []

    def saved(out, record, mirror):
        real_save(out, record, mirror)
        seen.append([s["name"] for s in json.loads((out / "check.json").read_text())["steps"]])

    real_save = gc._save
    monkeypatch.setattr(gc, "steps", lambda out, dry_run: fake)
    monkeypatch.setattr(gc, "_save", saved)
    record = gc.run_check(tmp_path / "out", dry_run=True, mirror=tmp_path / "mirror")
    assert seen == [["gpu-tests"], ["gpu-tests", "train-bench"], ["gpu-tests", "train-bench", "chat-bench"]]
    assert [s["status"] for s in record["steps"]] == ["passed", "timed out after 1 s", "failed (exit 1)"]
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| train-bench | timed out after 1 s |" in readme and "starting" in readme and "no GPU" in readme
    assert "Device: " in readme and "torch " in readme
    assert (tmp_path / "mirror" / "out" / "check.json").read_text() == (tmp_path / "out" / "check.json").read_text()


def test_a_step_report_is_copied_into_the_summary(tmp_path, monkeypatch):
    python = sys.executable
    table = "| method | speedup |\n| lora | 2.30x |"
    write = f"import pathlib; p = pathlib.Path({str(tmp_path / 'out' / 'train')!r}); p.mkdir(); "
    write += f"(p / 'bench.md').write_text({table!r})"
    monkeypatch.setattr(
        gc, "steps", lambda out, dry_run: [gc.Step("train-bench", [python, "-c", write], 30, "train/bench.md")]
    )
    gc.run_check(tmp_path / "out", dry_run=False)
    assert table in (tmp_path / "out" / "README.md").read_text()


def test_without_a_gpu_the_real_check_refuses_and_points_to_the_dry_run(monkeypatch, capsys):
    import torch

    from trainer.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_the_scripts_install_the_wheels_offline_into_their_own_folder():
    check = (PROJECT_ROOT / "scripts" / "gpu_check.sh").read_text()
    assert "--no-index --no-deps" in check and '--target "$site"' in check
    assert 'PYTHONPATH="$site:' in check and "carried wheel" in check
    fetch = (PROJECT_ROOT / "scripts" / "fetch_gpu_wheels.sh").read_text()
    assert "limit_mib=60" in fetch and "--python-version" in fetch
    assert "requirements.txt" in fetch and "importlib.metadata" not in fetch  # the lock's versions, not this venv's
    ignored = subprocess.run(["git", "check-ignore", "-q", ".whl/trl.whl"], cwd=PROJECT_ROOT, check=False)
    assert ignored.returncode == 0  # the wheels are never committed
