"""The status bar's totals: IR keys and their memory, keys not ours, every process's hits and savings.

A round (one stats walk, IRCache.get_cache_info, and the hit totals) runs every `interval`
seconds, and when asked (ctrl+r, Redis back, a burst of changes, an operation that does not
say what it did). Rounds never overlap: a round asked for cancels the one under way, and the
next periodic round is armed when any round ends, however it ended (done, failed, cancelled),
so the rounds never stop.

An operation that says what it removed (a flush) changes the totals by arithmetic instead of a
walk: the count goes down by what went, and the memory shown is at most what it was until the
next round measures it. A round that finds Redis unreachable changes nothing here: it tells the
App (RedisDown), whose health controller probes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from textual import on, work
from textual.message import Message
from textual.timer import Timer

from ...cache.errors import IRCacheError
from ...cache.ircache import CacheInfo, GenerationTotals, HitTotals, IRCache
from ...cache.results import Savings
from .. import messages as m
from .base import Controller


@dataclass(frozen=True)
class RedisTotals:
    """What the status bar shows of Redis as a whole (its field names are the status bar's)."""

    ir_keys: int | None = None
    ir_bytes: int | None = None
    #: keys named like entries that hold another tool's values: not counted above
    foreign_keys: int = 0
    #: the server refuses MEMORY USAGE: keys are counted, their size is unknown
    sizes_refused: bool = False
    #: keys went since the size was measured: it is at most `ir_bytes`
    size_at_most: bool = False
    shared_hits: int | None = None
    saved_usd: float | None = None
    #: what each lever saved (Savings.to_json: hits, batch, prompt_cache, incremental); None: not known
    saved_by: dict[str, float] | None = None

    def without(self, removed: m.Removed) -> RedisTotals:
        if not removed.redis or self.ir_keys is None:
            return self
        left = max(0, self.ir_keys - removed.redis)
        if left == 0:
            return replace(self, ir_keys=0, ir_bytes=0, size_at_most=False)
        return replace(self, ir_keys=left, size_at_most=self.ir_bytes is not None)


class Totals(Controller):
    @dataclass
    class Changed(Message):
        totals: RedisTotals

    @dataclass
    class _Loaded(Message):
        info: CacheInfo
        hits: HitTotals | None  # IRCache.hit_totals; None when not readable (Redis down, an ACL)
        generation: GenerationTotals | None = None

    class _RoundDone(Message):
        pass

    def __init__(self, cache: IRCache, *, interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.interval = interval
        self.totals = RedisTotals()
        self._next: Timer | None = None  # the next periodic round
        # the generations' totals read each entry file's head: read again only when the files changed
        self._generation: tuple[tuple[object, object], GenerationTotals] | None = None

    def refresh_now(self) -> None:
        """A round now (it cancels the one under way); the periodic rounds go on after it."""
        self.load()

    def removed(self, removed: m.Removed) -> None:
        """An operation says what it removed: the totals follow without a walk."""
        self._set(self.totals.without(removed))

    @work(group="totals", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        try:
            info = await self.cache.get_cache_info()
            try:
                hits = await self.cache.hit_totals()
            except IRCacheError:
                hits = None  # Redis down (said by the stats), or the counts refused by an ACL
            files = info.filesystem
            seen = (files.get("file_count"), files.get("total_size_bytes"))
            if self._generation is None or self._generation[0] != seen:
                self._generation = (seen, await self.cache.generation_totals())
            self.post_message(self._Loaded(info, hits, self._generation[1]))
        finally:
            self.post_message(self._RoundDone())  # whatever ended the round, the next one is armed

    @on(_Loaded)
    def _loaded(self, message: _Loaded) -> None:
        redis_info = message.info.redis
        if not redis_info.get("reachable"):
            self.post_message(m.RedisDown(redis_info.get("error", "unreachable")))
            return
        self.post_message(m.RedisAnswered())
        size = redis_info["total_size_bytes"]
        totals = replace(self.totals, ir_keys=redis_info["total_keys"], ir_bytes=size, sizes_refused=size is None,
                         size_at_most=False, foreign_keys=redis_info.get("foreign_keys", 0))
        if message.hits is not None:
            totals = replace(totals, saved_usd=message.hits.saved_usd,
                             shared_hits=message.hits.redis + message.hits.filesystem)
            if message.generation is not None:
                totals = replace(totals, saved_by=Savings.of(message.hits, message.generation).to_json())
        self._set(totals)

    @on(_RoundDone)
    def _round_done(self) -> None:
        if self._next is not None:
            self._next.stop()
        self._next = self.set_timer(self.interval, self.load)

    def _set(self, totals: RedisTotals) -> None:
        self.totals = totals
        self.post_message(self.Changed(totals))
