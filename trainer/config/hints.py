"""Render the fixes in problem messages for where the user is: a form field in the web app, a flag in the CLI.

Messages name a setting in one neutral form, written by `trainer.config.schema.hint`:
``set data.column_mapping to `question=user,answer=assistant```. Each front end turns it into its own words:

    >>> render_hints("… set data.format to `alpaca`.", "cli")
    '… pass --format alpaca.'
    >>> render_hints("… set data.format to `alpaca`.", "ui")
    '… set **Format** to `alpaca`.'
"""

from __future__ import annotations

import re
import shlex
from typing import Literal

from trainer.config.schema import iter_fields

HINT_RE = re.compile(r"(?<![\w-])set (?P<key>[a-z]+\.[a-z0-9_]+)(?: to `(?P<value>[^`]*)`)?")
MAP_FLAG = "--map"
"""The CLI's repeatable COLUMN=ROLE flag for data.column_mapping (`--column-mapping a=user,b=assistant` also works)."""


def cli_flags(key: str, value: str | None) -> str:
    """The flags that set a setting on the command line (`--format alpaca`, `--map q=user --map a=assistant`),
    each value shell-quoted where it needs it (`--map 'Question Text=user'`), so they work as printed."""
    spec = next(s for s in iter_fields() if s.key == key)
    if key == "data.column_mapping":
        pairs = [p.strip() for p in (value or "").split(",") if p.strip()]
        return " ".join(f"{MAP_FLAG} {shlex.quote(pair)}" for pair in pairs) or f"{MAP_FLAG} COLUMN=ROLE"
    return spec.flag if value is None else f"{spec.flag} {shlex.quote(value)}"


MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]#|~<>])")
"""What makes links, images, headings, code, emphasis, cells or HTML in Markdown."""


def render_hints(text: str, style: Literal["cli", "ui"], plain: bool = False) -> str:
    """text with every `set <key> [to `<value>`]` hint written for the CLI (flags) or the web form (field labels).

    plain: the text is plain text that may hold a user's data (a file or column name): in the "ui" style, all but
    the hints is escaped, so that it shows as written and renders no link, image or HTML.
    """
    labels = {spec.key: spec.meta.get("label") or spec.key for spec in iter_fields()}
    ticks = {spec.key for spec in iter_fields() if spec.type is bool}  # a checkbox in the form

    def render(match: re.Match[str]) -> str:
        key, value = match["key"], match["value"]
        if key not in labels:
            return match.group(0)
        if style == "cli":
            return f"pass {cli_flags(key, value)}"
        shown = value.replace(",", ", ") if value is not None and key == "data.column_mapping" else value
        if key in ticks and value in (None, "True", "False"):  # a checkbox: tick or untick it
            return f"{'untick' if value == 'False' else 'tick'} **{labels[key]}**"
        return f"set **{labels[key]}**" + (f" to `{shown}`" if value is not None else "")

    if not (plain and style == "ui"):
        return HINT_RE.sub(render, text)
    pieces, end = [], 0
    for match in HINT_RE.finditer(text):
        pieces += [MARKDOWN_SPECIALS.sub(r"\\\1", text[end : match.start()]), render(match)]
        end = match.end()
    return "".join([*pieces, MARKDOWN_SPECIALS.sub(r"\\\1", text[end:])])
