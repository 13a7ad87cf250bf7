"""The `ircache.watch` logger, and `show` for the paths in its lines.

Every module of the watcher logs here, so that one logger (a child of
`ircache`) can be turned up or down for the whole of it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

log = logging.getLogger("ircache.watch")


class show:
    """A path for a log line, relative to the working directory when under it.

    Lazy: the path is only worked out when the line is emitted.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        with contextlib.suppress(ValueError, OSError):
            return str(self.path.relative_to(Path.cwd()))
        return str(self.path)
