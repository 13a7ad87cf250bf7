"""Messages that cross panes: posted by panes and controllers, routed by the App.

Messages private to one pane or controller are nested in its class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual.message import Message

from ..cache.events import CacheEvent


@dataclass
class CacheReady(Message):
    live_mode: str  # "notifications" or "polling"


@dataclass
class StartupFailed(Message):
    error: str


@dataclass
class RedisDown(Message):
    """A call failed as if Redis were down. Not a verdict (our own pool may have been busy, or the
    stall brief): the health controller probes, and only a failed probe says down."""

    reason: str


class RedisAnswered(Message):
    """A Redis call just succeeded (if Redis was said down, the health controller probes now)."""


@dataclass
class RedisProbed(Message):
    """A health probe's verdict (controllers/health.py): posted after every probe that could tell."""

    up: bool
    was: bool | None  # the verdict before this one (None: none yet)
    reason: str = ""  # why it is down
    last_answered: datetime | None = None


class FirstPageShown(Message):
    """The keys pane showed its first page: the slower panes may load now."""


@dataclass
class LiveModeChanged(Message):
    mode: str
    before: str


class FlushStarted(Message):
    """Our own flush runs: panes stop refreshing key by key."""


@dataclass(frozen=True)
class Removed:
    """What an operation removed, as it says: the totals follow by arithmetic, not by a walk."""

    spec_name: str | None  # None: every spec's entries
    redis: int = 0  # IR keys gone from Redis
    files: int = 0  # entry files gone from the filesystem
    #: a flush: the tiers it emptied of those entries (a tier it emptied of none is still emptied)
    tiers: frozenset[str] = frozenset()


@dataclass
class OperationDone(Message):
    """A flush, warm, delete, TTL reset, prune or regenerate finished (or failed)."""

    text: str
    error: bool = False
    refresh: bool = True
    #: who did it: "flush", "warm", "prune", "regenerate", ... ("" when the sender does not say)
    by: str = ""
    #: what it removed, when it says (a flush finished or stopped partway, a delete, a prune)
    removed: Removed | None = None


@dataclass
class LogLine(Message):
    level: int
    text: str
    #: records of one shape in a row are one line in the log pane (logbridge.shape_of)
    shape: str = ""
    head: str = ""
    summary: str = ""


@dataclass
class CacheEventPosted(Message):
    event: CacheEvent

