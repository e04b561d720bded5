"""JSON Lines read line by line: a line that is not a JSON object is one malformed row, never a broken file.

The `datasets` JSON reader gives up on a whole file at its first bad line ("JSON parse error ... in row 2", counting
from 0). So a ``.jsonl`` file is scanned here first. When every non-blank line is a JSON object, the file goes to
`datasets` as it is. When some are not, a copy of its good lines goes instead, and each bad line becomes a problem at
its own line number (from 1), counted with the other malformed rows by the 5 % gate (`formats.normalise(lines=)`).
A file in which no line is a JSON object is not JSON Lines at all: one error says so.

Example:
    >>> lines = scan(Path("mixed.jsonl"))
    >>> lines.unreadable
    {3: 'not JSON (Expecting value at column 1)'}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.shapes import DataError


@dataclass(frozen=True)
class Lines:
    """Where a JSON Lines file's rows came from.

    Attributes:
        numbers: the line number (from 1) of each row that was read, in order.
        unreadable: line number -> why that line is not a row.
        complete: the scan reached the end of the file (False: it stopped after enough rows).
    """

    numbers: list[int]
    unreadable: dict[int, str] = field(default_factory=dict)
    complete: bool = True

    def window(self, start: int, count: int) -> Lines:
        """The rows `start` .. `start + count` (indices into `numbers`) and the bad lines among and around them: from
        the file's start (or the line after the row before) up to the next row kept out (or the end of the file)."""
        numbers = self.numbers[start : start + count]
        low = self.numbers[start - 1] + 1 if start > 0 else 1
        end = start + count
        high = self.numbers[end] - 1 if end < len(self.numbers) else float("inf")
        return Lines(numbers, {n: why for n, why in self.unreadable.items() if low <= n <= high}, self.complete)


def scan(path: Path, rows: int | None = None) -> Lines:
    """Read a JSON Lines file line by line, noting which lines are rows (JSON objects) and why the others are not.

    Args:
        path: the file.
        rows: stop after this many rows (a preview); None reads to the end.
    """
    numbers: list[int] = []
    unreadable: dict[int, str] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            if rows is not None and len(numbers) >= rows:
                return Lines(numbers, unreadable, complete=False)
            if why := _why_not_a_row(raw):
                unreadable[number] = why
            else:
                numbers.append(number)
    return Lines(numbers, unreadable)


def _why_not_a_row(raw: bytes) -> str | None:
    """Why one line is not a row (None when it is a JSON object)."""
    try:
        value = json.loads(raw.strip())
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
    if not isinstance(value, dict):
        return f"a JSON {_JSON_TYPES.get(type(value), 'value')}, not an object (a row is one JSON object)"
    return None


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "true/false", type(None): "null"}


def good_lines_copy(path: Path, lines: Lines, folder: Path) -> Path:
    """A copy of the file's rows only (same name, in `folder`), for the `datasets` reader."""
    keep = set(lines.numbers)
    target = folder / path.name
    with path.open("rb") as src, target.open("wb") as dst:
        for number, raw in enumerate(src, start=1):
            if number in keep:
                dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
    return target


def readable_rows(path: Path, rows: int | None, folder: Path) -> tuple[Path, Lines | None]:
    """What the `datasets` reader should read for a JSON Lines file: the file itself when every line is a row
    (and None), else a copy of its rows in `folder` and where they came from.

    Args:
        path: the file.
        rows: how many rows are needed (a preview); None: all of them.
        folder: a temporary folder for the copy.

    Raises:
        DataError: no line of the file is a JSON object.
    """
    lines = scan(path, rows)
    if not lines.unreadable:
        return path, None
    if not lines.numbers:
        first, why = next(iter(lines.unreadable.items()))
        raise DataError(
            f"data.dataset_name: {path.name} is not JSON Lines: no line is a JSON object (line {first}: {why}). "
            'Write one JSON object per line, e.g. {"messages": [...]}.'
        )
    return good_lines_copy(path, lines, folder), lines
