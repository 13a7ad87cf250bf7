"""The live log: the `ircache` logger's lines, bounded so a day-long session stays small."""

from __future__ import annotations

import logging

from rich.text import Text
from textual.widgets import RichLog

MAX_LINES = 1000
_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red", logging.DEBUG: "dim"}


class LogPane(RichLog):
    DEFAULT_CSS = """
    LogPane { height: 6; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, **kwargs)

    def add(self, level: int, text: str) -> None:
        self.write(Text(text, style=_STYLES.get(level, "")))
