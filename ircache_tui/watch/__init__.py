"""Watch spec directories and keep the cache in step: warm Redis, generate, track stale entries.

Plain asyncio and watchfiles; nothing here imports Textual. Log lines go to
the `ircache.watch` logger, a child of `ircache`.
"""

from .status import SpecState, SpecStatus
from .watcher import SpecWatcher, WatchStats

__all__ = ["SpecState", "SpecStatus", "SpecWatcher", "WatchStats"]
