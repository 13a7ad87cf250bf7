"""A small event stream: what the cache did, for dashboards and counters.

Subscribers are plain callables run synchronously on the event loop; they
must be quick (a dashboard posts a message and returns). A subscriber that
raises is logged, never allowed to break a cache call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..ir.usage import Usage

log = logging.getLogger("ircache")

# "topology": a cluster's slots changed primary (detail says how, in a sentence);
# "ttl": one key's TTL was reset (detail: the seconds)
EventKind = Literal["hit", "miss", "generated", "warmed", "corrupt", "flushed", "deleted", "error", "topology", "ttl"]


@dataclass(frozen=True, slots=True)
class CacheEvent:
    kind: EventKind
    spec_name: str = ""
    cache_key: str = ""
    tier: str = ""  # "redis", "filesystem", "generator"
    detail: str = ""
    #: on "hit" and "generated": what the entry cost to make (None: unknown, an older entry)
    usage: Usage | None = None
    #: on "hit": when the entry that answered was generated (epoch seconds), which its hit counts follow
    born: float | None = None


@dataclass(slots=True)
class Counters:
    redis_hits: int = 0
    filesystem_hits: int = 0
    misses: int = 0
    generated: int = 0
    errors: int = 0

    @property
    def hits(self) -> int:
        return self.redis_hits + self.filesystem_hits


@dataclass(slots=True)
class EventBus:
    counters: Counters = field(default_factory=Counters)
    _subscribers: list[Callable[[CacheEvent], object]] = field(default_factory=list)
    #: where every lookup's answer is counted (the hit counter's `record(tier, cache_key, usage,
    #: born)`): called directly, so that counting builds no event on the hit path
    tally: Callable[[str, str, Usage | None, float | None], None] | None = None

    def subscribe(self, callback: Callable[[CacheEvent], object]) -> Callable[[], None]:
        """Add a subscriber (what it returns is ignored); returns a function that removes it."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def hit(self, spec_name: str, cache_key: str, tier: str, usage: Usage | None, born: datetime) -> None:
        """A lookup that a tier answered: counted, and told as a "hit" event to the subscribers
        there are (on every cache hit: with none, no event is built)."""
        if tier == "redis":
            self.counters.redis_hits += 1
        else:
            self.counters.filesystem_hits += 1
        if self.tally is None and not self._subscribers:
            return
        stamp = born.timestamp()
        if self.tally is not None:
            self.tally(tier, cache_key, usage, stamp)
        if self._subscribers:
            self._tell(CacheEvent("hit", spec_name, cache_key, tier, usage=usage, born=stamp))

    def emit(self, event: CacheEvent) -> None:
        c = self.counters
        if event.kind == "hit":
            if event.tier == "redis":
                c.redis_hits += 1
            else:
                c.filesystem_hits += 1
        elif event.kind == "miss":
            c.misses += 1
        elif event.kind == "generated":
            c.generated += 1
            if self.tally is not None:  # a miss that generated (a failed one answered nothing)
                self.tally("generator", event.cache_key, None, None)
        elif event.kind == "error":
            c.errors += 1
        self._tell(event)

    def _tell(self, event: CacheEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the cache
                log.exception("cache event subscriber failed")
