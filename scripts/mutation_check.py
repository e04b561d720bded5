"""Break the product on purpose, one realistic mutation at a time, and check that the tests notice.

The mutations are listed in tests/mutations.yaml: each is a small patch (an exact snippet `old` of a file and its
replacement `new`) of the project's most important behaviour, with the tests that should catch it. The check copies
the project (what git tracks, plus untracked files git does not ignore) into a temporary folder ONCE, applies each
patch there in turn, runs those tests, and restores the file. The working tree is never touched.

    python scripts/mutation_check.py              # all of them (about 40 minutes on 2 cores)
    python scripts/mutation_check.py --list       # names, files and tests
    python scripts/mutation_check.py -k adapter   # those whose name contains "adapter"
    python scripts/mutation_check.py --fix-files  # point each `file:` of the catalogue at where its text is now

Code moves: when the named file is gone or no longer holds `old` exactly once, the one product file (trainer/, app.py)
that does is used, with a note to update the catalogue (--fix-files does). It prints CAUGHT or SURVIVED per mutation
and exits non-zero if any survived, or if a patch applies to no file (update the mutation, never drop it silently).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "mutations.yaml"
PRODUCT = ("trainer/**/*.py", "app.py")
"""Where a mutation's text is looked for when its file no longer holds it."""


@dataclass(frozen=True)
class Mutation:
    name: str  # the behaviour it breaks
    file: str
    old: str  # found exactly once in the file
    new: str
    tests: str  # pytest arguments: files, and -k where a file has many slow tests


def load(path: Path = CATALOGUE) -> list[Mutation]:
    return [Mutation(**entry) for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]


def locate(mutation: Mutation, root: Path) -> str | None:
    """The file under `root` to patch: the named one if it holds `old` exactly once, else the one product file that
    does (the code moved); None if there is no such file, or more than one."""
    named = root / mutation.file
    if named.is_file() and named.read_text(encoding="utf-8").count(mutation.old) == 1:
        return mutation.file
    found = {
        path.relative_to(root).as_posix()
        for pattern in PRODUCT
        for path in root.glob(pattern)
        if path.read_text(encoding="utf-8").count(mutation.old) == 1
    }
    return found.pop() if len(found) == 1 else None


def check(mutation: Mutation, copy: Path) -> str:
    """CAUGHT, SURVIVED or DOES NOT APPLY (with the tests' last lines when it survived)."""
    file = locate(mutation, copy)
    if file is None:
        return f"DOES NOT APPLY (its text is not once in {mutation.file}, nor in one product file): update it"
    path = copy / file
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    try:
        proc = subprocess.run(
            f"{sys.executable} -m pytest -q -x -p no:cacheprovider {mutation.tests}",
            shell=True,  # the tests string is ours (the catalogue), never user input
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        path.write_text(text, encoding="utf-8")
    if proc.returncode == 5:
        return "DOES NOT APPLY (no test collected): update the test selection"
    if proc.returncode == 0:
        return "SURVIVED\n" + "\n".join(proc.stdout.splitlines()[-3:])
    return "CAUGHT"


def where_note(mutation: Mutation, root: Path) -> str:
    """A note when the mutation's text is not where the catalogue says."""
    file = locate(mutation, root)
    if file is None:
        return " (DOES NOT APPLY: its text is in no single file)"
    return "" if file == mutation.file else f" (found in {file}; update its file)"


def fix_files(mutations: list[Mutation], path: Path = CATALOGUE) -> int:
    """Rewrite the `file:` lines of the catalogue whose text is now in another file; the rest stays as written."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    entries = yaml.compose("".join(lines)).value  # the nodes, with their places in the text
    fixed = 0
    for mutation, entry in zip(mutations, entries, strict=True):
        file = locate(mutation, ROOT)
        if file in (None, mutation.file):
            continue
        value = next(value for key, value in entry.value if key.value == "file")
        line, start, end = value.start_mark.line, value.start_mark.column, value.end_mark.column
        lines[line] = lines[line][:start] + file + lines[line][end:]
        print(f"{mutation.name}: {mutation.file} -> {file}")
        fixed += 1
    if fixed:
        path.write_text("".join(lines), encoding="utf-8")
    print(f"{fixed} file fields updated in {path}")
    return 0


def project_files() -> list[str]:
    """What git tracks, plus the untracked files it does not ignore (the working tree as it is)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({name for name in out.split("\0") if name and (ROOT / name).is_file()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("-k", dest="keyword", default="", help="only mutations whose name contains this")
    parser.add_argument("--fix-files", action="store_true", help="rewrite the catalogue's file fields and exit")
    args = parser.parse_args(argv)
    mutations = load()
    if args.fix_files:
        return fix_files(mutations)
    chosen = [m for m in mutations if args.keyword.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}  [{m.file}; {m.tests}]{where_note(m, ROOT)}")
        return 0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        copy = Path(tmp) / "project"
        for name in project_files():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
        for number, mutation in enumerate(chosen, start=1):
            start = time.time()
            outcome = check(mutation, copy)
            failures += not outcome.startswith("CAUGHT")
            took = f"({time.time() - start:.0f} s)"
            note = where_note(mutation, copy) if outcome.startswith(("CAUGHT", "SURVIVED")) else ""
            print(f"[{number}/{len(chosen)}] {outcome.split(chr(10))[0]:9} {mutation.name} {took}{note}")
            if not outcome.startswith("CAUGHT"):
                print("    " + outcome.replace("\n", "\n    "), flush=True)
    print(f"{len(chosen) - failures} of {len(chosen)} mutations caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
