"""The hit counters' Redis side: one hash of totals for the prefix (`{prefix}:stats`) and one per
entry (`{IR key}:hits`), added to by each process's batches (hits.py counts them).

A batch goes through HIT_ADD, one script call per hash: each hash remembers the last batch each
process gave it, so a batch sent again after a timeout adds nothing. Without script rights, plain
HINCRBYs (then a batch sent again after a timeout may count twice).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from ...ir.envelope import generated_epoch, is_entry_head
from ..hits import HitBatch
from ..keys import KeySpace
from . import scripts
from .door import Door, raising
from .nodes import Call
from .walk import forget_script, scan_pages, sha_of, unlink_keys

log = logging.getLogger("ircache")


class HitStore:
    def __init__(self, door: Door, keys: KeySpace, ttl: int) -> None:
        self._door = door
        self._keys = keys
        self._ttl = ttl
        self._said_garbage: set[str] = set()  # hit-count fields said to hold garbage (once each)

    async def add(self, batch: HitBatch, since: str, *, writer: str = "", final: bool = True) -> None:
        """Add one process's batch of hit counts (hits.py): one HIT_ADD script call per hash, so a
        batch is taken at most once (by `writer` and `batch.seq`), pipelined in one round trip
        (one per node on a cluster), after one that looks at the entries: the per-entry counts of
        an entry that is gone, or was generated again since, go to the totals only. Without script
        rights: plain HINCRBYs (then a batch sent again after a timeout may count twice)."""
        self._door.writable("HINCRBY (hit counts)")
        per_entry = await self._still_as_hit(batch)
        stats = self._keys.stats_key
        hkeys = {key: self._keys.hits_key(key) for key in per_entry}
        if not await self._door.run(lambda: self._door.nodes.scripts_on("hit_add", scripts.HIT_ADD, [stats, *hkeys.values()]),
                               sent="script|load"):
            await self._add_hits_plainly(batch, per_entry, since)
            return
        sha = sha_of(scripts.HIT_ADD)
        head = (writer or "anonymous", batch.seq, final)

        def call(hkey: str, ttl: int, gen: str, since: str, last: str, fields: list[str]) -> tuple[Any, ...]:
            writer_id, seq, last_one = head
            return (hkey, "evalsha", (sha, 1, hkey, writer_id, seq, ttl, gen, "1" if last_one else "0", since, last,
                                      *fields), {})

        # every field, even at 0: a flush also starts again any field another writer left as garbage
        totals = [f for tier in ("redis", "filesystem", "generator") for f in (tier, str(batch.totals[tier]))]
        totals += ["saved_usd", f"{batch.saved_usd:.6f}", "saved_seconds", f"{batch.saved_seconds:.6f}"]
        calls = [call(stats, 0, "", since, "", totals)]
        for key, counts in per_entry.items():
            fields = [f for tier in ("redis", "filesystem") for f in (tier, str(counts[tier]))]
            born = batch.born.get(key)
            calls.append(call(hkeys[key], max(self._ttl, 0), "" if born is None else f"{born:.6f}", "",
                              f"{batch.last[key]:.3f}", fields))
        replies = await self._door.run(lambda: self._door.nodes.pipelined(calls, raise_on_error=False), sent="evalsha")
        if any(isinstance(r, NoScriptError) for r in replies):  # a restarted server: load it, send those again
            forget_script(self._door.nodes.script_clients(), "hit_add")
            again = [c for c, r in zip(calls, replies) if isinstance(r, NoScriptError)]
            await self._door.run(lambda: self._door.nodes.scripts_on("hit_add", scripts.HIT_ADD, [c[0] for c in again]))
            fresh = iter(await self._door.run(lambda: self._door.nodes.pipelined(again, raise_on_error=False), sent="evalsha"))
            replies = [next(fresh) if isinstance(r, NoScriptError) else r for r in replies]
        for (hkey, *_), reply in zip(calls, replies):
            if isinstance(reply, RedisError):
                await self._door.run(raising(reply), sent="hincrby")  # raises it, mapped
            for name in reply[1:]:
                said = f"{hkey} {name!r}"
                if said not in self._said_garbage:
                    self._said_garbage.add(said)
                    log.warning("%s field %s did not hold a count: started again from this process's hits",
                                hkey, name.decode(errors="replace") if isinstance(name, bytes) else name)

    async def _still_as_hit(self, batch: HitBatch) -> dict[str, Any]:
        """The batch's per-entry counts whose entry is still in Redis, generated when those hits
        found it (the first KiB of each, in one round trip): counts of an entry deleted (or made
        again) since must not bring its hit key back."""
        keys = list(batch.per_entry)
        if not keys:
            return {}
        calls: list[Call] = [(rk, "getrange", (rk, 0, 1023), {}) for rk in map(self._keys.redis_key, keys)]
        heads = await self._door.run(lambda: self._door.nodes.pipelined(calls, raise_on_error=False), sent="getrange")
        kept = {}
        for key, head in zip(keys, heads):
            if not isinstance(head, bytes) or not head or not is_entry_head(head):
                continue  # gone (or refused: counted in the totals only)
            born = batch.born.get(key)
            if born is not None and (made := generated_epoch(head)) is not None and abs(made - born) > 1e-3:
                continue  # generated again since those hits
            kept[key] = batch.per_entry[key]
        return kept

    async def _add_hits_plainly(self, batch: HitBatch, per_entry: dict[str, Any], since: str) -> None:
        """The batch as plain commands in one pipeline, for a user without script rights."""
        stats = self._keys.stats_key
        calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = [(stats, "hsetnx", (stats, "since", since), {})]
        for tier, n in batch.totals.items():
            calls.append((stats, "hincrby", (stats, tier, n), {}))
        if batch.saved_usd:
            calls.append((stats, "hincrbyfloat", (stats, "saved_usd", batch.saved_usd), {}))
        if batch.saved_seconds:
            calls.append((stats, "hincrbyfloat", (stats, "saved_seconds", batch.saved_seconds), {}))
        for key, counts in per_entry.items():
            hkey = self._keys.hits_key(key)
            for tier, n in counts.items():
                calls.append((hkey, "hincrby", (hkey, tier, n), {}))
            calls.append((hkey, "hset", (hkey, "last", f"{batch.last[key]:.3f}"), {}))
            if self._ttl > 0:
                calls.append((hkey, "expire", (hkey, self._ttl), {}))
        await self._door.run(lambda: self._door.nodes.pipelined(calls), sent="hincrby")

    async def totals(self) -> dict[str, str]:
        """The shared totals hash, as stored (decoded); {} when nothing was counted yet."""
        raw = await self._door.run(lambda: self._door.nodes.client.hgetall(self._keys.stats_key), sent="hgetall")
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}

    async def counts(self, cache_keys: list[str]) -> list[tuple[int, int, float | None, float | None]]:
        """(redis hits, filesystem hits, last hit epoch, the generated_at they were counted on) per
        key, in one round trip; a field that is not a count reads as 0 (or None)."""
        if not cache_keys:
            return []

        hkeys = [self._keys.hits_key(key) for key in cache_keys]
        calls: list[Call] = [(hkey, "hmget", (hkey, "redis", "filesystem", "last", "gen"), {}) for hkey in hkeys]
        rows = await self._door.run(lambda: self._door.nodes.pipelined(calls), sent="hmget")
        return [(count_of(r), count_of(f), epoch_of(last), epoch_of(gen)) for r, f, last, gen in rows]

    async def unlink(self, cache_keys: list[str]) -> None:
        """UNLINK the hit counts of these entries (deleted with them)."""
        self._door.writable("UNLINK (hit counts)")
        if cache_keys:
            hkeys = [self._keys.hits_key(k) for k in cache_keys]
            await self._door.run(lambda: self._door.nodes.unlink_exact(hkeys))

    async def clear(self, spec_name: str | None = None) -> int:
        """UNLINK the per-entry hit keys (of one spec): they go with their entries. How many."""
        self._door.writable("UNLINK (hit counts)")
        match = self._keys.hits_pattern(spec_name)

        def ours(key: bytes) -> bool:  # `{IR key}:hits`, exactly (MATCH is a glob, not a parser)
            return key.endswith(b":hits") and self._keys.belongs(key[: -len(b":hits")], spec_name)

        deleted: dict[int, int] = {}  # per walk index: a round cut short by a failover keeps its share

        async def on(i: int, client: aioredis.Redis) -> None:
            def add(n: int) -> None:
                deleted[i] = deleted.get(i, 0) + n

            async for page in scan_pages(client, match, 1000):
                mine = [k for k in page if ours(k)]
                if mine:
                    await unlink_keys(client, mine, reroute=self._door.nodes.rerouter, tally=add)

        await self._door.run(lambda: self._door.nodes.each(on, follow_failover=True), follow_failover=True)
        return sum(deleted.values())


def count_of(raw: object) -> int:
    """A hit count as stored, or 0 when it is not one (garbage is started again by the next flush)."""
    try:
        value = int(raw) if raw is not None else 0  # type: ignore[call-overload]
    except ValueError:
        return 0
    return value if 0 <= value < 10**15 else 0


def epoch_of(raw: object) -> float | None:
    """Epoch seconds as stored, or None when it is not a plausible time."""
    try:
        value = float(raw) if raw is not None else None  # type: ignore[arg-type]
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and 0 < value < 1e11 else None


def hits_of(counts: Any) -> tuple[int, float | None, float | None] | None:
    """An HMGET of an entry's hit counts as (hits, last hit epoch, generated_at they were counted
    on); None when refused (an ACL)."""
    if not isinstance(counts, list):
        return None
    redis_hits, fs_hits, last, gen = counts
    return count_of(redis_hits) + count_of(fs_hits), epoch_of(last), epoch_of(gen)
