"""The per-spec status model: what the watcher knows about each spec file.

`StatusBoard` holds the current `SpecStatus` of every spec it has seen and
calls `on_status` (synchronously, on the event loop) each time one changes.
A status is never mutated in place: every change stores a new object, so a
dashboard may keep the one it was handed. `WatchStats` holds the watcher's
running counters.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .log import log


class SpecState(str, Enum):
    IN_REDIS = "in redis"
    FILESYSTEM_ONLY = "filesystem only"
    MISSING = "missing"
    GENERATING = "generating"
    ERROR = "error"
    DELETED = "deleted"
    PENDING = "pending"


@dataclass(slots=True)
class SpecStatus:
    path: Path
    spec_name: str
    cache_key: str
    state: SpecState
    error: str = ""
    #: entries of this spec name in either tier (each cache key counted once)
    #: whose hash is not that of any spec file that exists now; `prune` removes them
    stale: int = 0


StatusCallback = Callable[[SpecStatus], object]  # what it returns is ignored


@dataclass(slots=True)
class WatchStats:
    """Counters, for the dashboard, the headless log and the tests."""

    batches: int = 0
    events: int = 0
    #: how many times each spec file was read and keyed by the check stage
    checked: Counter[Path] = field(default_factory=Counter)
    #: how many times each spec file was read and keyed by a refresh (`SpecWatcher.refresh`)
    observed: Counter[Path] = field(default_factory=Counter)
    #: specs a refresh left unread: the key change that asked for it was this process's own write
    echoes: int = 0
    warmed: int = 0
    #: of `warmed`: keys the Redis keeper put back (Redis restarted, or lost them)
    rewarmed: int = 0
    generated: int = 0
    errors: int = 0
    #: times the file watcher was started again after a name it could not decode
    restarts: int = 0


class StatusBoard:
    """`statuses` (path → SpecStatus) plus an index by cache key; reports changes."""

    def __init__(self, on_status: StatusCallback | None = None) -> None:
        self.statuses: dict[Path, SpecStatus] = {}
        self._by_key: dict[str, set[Path]] = {}
        self._on_status = on_status

    def get(self, path: Path) -> SpecStatus | None:
        return self.statuses.get(path)

    def paths_with_key(self, cache_key: str) -> list[Path]:
        return sorted(self._by_key.get(cache_key, ()))

    def paths_under(self, directory: Path) -> list[Path]:
        return sorted(p for p in self.statuses if directory in p.parents)

    def set(self, path: Path, **changes: object) -> SpecStatus:
        """Create or update the status of `path`; `on_status` runs only if something changed."""
        old = self.statuses.get(path)
        if old is None:
            fields = {"spec_name": "", "cache_key": "", "state": SpecState.PENDING, **changes}
            new = SpecStatus(path=path, **fields)  # type: ignore[arg-type]
        else:
            new = dataclasses.replace(old, **changes)  # type: ignore[arg-type]
            if new == old:
                return old
        if old is not None and old.cache_key != new.cache_key:
            self._unindex(old)
        self.statuses[path] = new
        if new.cache_key:
            self._by_key.setdefault(new.cache_key, set()).add(path)
        self._notify(new)
        return new

    def set_stale(self, counts: Iterable[tuple[Path, int]]) -> None:
        for path, count in counts:
            status = self.statuses.get(path)
            if status is not None and status.stale != count:
                self.set(path, stale=count)

    def count(self) -> dict[SpecState, int]:
        out = {state: 0 for state in SpecState}
        for status in self.statuses.values():
            out[status.state] += 1
        return out

    def _unindex(self, status: SpecStatus) -> None:
        paths = self._by_key.get(status.cache_key)
        if paths is not None:
            paths.discard(status.path)
            if not paths:
                del self._by_key[status.cache_key]

    def _notify(self, status: SpecStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:  # a broken subscriber must not stop the watcher
            log.exception("on_status callback failed for %s", status.path)
