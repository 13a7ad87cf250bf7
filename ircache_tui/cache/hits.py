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

A flush is applied at most once (scripts.HIT_ADD): each batch carries this
process's writer id and a batch number, and each hash remembers the last
batch it took from each writer, so a batch sent again after a timeout (it may
have been applied while its answer was lost) adds nothing the second time. An
entry's counts carry the `generated_at` of the entry they were made on: before
a flush the entries are looked at (their first bytes), and the counts of one
that is gone or was generated again since are dropped from the per-entry
hash (the totals keep them: they were hits); the script also refuses counts of
an older generation than the hash holds. A stored count that is garbage is
said once and started again; what is read back is checked the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from ..ir.usage import Usage
from .errors import RedisCommandError, RedisPermissionError, RedisUnavailable
from .keys import spec_of
from .results import HitCount, HitTotals

log = logging.getLogger("ircache")

FLUSH_INTERVAL = 5.0  # seconds: what a killed process may lose
#: a stored total past this (hits or dollars) is garbage, not a count (scripts.HIT_ADD agrees)
MAX_COUNT = 1e15


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
    #: cache key -> generated_at (epoch seconds) of the entry those hits were made on
    born: dict[str, float] = field(default_factory=dict)
    #: this process's number for the batch, once sent (sent again with the same number)
    seq: int = 0

    def __bool__(self) -> bool:
        return bool(self.totals)


def read_count(stored: dict[str, str], name: str, *, where: str, said: set[str], integer: bool = True) -> float:
    """A total as stored in a hits hash, or 0 when it is not a count (said once per field and
    process: a garbage total must never break `stats` for every client of the prefix)."""
    raw = stored.get(name)
    if raw is None:
        return 0
    try:
        value = float(raw) if not integer else int(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and 0 <= value < MAX_COUNT):
        if f"{where} {name}" not in said:
            said.add(f"{where} {name}")
            log.warning("%s field %s holds %r, not a count: read as 0 (the next hit flush starts it again)",
                        where, name, raw[:40])
        return 0
    return value


def totals_with(stored: dict[str, str], pending: HitBatch | None, *, where: str, said: set[str]) -> HitTotals:
    """The shared totals as stored (the stats hash at `where`), plus this process's pending batch."""

    def count(name: str, integer: bool = True) -> float:
        return read_count(stored, name, where=where, said=said, integer=integer)

    def hits(tier: str) -> int:
        return int(count(tier)) + (pending.totals[tier] if pending else 0)

    since = stored.get("since")
    return HitTotals(
        redis=hits("redis"), filesystem=hits("filesystem"), generator=hits("generator"),
        since=since if since and len(since) <= 40 and since.isprintable() else None,
        saved_usd=round(count("saved_usd", False) + (pending.saved_usd if pending else 0), 6),
        saved_seconds=round(count("saved_seconds", False) + (pending.saved_seconds if pending else 0), 3),
    )


def counts_with(stored: list[tuple[int, int, float | None, float | None]], pending: HitBatch | None,
                cache_keys: list[str], born: list[float | None] | None) -> list[HitCount]:
    """Per key, the counts as stored plus this process's pending batch; counts made on another
    generation of the key than `born` says (an entry deleted and made again) are not its."""
    out = []
    for i, (key, (r, f, last, counted_on)) in enumerate(zip(cache_keys, stored)):
        made = born[i] if born is not None else None
        if made is not None and counted_on is not None and abs(made - counted_on) > 1e-3:
            r, f, last = 0, 0, None
        if pending and (mine := pending.per_entry.get(key)):
            r, f = r + mine["redis"], f + mine["filesystem"]
            last = max(last or 0.0, pending.last.get(key, 0.0)) or None
        out.append(HitCount(r, f, last))
    return out


class HitSink(Protocol):
    """Where batches go: the Redis side of the counters (redis/hit_store.py)."""

    async def add(self, batch: HitBatch, since: str, *, writer: str = "", final: bool = True) -> None: ...


class HitCounter:
    """Counts lookups by tier and per entry; `flush` adds them to Redis in one pipeline."""

    def __init__(self, store: HitSink, *, interval: float = FLUSH_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self.pending = HitBatch()
        self.enabled = True  # False once Redis refused the commands (an ACL without them)
        #: this process, to the hashes that remember which of its batches they took
        self.writer = uuid.uuid4().hex[:16]
        self._seq = 0
        #: a batch sent whose answer never came (a timeout, a dropped connection): sent again as is
        self.unacked: HitBatch | None = None
        self._marked = False  # a batch of ours left its mark in the totals hash (removed at stop)
        self._task: asyncio.Task[None] | None = None

    def record(self, tier: str, cache_key: str, usage: Usage | None, born: float | None = None) -> None:
        """One lookup answered by `tier` ("redis", "filesystem" or "generator"), of the entry
        generated at `born` (epoch seconds). No I/O."""
        # on every hit: plain dict reads and writes only (no Counter built, no method of its own)
        batch = self.pending
        totals = batch.totals
        totals[tier] = totals.get(tier, 0) + 1
        if tier == "generator":
            return
        per = batch.per_entry.get(cache_key)
        if per is None:
            per = batch.per_entry[cache_key] = Counter()
        per[tier] = per.get(tier, 0) + 1
        batch.last[cache_key] = time.time()
        if born is not None:
            seen = batch.born.get(cache_key)
            if seen is None or born > seen:
                batch.born[cache_key] = born
        if usage is not None:
            if usage.cost_usd:
                batch.saved_usd += usage.cost_usd
            if usage.duration_s:
                batch.saved_seconds += usage.duration_s

    async def flush(self, *, final: bool = False) -> bool:
        """Add the pending counts to Redis; False when Redis is down (the batch is kept as it is,
        to be sent again with the same number: see the module docstring). `final`: the last flush
        of this process, which also clears the marks its batches left."""
        if not self.enabled:
            self.pending, self.unacked = HitBatch(), None
            return True
        if self.unacked is not None:
            if not await self._send(self.unacked, final=final and not self.pending):
                return False
            self.unacked = None
        batch, self.pending = self.pending, HitBatch()
        if not batch:
            if final and self._marked:
                await self._send(batch, final=True)  # only the totals hash's mark to clear
            return True
        self._seq += 1
        batch.seq = self._seq
        if not await self._send(batch, final=final):
            self.unacked = batch
            return False
        return True

    async def _send(self, batch: HitBatch, *, final: bool) -> bool:
        """True when Redis has the batch (added now, or before); False when it is down."""
        try:
            await self.store.add(batch, since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      writer=self.writer, final=final)
        except RedisUnavailable:
            return False
        except RedisPermissionError as exc:
            self.enabled = False
            log.info("Hit counts are not shared through Redis: %s", exc)
        except RedisCommandError as exc:
            log.info("Hit counts not added to Redis: %s", exc)
        else:
            self._marked = not final
        return True

    def forget(self, spec_name: str | None = None) -> None:
        """Drop the pending per-entry counts of flushed entries (every one, or one spec's), so the
        next flush does not bring their hit keys back; the totals stay."""
        for batch in (self.pending, self.unacked):
            if batch is None:
                continue
            for key in [k for k in batch.per_entry if spec_name is None or spec_of(k) == spec_name]:
                del batch.per_entry[key]
                batch.last.pop(key, None)
                batch.born.pop(key, None)

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
        await self.flush(final=True)
