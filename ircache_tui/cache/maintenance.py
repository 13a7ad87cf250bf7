"""The cache's maintenance: flush, warm Redis from the filesystem, delete entries, reset a TTL.
Each says what it did in events (who, how many), so nobody walks Redis to learn it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from ..fmt import human_count, plural
from .audit import AuditTrail
from .decoded import DecodedEntries
from .errors import FlushIncomplete, ForeignKey, ReadOnlyError, RedisCommandError, RedisPermissionError
from .errors import RedisUnavailable
from .events import CacheEvent, EventBus
from .fs_tier import FilesystemTier
from .keys import KeySpace, as_key
from .redis import RedisTier
from .redis.walk import BATCH as UNLINK_BATCH
from .results import DeleteResult, FlushResult, StoreTier, WarmResult
from .tiers import REDIS_ERRORS, Tiers

log = logging.getLogger("ircache")


class Maintenance:
    def __init__(self, tier: Callable[[], RedisTier], tiers: Callable[[], Tiers], fs: FilesystemTier,
                 keys: KeySpace, events: EventBus, decoded: DecodedEntries, audit: AuditTrail, *, read_only: bool,
                 ttl: int, forget_hits: Callable[[str | None], None]) -> None:
        """`tier`, `tiers`: the Redis tier and the read/store path (RedisUnavailable until the cache is
        open); `audit`: where each action is recorded (audit.py); `forget_hits`: drop this process's
        pending hit counts of a spec (or all) flushed."""
        self._audit = audit
        self._tier = tier
        self._tiers = tiers
        self._fs = fs
        self._keys = keys
        self._events = events
        self._decoded = decoded
        self._read_only = read_only
        self._ttl = ttl
        self._forget_hits = forget_hits

    def _writable(self, what: str) -> None:
        if self._read_only:
            raise ReadOnlyError(f"read-only cache: {what} is not allowed")

    async def _clear_cache(
        self, redis: bool = True, filesystem: bool = True, spec_name: str | None = None,
        *, on_progress: Callable[[int], None] | None = None,
    ) -> FlushResult:
        """Flush the IR cache (all of it, or exactly one spec) from the chosen tiers."""
        self._writable("flush")
        result: dict[str, int] = {}
        kept = 0

        def keep(n: int) -> None:
            nonlocal kept
            kept += n

        try:
            if redis:
                result["redis"] = await self._tier().clear_ir_cache(spec_name, on_progress=on_progress, on_kept=keep)
                if kept:
                    log.info("%s under the prefix %s not IR entries: kept", plural(kept, "key"),
                             "is" if kept == 1 else "are")
                self._forget_hits(spec_name)  # (the entries' hit counts in Redis went with them)
            if filesystem:
                result["filesystem"] = await self._fs.clear(spec_name)
        except FlushIncomplete as exc:
            if result:  # Redis was flushed before the filesystem failed: say so too
                raise FlushIncomplete({**result, **exc.done}, exc.reason) from None
            raise
        finally:
            if result:
                self._events.emit(CacheEvent("flushed", spec_name or "", "", "+".join(result), str(result)))
        self._decoded.clear()  # not needed for correctness (bytes are compared), only to free memory
        return FlushResult(result.get("redis"), result.get("filesystem"), kept)

    async def _warm_redis(self) -> WarmResult:
        """Copy every valid filesystem entry that Redis lacks into Redis, and say what was not.

        A WarmResult: `failures` holds one "key: reason" per entry tried and not copied (corrupt
        on disk, refused by a full Redis), and `failed` is its length.
        A Redis that is down, or refuses the walk itself (an ACL rule: every entry would fail
        the same way), stops it: `left` counts the entries not tried and `error` says why
        (None when the walk ran to its end); the stop is logged as an ERROR.
        """
        self._writable("warming Redis")
        entries = await self._fs.list_entries()
        failures: list[str] = []
        try:
            # (on a cluster, it and each SET wait for a primary that died to be replaced: a warm started
            # just before a failover goes on as a walk does)
            present = await self._tier().exists_many([e.cache_key for e in entries], follow_failover=True)
        except (RedisUnavailable, RedisCommandError) as exc:
            return self._warm_result(0, 0, failures, len(entries), str(exc))
        todo = [e for e, there in zip(entries, present) if not there]
        skipped = len(entries) - len(todo)
        warmed = 0
        for done, entry in enumerate(todo):
            found = await self._tiers().read_filesystem(entry.key, remember=False)
            if found is None:
                failures.append(f"{entry.cache_key}: unreadable or corrupt on disk (see the warning above)")
                continue
            try:
                await self._tier().set_raw(entry.cache_key, found[1], follow_failover=True)
            except (RedisUnavailable, RedisPermissionError) as exc:
                # this entry counts as not tried too: its SET was not confirmed
                return self._warm_result(warmed, skipped, failures, len(todo) - done, str(exc))
            except (RedisCommandError, ForeignKey) as exc:  # e.g. OOM: a full Redis refuses writes; or
                failures.append(f"{entry.cache_key}: {exc}")  # another tool's value holds the key
                continue
            warmed += 1
            self._events.emit(CacheEvent("warmed", entry.spec_name, entry.cache_key, "redis"))
        return self._warm_result(warmed, skipped, failures, 0, None)

    @staticmethod
    def _warm_result(warmed: int, skipped: int, failures: list[str], left: int, error: str | None) -> WarmResult:
        if error is not None:
            log.error("Warming Redis stopped after %s: %s", plural(warmed, "entry", "entries"), error)
        failed = len(failures)
        tail = f", {plural(failed, 'entry', 'entries')} failed" if failed else ""
        tail += f", {plural(left, 'entry', 'entries')} not tried" if left else ""
        log.info("Warmed Redis from the filesystem: %s copied, %s already there%s",
                 plural(warmed, "entry", "entries"), human_count(skipped), tail)
        return WarmResult(warmed, skipped, left, tuple(failures), error)

    async def _warm_key(self, cache_key: str) -> bool:
        """Copy one filesystem entry into Redis; True when it was copied.

        The file is read like any filesystem hit: a corrupt one is quarantined
        and not copied. False when there is no valid file, Redis is down or
        caching is off. It does not look at Redis first: callers that only want
        to fill a gap check `in_redis` themselves.
        """
        self._writable(f"warming {cache_key}")
        key = as_key(cache_key)
        found = await self._tiers().read_filesystem(key, remember=False)
        if found is None or not await self._tiers().store_redis(key, found[1]):
            return False
        self._events.emit(CacheEvent("warmed", key.spec_name, key.cache_key, "redis"))
        return True

    async def _delete_entry(self, cache_key: str, tier: StoreTier) -> bool:
        """Delete one key (UNLINK) or one entry file; True when it was there."""
        self._writable(f"deleting {cache_key}")
        key = as_key(cache_key)
        gone = await (self._tier().delete(key) if tier == "redis" else self._fs.delete(key))
        if gone:
            log.info("Deleted %s from %s", key, "Redis" if tier == "redis" else "the filesystem")
            self._events.emit(CacheEvent("deleted", key.spec_name, key.cache_key, tier))
        return gone

    async def _delete_entries(self, redis_keys: list[str], files: list[str]) -> DeleteResult:
        """Delete exactly these IR entries (UNLINK in batches) and entry files; how many went from
        each. A key that holds another tool's value is kept (and said in the log)."""
        self._writable("deleting entries")
        removed_redis = removed_files = kept = 0
        rkeys = [self._keys.redis_key(k).encode() for k in redis_keys]

        def keep(n: int) -> None:
            nonlocal kept
            kept += n

        try:
            try:
                for start in range(0, len(rkeys), UNLINK_BATCH):
                    removed_redis += await self._tier().unlink_many(rkeys[start : start + UNLINK_BATCH], on_kept=keep)
                    await self._tier().hit_store.unlink(redis_keys[start : start + UNLINK_BATCH])
            except FlushIncomplete as exc:  # some of a cluster's primaries deleted their part of the batch
                removed_redis += exc.done.get("redis", 0)
                raise FlushIncomplete({"redis": removed_redis}, exc.reason) from None
            except REDIS_ERRORS as exc:
                raise FlushIncomplete({"redis": removed_redis}, f"Redis delete stopped: {exc}") from None
            try:
                for key in files:
                    if await self._fs.delete(key):
                        removed_files += 1
            except OSError as exc:  # a read-only cache dir: the next files would fail the same way
                raise FlushIncomplete({"redis": removed_redis, "filesystem": removed_files},
                                      f"cannot delete files in {self._fs.directory}: {exc.strerror or exc}") from None
        finally:  # what went is announced even when the rest could not go
            self._emit_deleted(removed_redis, removed_files)
        if kept:
            log.info("%s under the prefix %s not IR entries: kept", plural(kept, "key"), "is" if kept == 1 else "are")
        return DeleteResult(removed_redis, removed_files)

    def _emit_deleted(self, removed_redis: int, removed_files: int) -> None:
        if removed_redis or removed_files:
            self._events.emit(CacheEvent("deleted", "", "", "redis+filesystem",
                                        str({"redis": removed_redis, "filesystem": removed_files})))

    async def _reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        """EXPIRE one key to `ttl` (default: the configured TTL); False when it is gone or TTL is 0."""
        self._writable(f"resetting the TTL of {cache_key}")
        key = as_key(cache_key)
        ok = await self._tier().reset_ttl(key, ttl)
        if ok:
            seconds = self._ttl if ttl is None else ttl
            log.info("Reset TTL of %s to %ss", key, seconds)
            self._events.emit(CacheEvent("ttl", key.spec_name, key.cache_key, "redis", str(seconds)))
        return ok

    # -- the public operations: each recorded in the audit trail, however it ends ----------------
    async def clear_cache(
        self, redis: bool = True, filesystem: bool = True, spec_name: str | None = None,
        *, on_progress: Callable[[int], None] | None = None,
    ) -> FlushResult:
        with self._audit.recording("flush", spec=spec_name, tiers=_tiers(redis, filesystem)) as touched:
            try:
                result = await self._clear_cache(redis, filesystem, spec_name, on_progress=on_progress)
            except FlushIncomplete as exc:
                touched.counts.update(exc.done)
                raise
            touched.counts.update({k: v for k, v in result.to_json().items() if isinstance(v, int)})
            return result

    async def warm_redis(self) -> WarmResult:
        with self._audit.recording("warm", tiers=("redis",)) as touched:
            result = await self._warm_redis()
            touched.counts.update(warmed=result.warmed, failed=result.failed, left=result.left)
            if result.error is not None:
                touched.outcome = f"stopped: {result.error.splitlines()[0] if result.error else ''}"
            return result

    async def warm_key(self, cache_key: str) -> bool:
        with self._audit.recording("warm", key=cache_key, tiers=("redis",)) as touched:
            copied = await self._warm_key(cache_key)
            touched.counts["warmed"] = int(copied)
            return copied

    async def delete_entry(self, cache_key: str, tier: StoreTier) -> bool:
        with self._audit.recording("delete", key=cache_key, tiers=(tier,)) as touched:
            gone = await self._delete_entry(cache_key, tier)
            touched.counts[tier] = int(gone)
            return gone

    async def delete_entries(self, redis_keys: list[str], files: list[str], *, action: str = "delete") -> DeleteResult:
        """(`action`: what the trail calls it, "prune" for a prune.)"""
        with self._audit.recording(action, tiers=_tiers(bool(redis_keys), bool(files))) as touched:
            try:
                result = await self._delete_entries(redis_keys, files)
            except FlushIncomplete as exc:
                touched.counts.update(exc.done)
                raise
            touched.counts.update(redis=result.redis, filesystem=result.filesystem)
            return result

    async def reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        with self._audit.recording("ttl", key=cache_key, tiers=("redis",)) as touched:
            ok = await self._reset_ttl(cache_key, ttl)
            touched.counts["redis"] = int(ok)
            return ok


def _tiers(redis: bool, filesystem: bool) -> tuple[str, ...]:
    return tuple(t for t, on in (("redis", redis), ("filesystem", filesystem)) if on)
