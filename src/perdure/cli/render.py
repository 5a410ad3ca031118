"""Output for the management commands: tables and colours on a terminal (rich), plain text when
stdout is not a terminal or NO_COLOR is set, and stable JSON with ``--json``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

STATUS_STYLES = {
    "running": "green",
    "completed": "dim",
    "suspended": "cyan",
    "pending": "yellow",
    "scheduled": "blue",
    "backing-off": "red",
    "paused": "magenta",
    "ready": "green",
}


class Output:
    """Where a command writes: ``out`` plus how (``json``, ``terminal``)."""

    def __init__(self, out: TextIO, *, as_json: bool, terminal: bool | None = None) -> None:
        self.out = out
        self.as_json = as_json
        if terminal is None:
            forced = os.environ.get("PERDURE_FORCE_TERMINAL")
            terminal = forced == "1" if forced is not None else out.isatty()
        self.terminal = terminal and not as_json
        color = self.terminal and "NO_COLOR" not in os.environ
        self.console = Console(
            file=out,
            force_terminal=color,
            no_color=not color,
            highlight=False,
            width=None if out.isatty() else 160,  # a real terminal's width, else wide enough
            soft_wrap=not self.terminal,
        )

    def json(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")

    def line(self, text: str = "") -> None:
        self.console.print(text, markup=False)

    def markup(self, text: str) -> None:
        self.console.print(text if self.terminal else _strip(text))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            self.line("(none)")
            return
        if not self.terminal:  # plain, tab-separated: easy to grep and cut
            self.out.write("\t".join(c.upper() for c in columns) + "\n")
            for row in rows:
                self.out.write("\t".join("" if v is None else str(v) for v in row) + "\n")
            return
        table = Table(*[c.upper() for c in columns], header_style="bold")
        for row in rows:
            table.add_row(*[_cell(columns[i], v) for i, v in enumerate(row)])
        self.console.print(table)


def _cell(column: str, value: Any) -> str:
    text = "" if value is None else str(value).replace("[", "\\[")
    if column == "status" and text in STATUS_STYLES:
        return f"[{STATUS_STYLES[text]}]{text}[/]"
    return text


def _strip(text: str) -> str:
    from rich.text import Text  # noqa: PLC0415

    return Text.from_markup(text).plain
