"""The read and store path over both tiers: Redis, then the filesystem (a hit there warms Redis).

A corrupt entry in either tier is a miss, handled here for both: deleted from Redis, moved into
the cache dir's quarantine, and said once; a read-only cache leaves it in place. A key that holds
another tool's value is said once and left alone (served from the filesystem).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from ..ir.envelope import CorruptEntry, StoredEntry
from .decoded import DecodedEntries
from .errors import ForeignKey, RedisCommandError, RedisPermissionError, RedisUnavailable
from .events import CacheEvent, EventBus
from .fs_tier import FilesystemTier
from .keys import CacheKey, KeyLike, spec_of
from .redis import RedisTier
from .results import Lookup

log = logging.getLogger("ircache")

# What a Redis call can raise once it has gone through the tier's door
REDIS_ERRORS = (RedisUnavailable, RedisCommandError)
#: which entries a read may serve (see Tiers.read)
Accept = Callable[[StoredEntry], bool]
#: how many Redis keys found to hold another tool's value are remembered as said
_SAID_FOREIGN = 1024


class Tiers:
    def __init__(self, redis: RedisTier, fs: FilesystemTier, decoded: DecodedEntries, events: EventBus, *,
                 read_only: bool) -> None:
        self._redis = redis
        self._fs = fs
        self._decoded = decoded
        self._events = events
        self._read_only = read_only
        self._said_foreign: dict[str, None] = {}  # Redis keys said to hold another tool's value (bounded)

    @property
    def fs(self) -> FilesystemTier:
        """The filesystem tier (incremental.py looks there for a spec's previous generation)."""
        return self._fs

    async def read(self, key: CacheKey, *, again: bool = False, strict: bool = False,
                   accept: Accept | None = None) -> Lookup | None:
        """Redis, then the filesystem (a hit there warms Redis). `again`: a re-check within one
        lookup (a file that could not be read is not reported twice). `strict`: a refused ACL rule on
        the warming SET raises (for operations that exist only to fill Redis, like `warm`).
        `accept`: an entry it refuses (an outdated one, under IR_OUTDATED=regenerate) is a miss in
        that tier, said once, and left for the generation to replace."""
        spec_name = key.spec_name
        entry = await self.read_redis(key)
        if entry is not None and not self._refused(accept, entry, key, "Redis", again):
            log.info("IR cache HIT (Redis) for %s", spec_name)
            self._events.hit(spec_name, key.cache_key, "redis", entry.usage, entry.generated_at)
            return Lookup(key.cache_key, "redis", entry)
        found = await self.read_filesystem(key, quiet=again)
        if found is not None and self._refused(accept, found[0], key, "the filesystem", again):
            found = None
        if found is not None:
            entry, raw = found
            if self._read_only:
                log.info("IR cache HIT (filesystem) for %s (read-only: Redis not warmed)", spec_name)
            else:
                log.info("IR cache HIT (filesystem) for %s, warming Redis", spec_name)
            self._events.hit(spec_name, key.cache_key, "filesystem", entry.usage, entry.generated_at)
            if not self._read_only:
                await self.store_redis(key, raw, strict=strict)
            return Lookup(key.cache_key, "filesystem", entry)
        return None

    @staticmethod
    def _refused(accept: Accept | None, entry: StoredEntry, key: CacheKey, where: str, again: bool) -> bool:
        if accept is None or accept(entry):
            return False
        log.log(logging.DEBUG if again else logging.INFO,
                "IR cache entry in %s for %s is outdated (made by %s): a miss (IR_OUTDATED=regenerate)",
                where, key.spec_name, entry.generator.label)
        return True

    async def read_redis(self, key: CacheKey) -> StoredEntry | None:
        try:
            raw = await self._redis.get_raw(key)
        except RedisUnavailable:
            return None
        except ForeignKey as exc:  # said once per key: then served from the filesystem, Redis left alone
            if exc.redis_key not in self._said_foreign:
                self._said_foreign[exc.redis_key] = None
                while len(self._said_foreign) > _SAID_FOREIGN:
                    del self._said_foreign[next(iter(self._said_foreign))]
                log.warning("%s", exc)
            return None
        except RedisCommandError as exc:
            log.warning("Redis read of %s failed: %s", key, exc)
            return None
        if raw is None:
            return None
        try:
            return self._decoded.decode(key.cache_key, raw)
        except CorruptEntry as exc:
            spec_name = key.spec_name
            self._events.emit(CacheEvent("corrupt", spec_name, key.cache_key, "redis", exc.reason))
            if self._read_only:
                log.warning("Corrupt IR entry in Redis for %s (%s): %s; left in place (read-only)",
                            spec_name, key, exc.reason)
                return None
            log.warning("Corrupt IR entry in Redis for %s (%s): %s; deleting it", spec_name, key, exc.reason)
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis.delete(key)
            return None

    async def read_filesystem(
        self, key: CacheKey, *, remember: bool = True, quiet: bool = False
    ) -> tuple[StoredEntry, bytes] | None:
        try:
            raw = await self._fs.read_raw(key)
            if raw is None:
                return None
            return self._decoded.decode(key.cache_key, raw, remember=remember), raw
        except CorruptEntry as exc:  # bad bytes, or not a regular file (a symlink is never followed)
            spec_name = key.spec_name
            self._events.emit(CacheEvent("corrupt", spec_name, key.cache_key, "filesystem", exc.reason))
            if self._read_only:
                log.warning("Corrupt IR entry on disk for %s (%s): %s; left in place (read-only)",
                            spec_name, key, exc.reason)
                return None
            log.warning("Corrupt IR entry on disk for %s (%s): %s; moving it to quarantine", spec_name, key, exc.reason)
            try:
                await self._fs.quarantine(key, exc.reason)
            except OSError as qexc:
                log.warning("Cannot quarantine %s: %s", key, qexc.strerror or qexc)
            return None
        except OSError as exc:
            log.log(logging.DEBUG if quiet else logging.WARNING, "Cannot read cache file for %s: %s",
                    key, exc.strerror or exc)
            return None

    async def store_redis(self, key: KeyLike, raw: bytes, *, strict: bool = False) -> bool:
        """SET the entry; False when Redis is down or refused it (logged). `strict`: a refused
        ACL rule raises, for operations that exist only to write Redis (warm)."""
        try:
            return await self._redis.set_raw(key, raw)
        except (RedisUnavailable, ForeignKey):
            return False  # (another tool's value under this key was said when it was read)
        except RedisCommandError as exc:
            if strict and isinstance(exc, RedisPermissionError):
                raise
            log.warning("Redis write of %s failed: %s", key, exc)
            return False

    async def store_filesystem(self, key: KeyLike, raw: bytes) -> bool:
        try:
            await self._fs.write_raw(key, raw)
            return True
        except OSError as exc:
            log.error("Cannot write cache file for %s in %s: %s", key, self._fs.directory, exc.strerror or exc)
            self._events.emit(CacheEvent("error", spec_of(str(key)), str(key), "filesystem", str(exc)))
            return False
