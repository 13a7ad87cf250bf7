"""The live log: the `ircache` logger's lines, bounded so a day-long session stays small."""

from __future__ import annotations

import logging
from typing import Any

from textual.widgets import RichLog

from ..text import plain

MAX_LINES = 1000
_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red", logging.DEBUG: "dim"}


class LogPane(RichLog):
    DEFAULT_CSS = """
    LogPane { height: 6; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, **kwargs)

    def add(self, level: int, text: str) -> None:
        # child loggers (ircache.watch) reach the pane without the ircache logger's filter: escape here
        self.write(plain(text, _STYLES.get(level, "")))
