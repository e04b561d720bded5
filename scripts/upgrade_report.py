"""The upgrade check's report (scripts/upgrade_check.sh): versions before and after, and what failed, in Markdown.

    python scripts/upgrade_report.py --before OLD_LOCK --after NEW_LOCK --pip-check pip-check.txt \
        --step "fast tier|0|55|fast.xml|python -m pytest -q -m 'not slow'" --step ... > report.md

A step is "name|exit code|seconds|JUnit XML file (or -)|command". Only the standard library is used, so the report is
written whatever the checked environment holds.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?P<spec>[^;#]*?)\s*(?:;(?P<marker>[^#]*))?(?:#.*)?$"
)


def normalise(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(text: str) -> dict[str, str]:
    """{normalised name: what the file asks for}: the version of an exact pin, else the specifier (a range), with
    the marker when a line has one. Several lines for one name (one per platform) are joined with " / "."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = REQUIREMENT.match(line)
        if not match:
            continue
        spec = match["spec"].strip()
        wanted = spec[2:] if spec.startswith("==") and "," not in spec else (spec or "any")
        if match["marker"]:
            wanted += f" ({match['marker'].strip()})"
        values = found.setdefault(normalise(match["name"]), [])
        if wanted not in values:  # the same pin in two files (the app's lock and the tests') counts once
            values.append(wanted)
    return {name: " / ".join(values) for name, values in found.items()}


def version_rows(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    """(package, before, after) for every package whose entry changed, was added or removed, sorted by name."""
    names = sorted(set(before) | set(after))
    return [(n, before.get(n, "-"), after.get(n, "-")) for n in names if before.get(n) != after.get(n)]


@dataclass
class Step:
    """One command the check ran: its name, exit code, seconds, JUnit file and command line."""

    name: str
    code: int
    seconds: int
    junit: Path | None
    command: str

    @classmethod
    def parse(cls, text: str) -> Step:
        name, code, seconds, junit, command = text.split("|", 4)
        return cls(name, int(code), int(seconds), None if junit in ("", "-") else Path(junit), command)


def failures(junit_xml: str) -> list[tuple[str, str]]:
    """(test id, first line of its error) for each failed or erroring test of a JUnit XML report (pytest's)."""
    found = []
    for case in ET.fromstring(junit_xml).iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            found.append((test, first_error_line(problem.get("message") or problem.text or "")))
    return found


def first_error_line(text: str) -> str:
    """The first line that says what went wrong: pytest's `E   ...` line if any, else the first non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()
    return lines[0] if lines else "(no message)"


def counts(junit_xml: str) -> str:
    """ "N passed, N failed, N errors, N skipped" from a JUnit XML report."""
    root = ET.fromstring(junit_xml)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return f"{passed} passed, {total['failures']} failed, {total['errors']} errors, {total['skipped']} skipped"


def report(
    date: str, before_label: str, before: str, after: str, pip_check: str, steps: list[Step], applied: bool
) -> str:
    """The whole report (Markdown)."""
    pip_clean = pip_check.strip() in ("", "No broken requirements found.")
    ok = all(step.code == 0 for step in steps) and pip_clean
    rows = version_rows(read_requirements(before), read_requirements(after))
    lines = [
        f"# Upgrade check, {date}",
        "",
        f"The newest versions pyproject.toml's ranges allow, in a fresh venv, against the lock of {before_label}.",
        "",
        "**Outcome: "
        + ("everything passed" if ok else "something failed (below)")
        + "; the lock "
        + ("was moved to these versions." if applied else "was left as it was.")
        + "**",
        "",
        f"## Versions ({len(rows)} changed)",
        "",
    ]
    if rows:
        lines += ["| package | before | after |", "| --- | --- | --- |"]
        lines += [f"| {name} | {old} | {new} |" for name, old, new in rows]
    else:
        lines.append("No version moved: the lock already holds the newest versions the ranges allow.")
    lines += ["", "## pip check", "", "```", pip_check.strip() or "(no output)", "```", "", "## Steps", ""]
    lines += ["| step | command | result | seconds |", "| --- | --- | --- | ---: |"]
    details = []
    for step in steps:
        xml = step.junit.read_text() if step.junit and step.junit.exists() else None
        result = ("passed" if step.code == 0 else f"exit {step.code}") + (f": {counts(xml)}" if xml else "")
        lines.append(f"| {step.name} | `{step.command}` | {result} | {step.seconds} |")
        failed = failures(xml) if xml else []
        if failed:
            details += ["", f"### {step.name}: what failed", ""]
            details += [f"- `{test}`: {message}" for test, message in failed]
    return "\n".join(lines + details) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", required=True)
    parser.add_argument("--before", type=Path, required=True, help="the lock now (requirements-test.txt)")
    parser.add_argument("--before-label", default="the checkout")
    parser.add_argument("--after", type=Path, required=True, help="the candidate lock")
    parser.add_argument("--pip-check", type=Path, required=True, help="pip check's output")
    parser.add_argument("--step", action="append", default=[], help="name|code|seconds|junit|command")
    parser.add_argument("--applied", action="store_true", help="the lock was moved to the candidate")
    args = parser.parse_args(argv)
    text = report(
        args.date,
        args.before_label,
        args.before.read_text(),
        args.after.read_text(),
        args.pip_check.read_text(),
        [Step.parse(s) for s in args.step],
        args.applied,
    )
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
