"""IRCache: the three tiers behind one call, `get_application_ir`.

    Redis ──miss──► filesystem ──miss──► generator
      ▲                 │ hit: warm Redis     │ save to Redis + filesystem
      └─────────────────┘                     ▼

A corrupt entry in any tier is a miss (deleted from Redis, quarantined on
disk). Each key's last decoded entry is kept with its bytes, so reading the
same bytes again skips validation (see decoded.py). Concurrent misses for
one key generate once: in-process through a shared task, across processes
through a Redis lock (SET NX PX + token, released by compare-and-delete). A
Redis that is down is skipped quickly and used again when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redis.exceptions import RedisError

from ..ir.envelope import CorruptEntry, StoredEntry
from ..ir.generators import GenerationError, Generator, generator_label
from ..ir.model import ApplicationIR
from ..settings import Settings, parse_ttl
from .decoded import DecodedEntries
from .embedded import EmbeddedRedis
from .errors import RedisUnavailable
from .events import CacheEvent, EventBus
from .fs_tier import FilesystemTier
from .keys import HASH_LEN, KeySpace, spec_hash, spec_name_from_path
from .redis_tier import RedisTier

log = logging.getLogger("ircache")

Tier = Literal["redis", "filesystem", "generator"]
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Lookup:
    """What `lookup` found: the IR, its stored entry and which tier answered."""

    cache_key: str
    tier: Tier
    entry: StoredEntry

    @property
    def ir(self) -> ApplicationIR:
        return self.entry.application_ir


class IRCache:
    """The tiered ApplicationIR cache. Use as `async with IRCache(...) as cache:`."""

    def __init__(
        self,
        redis_url: str | None = _UNSET,
        cache_dir: str | os.PathLike[str] | None = None,
        ttl: int | None = None,
        generator: Generator | None = None,
        prefix: str | None = None,
        *,
        settings: Settings | None = None,
        lock_ttl_ms: int = 30_000,
        lock_poll_interval: float = 0.05,
        decoded_memo: int = 128,
    ) -> None:
        base = settings or Settings.from_env()
        changes: dict[str, Any] = {
            k: v for k, v in {"cache_dir": cache_dir, "ttl": ttl, "prefix": prefix}.items() if v is not None
        }
        if redis_url is not _UNSET:
            changes["redis_url"] = redis_url
        if "cache_dir" in changes:
            changes["cache_dir"] = Path(changes["cache_dir"])
        if "ttl" in changes:
            changes["ttl"] = parse_ttl(changes["ttl"], "ttl")
        self.settings = dataclasses.replace(base, **changes).validated()
        self.generator: Generator = generator or self.settings.make_generator()
        self.keys = KeySpace(self.settings.prefix)
        self.fs = FilesystemTier(self.settings.cache_dir)
        self.events = EventBus()
        self.decoded = DecodedEntries(max_entries=decoded_memo)  # 0: validate every read
        self.embedded: EmbeddedRedis | None = None
        self.redis: RedisTier = None  # type: ignore[assignment]  # set in open()
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_poll = lock_poll_interval
        self._inflight: dict[tuple[str, bool], asyncio.Task[Lookup]] = {}

    # -- lifecycle -----------------------------------------------------------
    @property
    def ttl(self) -> int:
        return self.settings.ttl

    @property
    def enabled(self) -> bool:
        """IR_CACHE_TTL=0 turns caching off: every call generates, nothing is stored."""
        return self.settings.ttl > 0

    async def open(self) -> "IRCache":
        url = self.settings.redis_url
        if url is None:
            self.embedded = EmbeddedRedis(self.settings.cache_dir)
            url = await asyncio.to_thread(self.embedded.start)
        self.redis = RedisTier(url, self.keys, self.settings.ttl)
        with contextlib.suppress(OSError):
            await self.fs.cleanup_temp_files()
        log.info("IR cache ready: Redis %s, filesystem %s, TTL %ss, generator %s",
                 self.redis.display_url, self.fs.directory, self.ttl, generator_label(self.generator))
        return self

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        aclose = getattr(self.generator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)

    async def __aenter__(self) -> "IRCache":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the entry point -------------------------------------------------------
    async def get_application_ir(
        self, spec_markdown: str, spec_path: str = "spec.md", force_refresh: bool = False
    ) -> ApplicationIR:
        """Redis, then the filesystem (a hit warms Redis), then the generator."""
        return (await self.lookup(spec_markdown, spec_path, force_refresh)).ir

    async def lookup(self, spec_markdown: str, spec_path: str = "spec.md", force_refresh: bool = False) -> Lookup:
        """Like get_application_ir, but also says which tier answered."""
        spec_name = spec_name_from_path(spec_path)
        digest = spec_hash(spec_markdown)
        key = f"{spec_name}_{digest[:HASH_LEN]}"
        if not self.enabled:
            log.info("IR cache disabled (IR_CACHE_TTL=0) for %s, generating with %s", spec_name, generator_label(self.generator))
            return await self._generate(key, spec_name, digest, spec_markdown, spec_path, store=False)
        if not force_refresh:
            hit = await self._read_tiers(key, spec_name)
            if hit is not None:
                return hit
        return await self._single_flight(
            (key, force_refresh),
            lambda: self._fill(key, spec_name, digest, spec_markdown, spec_path, force_refresh),
        )

    async def _single_flight(self, flight: tuple[str, bool], make: Callable[[], Awaitable[Lookup]]) -> Lookup:
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.ensure_future(make())
            self._inflight[flight] = task
            task.add_done_callback(lambda _t: self._inflight.pop(flight, None))
        # shield: one impatient caller cancelling must not cancel the others' generation
        return await asyncio.shield(task)

    async def _fill(
        self, key: str, spec_name: str, digest: str, spec_markdown: str, spec_path: str, force: bool
    ) -> Lookup:
        token = uuid.uuid4().hex
        locked = await self._acquire_or_wait(key, spec_name, token, force)
        if isinstance(locked, Lookup):
            return locked  # another process generated it while we waited
        try:
            if not force:
                hit = await self._read_tiers(key, spec_name)  # filled between our miss and the lock
                if hit is not None:
                    return hit
            async with self._keep_lock(key, token, locked):
                return await self._generate(key, spec_name, digest, spec_markdown, spec_path, store=True)
        finally:
            if locked:
                with contextlib.suppress(RedisUnavailable, RedisError):
                    await self.redis.release_lock(key, token)

    async def _acquire_or_wait(self, key: str, spec_name: str, token: str, force: bool) -> bool | Lookup:
        """True: we hold the lock. False: Redis is down, go on without one. Lookup: someone else filled it."""
        waited = False
        while True:
            try:
                if await self.redis.acquire_lock(key, token, self._lock_ttl_ms):
                    if waited and force:
                        hit = await self._read_tiers(key, spec_name)  # their refresh is as fresh as ours
                        if hit is not None:
                            with contextlib.suppress(RedisUnavailable, RedisError):
                                await self.redis.release_lock(key, token)
                            return hit
                    return True
                if not waited:
                    log.info("IR for %s is being generated by another process; waiting", spec_name)
                waited = True
                while await self.redis.lock_held(key):
                    await asyncio.sleep(self._lock_poll)
                if not force:
                    hit = await self._read_tiers(key, spec_name)
                    if hit is not None:
                        return hit
            except (RedisUnavailable, RedisError):
                return False

    @contextlib.asynccontextmanager
    async def _keep_lock(self, key: str, token: str, locked: bool):
        """Extend the lock while a slow generation runs, so it never expires under us."""
        if not locked:
            yield
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lock_ttl_ms / 3000)
                with contextlib.suppress(RedisUnavailable, RedisError):
                    await self.redis.extend_lock(key, token, self._lock_ttl_ms)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- tiers -------------------------------------------------------------------
    async def _read_tiers(self, key: str, spec_name: str) -> Lookup | None:
        entry = await self._read_redis(key, spec_name)
        if entry is not None:
            log.info("IR cache HIT (Redis) for %s", spec_name)
            self.events.emit(CacheEvent("hit", spec_name, key, "redis"))
            return Lookup(key, "redis", entry)
        found = await self._read_filesystem(key, spec_name)
        if found is not None:
            entry, raw = found
            log.info("IR cache HIT (filesystem) for %s, warming Redis", spec_name)
            self.events.emit(CacheEvent("hit", spec_name, key, "filesystem"))
            await self._store_redis(key, raw)
            return Lookup(key, "filesystem", entry)
        return None

    async def _read_redis(self, key: str, spec_name: str) -> StoredEntry | None:
        try:
            raw = await self.redis.get_raw(key)
        except RedisUnavailable:
            return None
        except RedisError as exc:
            log.warning("Redis read of %s failed: %s", key, exc)
            return None
        if raw is None:
            return None
        try:
            return self.decoded.decode(key, raw)
        except CorruptEntry as exc:
            log.warning("Corrupt IR entry in Redis for %s (%s): %s; deleting it", spec_name, key, exc.reason)
            self.events.emit(CacheEvent("corrupt", spec_name, key, "redis", exc.reason))
            with contextlib.suppress(RedisUnavailable, RedisError):
                await self.redis.delete(key)
            return None

    async def _read_filesystem(
        self, key: str, spec_name: str, *, remember: bool = True
    ) -> tuple[StoredEntry, bytes] | None:
        try:
            raw = await self.fs.read_raw(key)
        except OSError as exc:
            log.warning("Cannot read cache file for %s: %s", key, exc.strerror or exc)
            return None
        if raw is None:
            return None
        try:
            return self.decoded.decode(key, raw, remember=remember), raw
        except CorruptEntry as exc:
            log.warning("Corrupt IR entry on disk for %s (%s): %s; moving it to quarantine", spec_name, key, exc.reason)
            self.events.emit(CacheEvent("corrupt", spec_name, key, "filesystem", exc.reason))
            with contextlib.suppress(OSError):
                await self.fs.quarantine(key, exc.reason)
            return None

    async def _store_redis(self, key: str, raw: bytes) -> bool:
        try:
            return await self.redis.set_raw(key, raw)
        except RedisUnavailable:
            return False
        except RedisError as exc:
            log.warning("Redis write of %s failed: %s", key, exc)
            return False

    async def _store_filesystem(self, key: str, raw: bytes) -> bool:
        try:
            await self.fs.write_raw(key, raw)
            return True
        except OSError as exc:
            log.error("Cannot write cache file for %s in %s: %s", key, self.fs.directory, exc.strerror or exc)
            self.events.emit(CacheEvent("error", key.rsplit("_", 1)[0], key, "filesystem", str(exc)))
            return False

    async def _generate(
        self, key: str, spec_name: str, digest: str, spec_markdown: str, spec_path: str, *, store: bool
    ) -> Lookup:
        label = generator_label(self.generator)
        if store:
            log.info("IR cache MISS for %s, generating with LLM (%s)", spec_name, label)
            self.events.emit(CacheEvent("miss", spec_name, key, "generator", label))
        try:
            ir = await self.generator.generate(spec_markdown, spec_name)
            if not isinstance(ir, ApplicationIR):
                ir = ApplicationIR.model_validate(ir)
        except GenerationError as exc:
            log.error("IR generation failed for %s: %s", spec_name, exc)
            self.events.emit(CacheEvent("error", spec_name, key, "generator", str(exc)))
            raise
        except Exception as exc:
            message = f"{self.generator.name} generator failed for {spec_name}: {exc.__class__.__name__}: {exc}"
            log.error("IR generation failed for %s: %s", spec_name, message)
            self.events.emit(CacheEvent("error", spec_name, key, "generator", message))
            raise GenerationError(message) from exc
        entry = StoredEntry.create(
            ir, spec_name=spec_name, spec_hash=digest, spec_path=str(spec_path),
            generator=self.generator.name, model=self.generator.model,
        )
        if store:
            raw = entry.to_json_bytes()
            await self._store_redis(key, raw)
            await self._store_filesystem(key, raw)
            log.info("Generated IR for %s with %s and cached it as %s", spec_name, label, key)
        self.events.emit(CacheEvent("generated", spec_name, key, "generator", label))
        return Lookup(key, "generator", entry)

    # -- operations ----------------------------------------------------------------
    async def clear_cache(
        self, redis: bool = True, filesystem: bool = True, spec_name: str | None = None,
        *, on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Flush the IR cache (all of it, or exactly one spec) from the chosen tiers."""
        result: dict[str, int] = {}
        if redis:
            result["redis"] = await self.redis.clear_ir_cache(spec_name, on_progress=on_progress)
        if filesystem:
            result["filesystem"] = await self.fs.clear(spec_name)
        self.decoded.clear()  # not needed for correctness (bytes are compared), only to free memory
        self.events.emit(CacheEvent("flushed", spec_name or "", "", "+".join(result), str(result)))
        return result

    async def get_cache_info(self) -> dict[str, Any]:
        """`{"redis": {...}, "filesystem": {...}}` as in the seed, plus whether Redis answered."""
        try:
            redis_info: dict[str, Any] = {"reachable": True, **await self.redis.get_ir_cache_stats()}
        except (RedisUnavailable, RedisError) as exc:
            redis_info = {"reachable": False, "error": str(exc)}
        return {"redis": redis_info, "filesystem": await self.fs.stats()}

    async def warm_redis(self) -> dict[str, int]:
        """Copy every valid filesystem entry that Redis lacks into Redis."""
        entries = await self.fs.list_entries()
        present = await self.redis.exists_many([e.cache_key for e in entries])
        warmed = skipped = 0
        for entry, there in zip(entries, present):
            if there:
                skipped += 1
                continue
            found = await self._read_filesystem(entry.cache_key, entry.spec_name, remember=False)
            if found is not None and await self._store_redis(entry.cache_key, found[1]):
                warmed += 1
                self.events.emit(CacheEvent("warmed", entry.spec_name, entry.cache_key, "redis"))
        log.info("Warmed Redis from the filesystem: %d entries copied, %d already there", warmed, skipped)
        return {"warmed": warmed, "already_in_redis": skipped}

    async def warm_key(self, cache_key: str) -> bool:
        """Copy one filesystem entry into Redis; True when it was copied.

        The file is read like any filesystem hit: a corrupt one is quarantined
        and not copied. False when there is no valid file, Redis is down or
        caching is off. It does not look at Redis first: callers that only want
        to fill a gap check `redis.exists` themselves.
        """
        spec_name = self.fs.path_for(cache_key).stem.rsplit("_", 1)[0]  # path_for validates the key
        found = await self._read_filesystem(cache_key, spec_name, remember=False)
        if found is None or not await self._store_redis(cache_key, found[1]):
            return False
        self.events.emit(CacheEvent("warmed", spec_name, cache_key, "redis"))
        return True

    async def read_entry(self, cache_key: str, tier: Tier = "redis") -> StoredEntry:
        """One stored entry, for display; raises CorruptEntry or KeyError."""
        raw = await (self.redis.get_raw(cache_key) if tier == "redis" else self.fs.read_raw(cache_key))
        if raw is None:
            raise KeyError(cache_key)
        return self.decoded.decode(cache_key, raw)
