"""Messages that cross panes: posted by workers and panes, routed by the App.

Messages private to one pane are nested in that pane's class.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..cache.events import CacheEvent
from ..cache.ircache import CacheInfo
from ..specs.stale import StaleReport


@dataclass
class CacheReady(Message):
    live_mode: str  # "notifications" or "polling"


@dataclass
class StartupFailed(Message):
    error: str


@dataclass
class RedisDown(Message):
    reason: str


@dataclass
class RedisUp(Message):
    pass


class RedisAnswered(Message):
    """A pane's Redis call just succeeded: if Redis was down, it is up."""


class FirstPageShown(Message):
    """The keys pane showed its first page: the slower panes may load now."""


@dataclass
class LiveModeChanged(Message):
    mode: str
    before: str


class FlushStarted(Message):
    """Our own flush runs: panes stop refreshing key by key."""


@dataclass
class StatsLoaded(Message):
    info: CacheInfo
    #: hit totals across processes and what they saved (IRCache.hit_totals); None when not readable
    hits: dict | None = None


@dataclass
class OperationDone(Message):
    """A flush, warm, delete, TTL reset, prune or regenerate finished (or failed)."""

    text: str
    error: bool = False
    refresh: bool = True


@dataclass
class LogLine(Message):
    level: int
    text: str


@dataclass
class StatsRoundDone(Message):
    """A periodic stats round finished; the next one is scheduled from here."""


@dataclass
class ProbeFailed(Message):
    reason: str


@dataclass
class CacheEventPosted(Message):
    event: CacheEvent


@dataclass
class PruneFound(Message):
    report: StaleReport
