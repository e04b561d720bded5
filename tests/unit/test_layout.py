"""The package's shape: rooms of one job each, under 500 lines, imports that only go down, no copied blocks.

The README's Layout section is the module map; a test keeps it true to the tree.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from trainer.paths import PACKAGE_DIR, PROJECT_ROOT

MAX_LINES = 500
MODULES = {
    ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__"): path
    for path in sorted(PACKAGE_DIR.rglob("*.py"))
}

# The floors, lowest first: a module may import only from floors below its own (or inside its own package).
FLOORS = [
    ["trainer.paths", "trainer.errors", "trainer.online", "trainer.noise", "trainer.distributed"],
    ["trainer.hubkernels", "trainer.versions", "trainer.runs.state"],
    ["trainer", "trainer.phi3", "trainer.runs.folder"],  # the package installs the Hub kernels policy on import
    ["trainer.config", "trainer.runs.store", "trainer.runs.processes", "trainer.family"],
    ["trainer.data", "trainer.tools.tiny", "trainer.evaluation.metrics", "trainer.trackers", "trainer.sweeps"],
    ["trainer.modeling", "trainer.samples", "trainer.estimate"],
    ["trainer.hub", "trainer.runs.remote"],
    ["trainer.callbacks", "trainer.methods", "trainer.console", "trainer.gguf"],  # methods: each method's TRL trainer
    ["trainer.trl_export", "trainer.grpo"],  # the run as a config for stock `trl sft` / `trl dpo` / `trl kto`; GRPO
    ["trainer.training", "trainer.chat", "trainer.runs.access"],
    ["trainer.preflight", "trainer.runs.queue", "trainer.tools.bench", "trainer.evaluation"],
    # runs: the service, over its parts
    [
        "trainer.runs",
        "trainer.tools.sweep",
        "trainer.tools.bench_chat",
        "trainer.tools.bench_grpo",
        "trainer.tools.gpu_check",
    ],
    ["trainer.ui", "trainer.__main__"],
]


def _room(module: str) -> str:
    """The floor entry a module belongs to (a package's modules belong to the package)."""
    rooms = [room for floor in FLOORS for room in floor if module == room or module.startswith(room + ".")]
    return max(rooms, key=len) if module != "trainer" else "trainer"


def _floor(module: str) -> int:
    room = _room(module)
    return next(i for i, floor in enumerate(FLOORS) if room in floor)


def _imports(module: str, path: Path) -> set[str]:
    """The trainer modules a module imports, at the top or inside functions (a lazy import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("trainer")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainer"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {name for name in found if name != module and name in MODULES}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_500_lines(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by job"


def test_every_module_has_a_floor():
    assert all(_room(module) for module in MODULES)


def test_imports_only_go_down():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _room(module) != _room(target) and _floor(target) >= _floor(module)
    ]
    assert upward == []


def test_no_import_cycles():
    cycles = []
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state[target] == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif state[target] == 0:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if state[module] == 0:
            visit(module, [module])
    assert cycles == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The graph checks are real: a made-up upward edge and cycle are found."""
    GRAPH["trainer.config.schema"].add("trainer.ui.app")
    try:
        with pytest.raises(AssertionError):
            test_imports_only_go_down()
        with pytest.raises(AssertionError):
            test_no_import_cycles()
    finally:
        GRAPH["trainer.config.schema"].discard("trainer.ui.app")


def test_the_ui_is_a_package_of_tabs_that_build_and_wire():
    tabs = sorted(p.stem for p in (PACKAGE_DIR / "ui").glob("*_tab.py"))
    assert len(tabs) >= 3
    for tab in tabs:
        tree = ast.parse((PACKAGE_DIR / "ui" / f"{tab}.py").read_text(encoding="utf-8"))
        build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build")
        assert build.args.args[0].arg == "ctx"  # given the one context object
        wired = {n.func.attr for n in ast.walk(build) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert wired & {"click", "change", "tick", "select", "submit", "upload", "load"}, f"{tab} wires no event"


@pytest.mark.slow  # a Python process importing the app (seconds): the full suite, not the edit loop
def test_the_web_app_imports_no_torch():
    heavy = "('torch', 'transformers', 'trl', 'peft')"
    code = f"import sys, trainer.ui; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_readme_layout_is_the_module_map():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"^(trainer/\S+)", layout, re.MULTILINE))
    files = {str(path.relative_to(PROJECT_ROOT)) for path in MODULES.values()}
    files |= {str(p.relative_to(PROJECT_ROOT)) for p in PACKAGE_DIR.glob("*/*.md")}  # templates, not assets
    documented = {name for name in named if not name.endswith("/")}
    missing = {f for f in files if f not in documented and not f.endswith("__init__.py")}
    assert missing == set(), "add these to the README's Layout section"
    assert {name for name in documented if not (PROJECT_ROOT / name).exists()} == set(), "the Layout names a gone file"


def _blocks(path: Path, size: int = 6):
    """Every run of `size` consecutive non-blank lines, stripped (so indentation does not hide a copy)."""
    lines = [(n, line.strip()) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    lines = [(n, text) for n, text in lines if text and not text.startswith("#")]
    for i in range(len(lines) - size + 1):
        window = lines[i : i + size]
        if sum(len(text) > 12 for _, text in window) >= size - 1:  # skip runs of brackets and short closers
            yield window[0][0], "\n".join(text for _, text in window)


def test_no_block_of_six_lines_is_repeated():
    seen: dict[str, tuple[str, int]] = {}
    repeats = []
    for module, path in MODULES.items():
        for line, block in _blocks(path):
            if block in seen and seen[block] != (module, line):
                repeats.append(f"{module}:{line} repeats {seen[block][0]}:{seen[block][1]}")
            seen.setdefault(block, (module, line))
    assert repeats == []


RUN_INTERNALS = ("trainer.runs.", "trainer.preflight")
"""What the web app reaches only through the run service (`trainer.runs.service`)."""


def test_the_web_app_reaches_a_run_only_through_the_service():
    """ui/ imports nothing of a run's life but `trainer.runs.service`, and no tab imports another tab."""
    ui = {module: targets for module, targets in GRAPH.items() if module.startswith("trainer.ui")}
    inside = [
        f"{module} -> {target}"
        for module, targets in ui.items()
        for target in targets
        if target.startswith(RUN_INTERNALS) and target != "trainer.runs.service"
    ]
    assert inside == []
    tabs = [module for module in ui if module.endswith("_tab")]
    assert len(tabs) >= 3 and [f"{m} -> {t}" for m in tabs for t in ui[m] if t in tabs] == []


def test_the_tabs_handlers_are_public_methods_and_tests_call_them_by_name():
    """No test digs a handler out of the built page (Gradio's function table, a closure's cells)."""
    digging = ("blocks" + ".fns", "__clo" + "sure__", "co_free" + "vars")
    found = [
        f"{path.relative_to(PROJECT_ROOT)}: {word}"
        for path in (PROJECT_ROOT / "tests").rglob("*.py")
        for word in digging
        if word in path.read_text(encoding="utf-8")
    ]
    assert found == []


WORDS_NOT_STATES = {("trainer/__main__.py", "cancelled"), ("trainer/callbacks.py", "cancelled")}
"""The same words in a message; and `push_failed` as a push state (status.json's `push_state`), not a run's."""
WORDS_NOT_STATES |= {("trainer/hub/push.py", "push_failed")}


def test_run_state_is_the_only_spelling_of_a_state():
    from trainer.runs.state import RunState

    spelled = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.value!r}"
        for path in MODULES.values()
        if path.name != "state.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and node.value in set(RunState)
        and (str(path.relative_to(PROJECT_ROOT)), node.value) not in WORDS_NOT_STATES
    ]
    assert spelled == []


def test_one_module_writes_status_json_and_none_reads_proc():
    """The run folder module is the one writer of status.json, exit.json and the events; processes are read with
    psutil, never /proc."""
    writes = re.compile(r"(write\w*\(|unlink|open\()[^\n]*(STATUS_FILE|EXIT_FILE|EVENTS_FILE)")
    writers = sorted(module for module, path in MODULES.items() if writes.search(path.read_text(encoding="utf-8")))
    assert writers == ["trainer.runs.folder"]
    assert [module for module, path in MODULES.items() if "/proc/" in path.read_text(encoding="utf-8")] == []


@pytest.mark.slow  # a pytest run of its own with two workers (seconds)
def test_under_xdist_each_test_file_runs_in_one_worker(tmp_path):
    """The suite's module fixtures (the browser tests' app, Chromium and run) are built once only if a file's tests
    share a worker: the dist mode in pyproject.toml must keep them together (loadgroup stopped doing so, silently,
    with pytest 9.2)."""
    import tomllib

    addopts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    for name in ("a", "b"):
        tests = "".join(f"def test_{name}{i}():\n    pass\n\n\n" for i in range(6))
        (tmp_path / f"test_{name}.py").write_text(tests)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    workers = {name: set(re.findall(rf"\[(gw\d)\] .* PASSED test_{name}\.py", out.stdout)) for name in ("a", "b")}
    assert all(len(seen) == 1 for seen in workers.values()), workers


def test_every_mutation_of_the_catalogue_applies_where_it_says():
    """Each entry of tests/mutations.yaml names the file that holds its text exactly once: code that moved or changed
    would otherwise leave a mutation that no longer applies (the full check reports it only when it is run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_check", PROJECT_ROOT / "scripts" / "mutation_check.py")
    check = importlib.util.module_from_spec(spec)
    sys.modules["mutation_check"] = check  # its dataclasses look their module up there
    spec.loader.exec_module(check)
    misplaced = [
        (m.name, m.file, check.locate(m, PROJECT_ROOT))
        for m in check.load()
        if check.locate(m, PROJECT_ROOT) != m.file
    ]
    assert misplaced == [], "run scripts/mutation_check.py --fix-files, or update the entries' text"
