"""Messages workers post to the app; the app's @on handlers own every state change."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..cache.browse import KeyRow, Page
from ..cache.events import CacheEvent
from ..cache.fs_tier import FileEntry
from ..cache.ircache import CacheInfo
from ..cache.live import KeyChange
from ..ir.envelope import StoredEntry
from ..specs.stale import StaleReport
from ..watch.status import SpecStatus


@dataclass
class CacheReady(Message):
    live_mode: str  # "notifications" or "polling"


@dataclass
class LiveModeChecked(Message):
    """After Redis came back: how live updates work now (its config may have been reset)."""

    live_mode: str


@dataclass
class StartupFailed(Message):
    error: str


@dataclass
class PageLoaded(Message):
    page: Page
    has_prev: bool
    has_next: bool
    filter_text: str


@dataclass
class RedisDown(Message):
    reason: str


@dataclass
class RedisUp(Message):
    pass


@dataclass
class FilesLoaded(Message):
    entries: list[FileEntry]
    warm: list[bool | None]  # None: Redis unknown (down)


@dataclass
class StatsLoaded(Message):
    info: CacheInfo


@dataclass
class KeyChanged(Message):
    change: KeyChange


@dataclass
class KeyRefreshed(Message):
    """Fresh details of one key after a live change; `row` None means it is gone."""

    cache_key: str
    row: KeyRow | None


@dataclass
class FlushCounted(Message):
    spec_name: str | None
    redis_keys: int
    files: int


@dataclass
class FlushProgress(Message):
    done: int
    total: int


@dataclass
class OperationDone(Message):
    """A flush, warm, delete, TTL reset, prune or regenerate finished (or failed)."""

    text: str
    error: bool = False
    refresh: bool = True


@dataclass
class DetailLoaded(Message):
    title: str
    entry: StoredEntry | None
    error: str = ""


@dataclass
class SpecStatusChanged(Message):
    status: SpecStatus


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


@dataclass
class FlushFinished(Message):
    text: str
    error: bool = False


@dataclass
class Subscribed(Message):
    """The keyspace-notification listener is in place."""
