"""Routes the `ircache` logger into the dashboard's live log, from any thread.

Each line is scrubbed of secrets (`redact.scrub`) before it is posted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from textual.app import App

from .. import redact
from .messages import LogLine


class AppLogHandler(logging.Handler):
    def __init__(self, app: App, clock: Callable[[], datetime]) -> None:
        super().__init__(logging.INFO)
        self.app = app
        self.clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{self.clock():%H:%M:%S} {record.levelname:<7} {redact.scrub(record.getMessage())}"
            self.app.post_message(LogLine(record.levelno, text))  # thread-safe
        except Exception:  # a log line must never take the app down
            self.handleError(record)
