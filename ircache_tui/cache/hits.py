"""Hits counted across processes, without a round trip on the hit path.

Every lookup adds to counts held in memory (a dict update, no I/O); every
`interval` seconds one pipeline adds them to Redis, so every process that
reads the cache contributes and the totals survive restarts. A process
killed loses at most its last batch; one that closes flushes what it has.

Where the counts live, under the cache's prefix, in keys the IR key grammar
never matches (so flushes, listings and key counts never take them for
entries):

    {prefix}:stats:hits           hash: redis, filesystem, generator (lookups that
                                  generated), saved_usd, saved_seconds, since
    {prefix}:{cache_key}:hits     hash: redis, filesystem, last (epoch seconds);
                                  expires with the cache's TTL, deleted with its entry

`saved_usd` adds, for every hit, what its entry cost to generate (usage.cost_usd),
`saved_seconds` its duration; hits on entries of unknown cost add nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..ir.usage import Usage
from .errors import RedisCommandError, RedisPermissionError, RedisUnavailable

if TYPE_CHECKING:
    from .redis_tier import RedisTier

log = logging.getLogger("ircache")

FLUSH_INTERVAL = 5.0  # seconds: what a killed process may lose


@dataclass(slots=True)
class HitBatch:
    """What one process counted since its last flush."""

    totals: Counter[str] = field(default_factory=Counter)
    saved_usd: float = 0.0
    saved_seconds: float = 0.0
    #: cache key -> Counter of tier -> hits
    per_entry: dict[str, Counter[str]] = field(default_factory=dict)
    #: cache key -> epoch seconds of its last hit
    last: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.totals)


class HitCounter:
    """Counts lookups by tier and per entry; `flush` adds them to Redis in one pipeline."""

    def __init__(self, redis: "RedisTier", *, interval: float = FLUSH_INTERVAL) -> None:
        self.redis = redis
        self.interval = interval
        self.pending = HitBatch()
        self.enabled = True  # False once Redis refused the commands (an ACL without them)
        self._task: asyncio.Task[None] | None = None

    def record(self, tier: str, cache_key: str, usage: Usage | None) -> None:
        """One lookup answered by `tier` ("redis", "filesystem" or "generator"). No I/O."""
        batch = self.pending
        batch.totals[tier] += 1
        if tier == "generator":
            return
        batch.per_entry.setdefault(cache_key, Counter())[tier] += 1
        batch.last[cache_key] = time.time()
        if usage is not None:
            batch.saved_usd += usage.cost_usd or 0.0
            batch.saved_seconds += usage.duration_s or 0.0

    async def flush(self) -> bool:
        """Add the pending counts to Redis; False (and kept for the next try) when Redis is down."""
        batch, self.pending = self.pending, HitBatch()
        if not batch or not self.enabled:
            return True
        try:
            await self.redis.add_hits(batch, since=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        except RedisUnavailable:
            self._merge_back(batch)
            return False
        except RedisPermissionError as exc:
            self.enabled = False
            log.info("Hit counts are not shared through Redis: %s", exc)
        except RedisCommandError as exc:
            log.info("Hit counts not added to Redis: %s", exc)
        return True

    def forget(self, spec_name: str | None = None) -> None:
        """Drop the pending per-entry counts of flushed entries (every one, or one spec's), so the
        next flush does not bring their hit keys back; the totals stay."""
        batch = self.pending
        for key in [k for k in batch.per_entry if spec_name is None or k.rsplit("_", 1)[0] == spec_name]:
            del batch.per_entry[key]
            batch.last.pop(key, None)

    def _merge_back(self, batch: HitBatch) -> None:
        """Redis was down: keep the batch for the next flush (merged with what came since)."""
        now = self.pending
        now.totals.update(batch.totals)
        now.saved_usd += batch.saved_usd
        now.saved_seconds += batch.saved_seconds
        for key, counts in batch.per_entry.items():
            now.per_entry.setdefault(key, Counter()).update(counts)
        for key, at in batch.last.items():
            now.last[key] = max(at, now.last.get(key, 0.0))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ircache-hit-counter")

    async def _run(self) -> None:
        while True:  # a round, then sleep: never two flushes at once
            await asyncio.sleep(self.interval)
            await self.flush()

    async def stop(self) -> None:
        """Stop the timer and flush what is left (Redis still open)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # a cancel of ours still propagates
        await self.flush()
