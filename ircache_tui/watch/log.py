"""The `ircache.watch` logger, and `show` for the paths in its lines.

Every module of the watcher logs here, so that one logger (a child of
`ircache`) can be turned up or down for the whole of it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

from ..fmt import INVISIBLE, shown_name

log = logging.getLogger("ircache.watch")

_SURROGATE = re.compile("[\ud800-\udfff]")


class show:
    """A path for a log line, relative to the working directory when under it.

    A path whose text a terminal would not show as itself (bytes that are not
    UTF-8, which os.listdir hands over as surrogates; newlines and other
    controls; bidi or zero-width characters) is quoted and escaped by
    `fmt.shown_name`, so one log line stays one line and names what is there:
    `'specs/\\xff.md'`. Lazy: the path is only worked out when the line is emitted.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        text = str(self.path)
        with contextlib.suppress(ValueError, OSError):
            text = str(self.path.relative_to(Path.cwd()))
        if INVISIBLE.search(text) or _SURROGATE.search(text):
            return shown_name(text)
        return text
