"""IRCache: the three tiers behind one call, `get_application_ir`.

    Redis ──miss──► filesystem ──miss──► generator
      ▲                 │ hit: warm Redis     │ save to Redis + filesystem
      └─────────────────┘                     ▼

A corrupt entry in any tier is a miss (deleted from Redis, quarantined on
disk). Each key's last decoded entry is kept with its bytes, so reading the
same bytes again skips validation (see decoded.py). Concurrent misses for
one key generate once: in-process through a shared task, across the
machine's processes through a file lock in the cache dir (machine_lock.py,
which holds while Redis is down), across machines through a Redis lock
(SET NX PX + token, released by compare-and-delete). A Redis that is down
is skipped quickly and used again when it answers.

It is also the one door into the tiers: everything above `cache/` (the
dashboard, the watcher, prune, the commands) reads, deletes, expires and
walks through the methods here, never through a Redis client. A read-only
cache (`read_only=True`, `--read-only`, IR_READ_ONLY=1) answers from Redis
or the filesystem and changes nothing: no warm-up, no lock, no generation,
no delete or quarantine of a corrupt entry; every write raises ReadOnlyError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

from ..fmt import human_count, plural
from ..ir.envelope import CorruptEntry, StoredEntry
from ..ir.generators import GenerationError, Generator, generator_label
from ..ir.generators.base import ReportsUsage
from ..ir.prices import estimate_cost, price_for
from ..ir.usage import Usage
from ..ir.model import ApplicationIR
from ..settings import Settings, parse_ttl
from .browse import KeyBrowser
from .decoded import DecodedEntries
from .embedded import EmbeddedRedis
from .errors import (
    ClusterRefused,
    EmbeddedRedisError,
    FlushIncomplete,
    ForeignKey,
    ReadOnlyError,
    ReadOnlyMiss,
    RedisCommandError,
    RedisPermissionError,
    RedisUnavailable,
)
from .events import CacheEvent, EventBus
from .fs_tier import FileEntry, FilesystemTier
from .hits import FLUSH_INTERVAL, HitCounter, read_count
from .keys import HASH_LEN, KeySpace, ParsedKey, spec_hash, spec_name_from_path
from .live import ChangeBatch, KeyChange, coalesced, key_changes
from .machine_lock import MachineLock, whoami
from .redis import RedisTier
from .redis.walk import BATCH as _UNLINK_BATCH

log = logging.getLogger("ircache")
#: between INFO and WARNING: what a person at a terminal should see without -v, though
#: nothing is wrong (a wait for another process); the CLI shows it by default
NOTICE = logging.INFO + 5
logging.addLevelName(NOTICE, "NOTICE")
#: set on the "IR generation failed" record: a command that prints the error itself hides it
GENERATION_FAILED = "ircache_generation_failed"

Tier = Literal["redis", "filesystem", "generator"]
StoreTier = Literal["redis", "filesystem"]
_UNSET: Any = object()
T = TypeVar("T")
#: a waiter for another process's generation says so at default verbosity after this long
WAIT_NOTICE_S = 1.5
# What a Redis call can raise once it has gone through the tier's door
_REDIS_ERRORS = (RedisUnavailable, RedisCommandError)


class CacheInfo(TypedDict):
    """`get_cache_info()`: the seed's two sections, plus whether Redis answered."""

    redis: dict[str, Any]
    filesystem: dict[str, Any]


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
        read_only: bool | None = None,
        max_connections: int | None = None,
        count_hits: bool = True,
        hit_flush_interval: float = FLUSH_INTERVAL,
        redis_cluster: bool | None = _UNSET,
    ) -> None:
        """`max_connections`: bound the Redis connections (a dashboard uses 4; per node on a cluster);
        default unbounded. `count_hits`: share hit counts through Redis (hits.py), every
        `hit_flush_interval` seconds. `redis_cluster`: True / False / None (ask the server), as
        IR_REDIS_CLUSTER."""
        base = settings or Settings.from_env()
        changes: dict[str, Any] = {
            k: v
            for k, v in {"cache_dir": cache_dir, "ttl": ttl, "prefix": prefix, "read_only": read_only}.items()
            if v is not None
        }
        if redis_cluster is not _UNSET:
            changes["redis_cluster"] = redis_cluster
        if redis_url is not _UNSET:
            changes["redis_url"] = redis_url
        if "cache_dir" in changes:
            changes["cache_dir"] = Path(changes["cache_dir"])
        if "ttl" in changes:
            changes["ttl"] = parse_ttl(changes["ttl"], "ttl")
        self.settings = dataclasses.replace(base, **changes).validated()
        self.generator: Generator = generator or self.settings.make_generator()
        self.keys = KeySpace(self.settings.prefix)
        self.fs = FilesystemTier(self.settings.cache_dir, read_only=self.settings.read_only)
        self.events = EventBus()
        self.decoded = DecodedEntries(max_entries=decoded_memo)  # 0: validate every read
        self.embedded: EmbeddedRedis | None = None
        self.redis: RedisTier = None  # type: ignore[assignment]  # set in open()
        self._max_connections = max_connections
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_poll = lock_poll_interval
        self._inflight: dict[tuple[str, bool], asyncio.Task[Lookup]] = {}
        self._count_hits = count_hits
        self._hit_flush_interval = hit_flush_interval
        #: this process's hit counts, shared through Redis (None: read-only, caching off, or not asked)
        self.hits: HitCounter | None = None
        #: a Redis write refused by the ACL raises instead of degrading to the filesystem
        #: (for operations whose point is to fill Redis, like `warm`)
        self.strict_redis_writes = False
        self._said_foreign: dict[str, None] = {}  # Redis keys said to hold another tool's value (bounded)
        self._said_garbage: set[str] = set()  # stored hit totals said not to be counts (once each)

    # -- lifecycle -----------------------------------------------------------
    @property
    def ttl(self) -> int:
        return self.settings.ttl

    @property
    def read_only(self) -> bool:
        """Nothing is written, moved, deleted or generated (see the module docstring)."""
        return self.settings.read_only

    @property
    def is_open(self) -> bool:
        return self.redis is not None

    @property
    def display_url(self) -> str:
        """Where Redis is, with any password masked."""
        if self.redis is not None:
            return self.redis.display_url
        return "embedded (starting…)" if self.settings.redis_url is None else "…"

    @property
    def cache_dir(self) -> Path:
        return self.fs.directory

    @property
    def embedded_redis(self) -> bool:
        """True when this cache uses the private redis-server under its cache dir."""
        return self.settings.redis_url is None

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only cache: {what} is not allowed")

    @property
    def enabled(self) -> bool:
        """IR_CACHE_TTL=0 turns caching off: every call generates, nothing is stored."""
        return self.settings.ttl > 0

    async def open(self) -> "IRCache":
        url = self.settings.redis_url
        if url is None:
            self.embedded = EmbeddedRedis(self.settings.cache_dir)
            url = await asyncio.to_thread(self.embedded.start)
        self.redis = RedisTier(
            url, self.keys, self.settings.ttl, read_only=self.read_only, private=self.embedded is not None,
            max_connections=self._max_connections, socket_timeout=self.settings.redis_timeout,
            connect_timeout=self.settings.redis_connect_timeout,
            cluster=None if self.embedded is not None else self.settings.redis_cluster,
            on_topology=self._topology_changed,
        )
        try:
            await self.redis.open()  # is it a cluster node? (INFO cluster, once)
        except ClusterRefused:
            await self.redis.aclose()
            self.redis = None  # type: ignore[assignment]
            raise  # (never the embedded server: a single node, not asked)
        if not self.read_only:
            with contextlib.suppress(OSError):
                await self.fs.cleanup_temp_files()
        if self._count_hits and not self.read_only and self.enabled:
            self.hits = HitCounter(self.redis.hit_store, interval=self._hit_flush_interval)
            self.events.subscribe(self._count)
            self.hits.start()
        log.info("IR cache ready: Redis %s, filesystem %s, TTL %ss, generator %s%s",
                 self.redis.display_url, self.fs.directory, self.ttl, generator_label(self.generator),
                 ", read-only" if self.read_only else "")
        return self

    def _topology_changed(self, what: str) -> None:
        """A cluster's slots changed primary (a failover, a resharding): said, and told to subscribers."""
        log.info("%s", what)
        self.events.emit(CacheEvent("topology", detail=what))

    async def close(self) -> None:
        # A generation runs in its own task (single-flight): let it release its lock while
        # Redis is still there, not after (other users of an embedded server would wait it out).
        inflight = list(self._inflight.values())
        for task in inflight:
            task.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        if self.hits is not None:
            await self.hits.stop()  # the last batch, while Redis is still open
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

    def _count(self, event: CacheEvent) -> None:
        """Every lookup, into the hit counter (an event subscriber: memory only)."""
        if self.hits is None:
            return
        if event.kind == "hit":
            self.hits.record(event.tier, event.cache_key, event.usage, event.born)
        elif event.kind == "generated":  # a miss that generated (a failed one answered nothing)
            self.hits.record("generator", event.cache_key, None)

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
        if self.read_only:
            if force_refresh:
                raise ReadOnlyError(f"read-only cache: not regenerating {spec_name} ({key})")
            hit = await self._read_tiers(key, spec_name) if self.enabled else None
            if hit is None:
                raise ReadOnlyMiss(spec_name, key)
            return hit
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
        token = f"{whoami()} {uuid.uuid4().hex}"  # the holder's name travels with the token, for waiters
        machine = MachineLock(self.fs.directory, key, poll=self._lock_poll)

        async def machine_holder() -> str | None:
            return machine.holder()

        try:
            waited = await self._waiting(spec_name, machine.acquire, machine_holder)
        except OSError as exc:  # a read-only or broken cache dir: the Redis lock still works
            log.debug("No machine lock for %s (%s): %s", spec_name, machine.path, exc.strerror or exc)
            waited = False
        try:
            if waited:  # another process here generated (or refreshed) it while we waited
                hit = await self._read_tiers(key, spec_name, again=True)
                if hit is not None:
                    return hit
            locked = await self._acquire_or_wait(key, spec_name, token, force)
            if isinstance(locked, Lookup):
                return locked  # another machine generated it while we waited
            try:
                if not force:
                    hit = await self._read_tiers(key, spec_name, again=True)  # filled between our miss and the lock
                    if hit is not None:
                        return hit
                async with self._keep_lock(key, token, locked):
                    return await self._generate(key, spec_name, digest, spec_markdown, spec_path, store=True)
            finally:
                if locked:
                    with contextlib.suppress(*_REDIS_ERRORS):
                        await self.redis.locks.release(key, token)
        finally:
            machine.release()

    async def _waiting(
        self, spec_name: str, wait: Callable[[Callable[[], None]], Awaitable[T]],
        holder: Callable[[], Awaitable[str | None]],
    ) -> T:
        """Run `wait(on_wait)`; once it has waited WAIT_NOTICE_S, say so at default verbosity, naming the holder."""
        notice: asyncio.Task[None] | None = None

        async def say_later() -> None:
            await asyncio.sleep(WAIT_NOTICE_S)
            with contextlib.suppress(*_REDIS_ERRORS):
                who = await holder()
                log.log(NOTICE, "Waiting for %s to finish generating %s", who or "another process", spec_name)

        def on_wait() -> None:
            nonlocal notice
            log.info("IR for %s is being generated by another process; waiting", spec_name)
            notice = asyncio.ensure_future(say_later())

        try:
            return await wait(on_wait)
        finally:
            if notice is not None:
                notice.cancel()

    async def _acquire_or_wait(self, key: str, spec_name: str, token: str, force: bool) -> bool | Lookup:
        """True: we hold the lock. False: Redis is down, go on without one. Lookup: someone else filled it."""
        try:
            return await self._waiting(
                spec_name, lambda on_wait: self._redis_lock(key, spec_name, token, force, on_wait),
                lambda: self.redis.locks.holder(key),
            )
        except _REDIS_ERRORS:
            return False  # down, or no usable lock (the tier said why, once)

    async def _redis_lock(
        self, key: str, spec_name: str, token: str, force: bool, on_wait: Callable[[], None]
    ) -> bool | Lookup:
        waited = False
        while True:
            if await self.redis.locks.acquire(key, token, self._lock_ttl_ms):
                if waited and force:
                    hit = await self._read_tiers(key, spec_name, again=True)  # their refresh is as fresh as ours
                    if hit is not None:
                        with contextlib.suppress(*_REDIS_ERRORS):
                            await self.redis.locks.release(key, token)
                        return hit
                return True
            if not waited:
                on_wait()
            waited = True
            while await self.redis.locks.held(key):
                await asyncio.sleep(self._lock_poll)
            if not force:
                hit = await self._read_tiers(key, spec_name, again=True)
                if hit is not None:
                    return hit

    @contextlib.asynccontextmanager
    async def _keep_lock(self, key: str, token: str, locked: bool):
        """Extend the lock while a slow generation runs, so it never expires under us."""
        if not locked:
            yield
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lock_ttl_ms / 3000)
                with contextlib.suppress(*_REDIS_ERRORS):
                    await self.redis.locks.extend(key, token, self._lock_ttl_ms)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            # not `suppress(CancelledError): await task`: that would also swallow a cancel of ours
            await asyncio.gather(task, return_exceptions=True)

    # -- tiers -------------------------------------------------------------------
    async def _read_tiers(self, key: str, spec_name: str, *, again: bool = False) -> Lookup | None:
        """`again`: a re-check within one lookup; a file that could not be read is not reported twice."""
        entry = await self._read_redis(key, spec_name)
        if entry is not None:
            log.info("IR cache HIT (Redis) for %s", spec_name)
            self.events.emit(CacheEvent("hit", spec_name, key, "redis", usage=entry.usage,
                                        born=entry.generated_at.timestamp()))
            return Lookup(key, "redis", entry)
        found = await self._read_filesystem(key, spec_name, quiet=again)
        if found is not None:
            entry, raw = found
            if self.read_only:
                log.info("IR cache HIT (filesystem) for %s (read-only: Redis not warmed)", spec_name)
            else:
                log.info("IR cache HIT (filesystem) for %s, warming Redis", spec_name)
            self.events.emit(CacheEvent("hit", spec_name, key, "filesystem", usage=entry.usage,
                                        born=entry.generated_at.timestamp()))
            if not self.read_only:
                await self._store_redis(key, raw, strict=self.strict_redis_writes)
            return Lookup(key, "filesystem", entry)
        return None

    async def _read_redis(self, key: str, spec_name: str) -> StoredEntry | None:
        try:
            raw = await self.redis.get_raw(key)
        except RedisUnavailable:
            return None
        except ForeignKey as exc:  # said once per key: then served from the filesystem, Redis left alone
            if exc.redis_key not in self._said_foreign:
                self._said_foreign[exc.redis_key] = None
                while len(self._said_foreign) > 1024:
                    del self._said_foreign[next(iter(self._said_foreign))]
                log.warning("%s", exc)
            return None
        except RedisCommandError as exc:
            log.warning("Redis read of %s failed: %s", key, exc)
            return None
        if raw is None:
            return None
        try:
            return self.decoded.decode(key, raw)
        except CorruptEntry as exc:
            self.events.emit(CacheEvent("corrupt", spec_name, key, "redis", exc.reason))
            if self.read_only:
                log.warning("Corrupt IR entry in Redis for %s (%s): %s; left in place (read-only)",
                            spec_name, key, exc.reason)
                return None
            log.warning("Corrupt IR entry in Redis for %s (%s): %s; deleting it", spec_name, key, exc.reason)
            with contextlib.suppress(*_REDIS_ERRORS):
                await self.redis.delete(key)
            return None

    async def _read_filesystem(
        self, key: str, spec_name: str, *, remember: bool = True, quiet: bool = False
    ) -> tuple[StoredEntry, bytes] | None:
        try:
            raw = await self.fs.read_raw(key)
            if raw is None:
                return None
            return self.decoded.decode(key, raw, remember=remember), raw
        except CorruptEntry as exc:  # bad bytes, or not a regular file (a symlink is never followed)
            self.events.emit(CacheEvent("corrupt", spec_name, key, "filesystem", exc.reason))
            if self.read_only:
                log.warning("Corrupt IR entry on disk for %s (%s): %s; left in place (read-only)",
                            spec_name, key, exc.reason)
                return None
            log.warning("Corrupt IR entry on disk for %s (%s): %s; moving it to quarantine", spec_name, key, exc.reason)
            try:
                await self.fs.quarantine(key, exc.reason)
            except OSError as qexc:
                log.warning("Cannot quarantine %s: %s", key, qexc.strerror or qexc)
            return None
        except OSError as exc:
            log.log(logging.DEBUG if quiet else logging.WARNING, "Cannot read cache file for %s: %s",
                    key, exc.strerror or exc)
            return None

    async def _store_redis(self, key: str, raw: bytes, *, strict: bool = False) -> bool:
        """SET the entry; False when Redis is down or refused it (logged). `strict`: a refused
        ACL rule raises, for operations that exist only to write Redis (warm)."""
        try:
            return await self.redis.set_raw(key, raw)
        except (RedisUnavailable, ForeignKey):
            return False  # (another tool's value under this key was said when it was read)
        except RedisCommandError as exc:
            if strict and isinstance(exc, RedisPermissionError):
                raise
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
            if getattr(self.generator, "uses_llm", True):
                log.info("IR cache MISS for %s, generating with LLM (%s)", spec_name, label)
            else:  # the seed's line, minus a claim that an LLM is asked
                log.info("IR cache MISS for %s, generating with the %s generator (no LLM)", spec_name, label)
            self.events.emit(CacheEvent("miss", spec_name, key, "generator", label))
        deadline = self.settings.generate_timeout or None
        reported = Usage()
        started = time.monotonic()
        try:
            async with asyncio.timeout(deadline):
                if isinstance(self.generator, ReportsUsage):
                    ir, reported = await self.generator.generate_with_usage(spec_markdown, spec_name)
                else:
                    ir = await self.generator.generate(spec_markdown, spec_name)
            if not isinstance(ir, ApplicationIR):
                ir = ApplicationIR.model_validate(ir)
        except TimeoutError:
            message = (f"{self.generator.name} generator did not finish {spec_name} within {deadline:g}s "
                       "(IR_GENERATE_TIMEOUT); nothing was cached")
            log.error("IR generation failed for %s: %s", spec_name, message, extra={GENERATION_FAILED: True})
            self.events.emit(CacheEvent("error", spec_name, key, "generator", message))
            raise GenerationError(message) from None
        except GenerationError as exc:
            log.error("IR generation failed for %s: %s", spec_name, exc, extra={GENERATION_FAILED: True})
            self.events.emit(CacheEvent("error", spec_name, key, "generator", str(exc)))
            raise
        except Exception as exc:
            message = f"{self.generator.name} generator failed for {spec_name}: {exc.__class__.__name__}: {exc}"
            log.error("IR generation failed for %s: %s", spec_name, message, extra={GENERATION_FAILED: True})
            self.events.emit(CacheEvent("error", spec_name, key, "generator", message))
            raise GenerationError(message) from exc
        usage = self._priced(reported, time.monotonic() - started)
        entry = StoredEntry.create(
            ir, spec_name=spec_name, spec_hash=digest, spec_path=str(spec_path),
            generator=self.generator.name, model=self.generator.model, usage=usage,
        )
        if store:
            raw = entry.to_json_bytes()
            in_redis = on_disk = False
            try:
                in_redis = await self._store_redis(key, raw, strict=self.strict_redis_writes)
            finally:  # what was paid for is kept on disk even when Redis refuses it
                on_disk = await self._store_filesystem(key, raw)
            where = " and ".join(t for t, ok in (("Redis", in_redis), ("the filesystem", on_disk)) if ok)
            if where:
                log.info("Generated IR for %s with %s and cached it as %s (in %s)", spec_name, label, key, where)
            else:
                log.warning("Generated IR for %s with %s, but could not cache it (%s)", spec_name, label, key)
        self.events.emit(CacheEvent("generated", spec_name, key, "generator", label, usage))
        return Lookup(key, "generator", entry)

    def _priced(self, reported: Usage, seconds: float) -> Usage:
        """The generator's tokens, with the measured duration and the estimated dollars.

        A generator that reports no tokens and asks no model (offline) cost nothing but time.
        """
        tokens = reported.input_tokens, reported.output_tokens
        if tokens == (None, None) and not getattr(self.generator, "uses_llm", True):
            reported = reported.model_copy(update={"input_tokens": 0, "output_tokens": 0})
        cost = reported.cost_usd
        if cost is None and getattr(self.generator, "uses_llm", True):
            cost = estimate_cost(price_for(self.generator.model, self.settings.price_override),
                                 reported.input_tokens, reported.output_tokens,
                                 reported.cache_read_input_tokens, reported.cache_creation_input_tokens)
        elif cost is None:
            cost = 0.0
        # validated again (model_copy would not): a figure out of bounds is unknown, never stored
        return Usage.model_validate({**reported.model_dump(), "duration_s": round(reported.duration_s or seconds, 3),
                                     "cost_usd": cost})

    # -- operations ----------------------------------------------------------------
    async def clear_cache(
        self, redis: bool = True, filesystem: bool = True, spec_name: str | None = None,
        *, on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
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
                if self.hits is not None:  # (the entries' hit counts in Redis went with them)
                    self.hits.forget(spec_name)
            if filesystem:
                result["filesystem"] = await self.fs.clear(spec_name)
        except FlushIncomplete as exc:
            if result:  # Redis was flushed before the filesystem failed: say so too
                raise FlushIncomplete({**result, **exc.done}, exc.reason) from None
            raise
        finally:
            if result:
                self.events.emit(CacheEvent("flushed", spec_name or "", "", "+".join(result), str(result)))
        self.decoded.clear()  # not needed for correctness (bytes are compared), only to free memory
        if redis:
            result["foreign_kept"] = kept
        return result

    async def hit_totals(self) -> dict[str, Any]:
        """Hits by tier across every process, since when, and what they saved (this process's
        pending batch included): `{"redis", "filesystem", "generator", "since", "saved_usd",
        "saved_seconds"}`. A stored total that is not a count reads as 0 (said once). Raises
        RedisUnavailable."""
        stored = await self._tier().hit_store.totals()
        pending = self.hits.pending if self.hits is not None else None
        where = self.keys.stats_key

        def count(name: str, integer: bool = True) -> float:
            return read_count(stored, name, where=where, said=self._said_garbage, integer=integer)

        totals: dict[str, Any] = {
            tier: int(count(tier)) + (pending.totals[tier] if pending else 0)
            for tier in ("redis", "filesystem", "generator")
        }
        since = stored.get("since")
        totals["since"] = since if since and len(since) <= 40 and since.isprintable() else None
        totals["saved_usd"] = round(count("saved_usd", False) + (pending.saved_usd if pending else 0), 6)
        totals["saved_seconds"] = round(count("saved_seconds", False) + (pending.saved_seconds if pending else 0), 3)
        return totals

    async def hit_counts(self, cache_keys: list[str], born: list[float | None] | None = None) -> list[dict[str, Any]]:
        """Per key: `{"redis", "filesystem", "last"}` (last: epoch seconds or None), across
        processes, this one's pending batch included. `born`: each entry's generated_at (epoch
        seconds), when known: counts made on another generation of the key (an entry deleted and
        made again) are not its. Raises RedisUnavailable."""
        stored = await self._tier().hit_store.counts(cache_keys)
        pending = self.hits.pending if self.hits is not None else None
        out = []
        for i, (key, (r, f, last, counted_on)) in enumerate(zip(cache_keys, stored)):
            made = born[i] if born is not None else None
            if made is not None and counted_on is not None and abs(made - counted_on) > 1e-3:
                r, f, last = 0, 0, None
            mine = pending.per_entry.get(key) if pending else None
            if mine:
                r, f = r + mine["redis"], f + mine["filesystem"]
                last = max(last or 0.0, pending.last.get(key, 0.0)) or None
            out.append({"redis": r, "filesystem": f, "last": last})
        return out

    async def generation_totals(self) -> dict[str, Any]:
        """What the entries on disk (the tier that keeps every generation) cost to produce:
        `{"entries", "entries_with_usage", "input_tokens", "output_tokens", "cost_usd", "seconds"}`."""
        return await self.fs.usage_totals()

    async def get_cache_info(self) -> CacheInfo:
        """`{"redis": {...}, "filesystem": {...}}` as in the seed, plus whether Redis answered."""
        try:
            redis_info: dict[str, Any] = {"reachable": True, **await self.redis.get_ir_cache_stats()}
        except _REDIS_ERRORS as exc:
            redis_info = {"reachable": False, "error": str(exc), "server": None}
        redis_info["cluster"] = self.redis.cluster_info  # {"primaries": N} on a cluster, None on one node
        return {"redis": redis_info, "filesystem": await self.fs.stats()}

    async def warm_redis(self) -> dict[str, Any]:
        """Copy every valid filesystem entry that Redis lacks into Redis, and say what was not.

        `{"warmed", "already_in_redis", "failed", "left", "failures", "error"}`, its counts in
        step with its list on every path: `failures` holds one "key: reason" per entry tried
        and not copied (corrupt on disk, refused by a full Redis), so `failed == len(failures)`.
        A Redis that is down, or refuses the walk itself (an ACL rule: every entry would fail
        the same way), stops it: `left` counts the entries not tried and `error` says why
        (None when the walk ran to its end); the stop is logged as an ERROR.
        """
        self._writable("warming Redis")
        entries = await self.fs.list_entries()
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
            found = await self._read_filesystem(entry.cache_key, entry.spec_name, remember=False)
            if found is None:
                failures.append(f"{entry.cache_key}: unreadable or corrupt on disk (see the warning above)")
                continue
            try:
                await self.redis.set_raw(entry.cache_key, found[1], follow_failover=True)
            except (RedisUnavailable, RedisPermissionError) as exc:
                # this entry counts as not tried too: its SET was not confirmed
                return self._warm_result(warmed, skipped, failures, len(todo) - done, str(exc))
            except (RedisCommandError, ForeignKey) as exc:  # e.g. OOM: a full Redis refuses writes; or
                failures.append(f"{entry.cache_key}: {exc}")  # another tool's value holds the key
                continue
            warmed += 1
            self.events.emit(CacheEvent("warmed", entry.spec_name, entry.cache_key, "redis"))
        return self._warm_result(warmed, skipped, failures, 0, None)

    @staticmethod
    def _warm_result(warmed: int, skipped: int, failures: list[str], left: int, error: str | None) -> dict[str, Any]:
        if error is not None:
            log.error("Warming Redis stopped after %s: %s", plural(warmed, "entry", "entries"), error)
        failed = len(failures)
        tail = f", {plural(failed, 'entry', 'entries')} failed" if failed else ""
        tail += f", {plural(left, 'entry', 'entries')} not tried" if left else ""
        log.info("Warmed Redis from the filesystem: %s copied, %s already there%s",
                 plural(warmed, "entry", "entries"), human_count(skipped), tail)
        return {"warmed": warmed, "already_in_redis": skipped, "failed": failed, "left": left, "failures": failures,
                "error": error}

    async def warm_key(self, cache_key: str) -> bool:
        """Copy one filesystem entry into Redis; True when it was copied.

        The file is read like any filesystem hit: a corrupt one is quarantined
        and not copied. False when there is no valid file, Redis is down or
        caching is off. It does not look at Redis first: callers that only want
        to fill a gap check `in_redis` themselves.
        """
        self._writable(f"warming {cache_key}")
        spec_name = self.fs.path_for(cache_key).stem.rsplit("_", 1)[0]  # path_for validates the key
        found = await self._read_filesystem(cache_key, spec_name, remember=False)
        if found is None or not await self._store_redis(cache_key, found[1]):
            return False
        self.events.emit(CacheEvent("warmed", spec_name, cache_key, "redis"))
        return True

    async def read_entry(self, cache_key: str, tier: StoreTier = "redis") -> StoredEntry:
        """One stored entry; raises CorruptEntry or KeyError (and the tier's errors).

        A big one (decoded.SLICED_MIN bytes and up) is decoded in slices in a
        worker thread, so pydantic never holds the event loop for long; its
        whole model is still built (~9× the bytes), so a viewer that only
        shows it should use read_entry_digest. A Redis key holding a hash,
        list... (WRONGTYPE) is a CorruptEntry.
        """
        from .decoded import SLICED_MIN  # (imported here: this method is all that uses it)

        raw = await self._stored_bytes(cache_key, tier)
        if len(raw) < SLICED_MIN:
            return self.decoded.decode(cache_key, raw)
        abandoned = False
        try:
            return await asyncio.to_thread(self.decoded.decode, cache_key, raw, sliced=True, stop=lambda: abandoned)
        finally:
            abandoned = True  # cancelled: the thread gives up at its next slice

    async def read_entry_digest(self, cache_key: str, tier: StoreTier = "redis") -> EntryDigest:  # noqa: F821
        """What a viewer needs of one stored entry: its head, counts, size and indented JSON.

        Raises like read_entry. A small entry is decoded as read_entry does
        (and shares its memo); a big one is validated a slice at a time in a
        worker thread and never held whole (see decoded.digest_sliced): the
        event loop keeps running and memory stays ~3× the stored bytes.
        """
        from .decoded import SLICED_MIN, EntryDigest, digest_sliced

        raw = await self._stored_bytes(cache_key, tier)
        if len(raw) < SLICED_MIN:
            return EntryDigest(self.decoded.decode(cache_key, raw), len(raw))
        abandoned = False
        try:
            return await asyncio.to_thread(digest_sliced, raw, cache_key[-HASH_LEN:], stop=lambda: abandoned)
        finally:
            abandoned = True

    async def _stored_bytes(self, cache_key: str, tier: StoreTier) -> bytes:
        """The bytes read_entry decodes; KeyError when there are none, ForeignKey when the key holds
        another tool's value."""
        raw = await (self._tier().get_raw(cache_key) if tier == "redis" else self.fs.read_raw(cache_key))
        if raw is None:
            raise KeyError(cache_key)
        return raw

    # -- the door for everything above the cache layer ------------------------------
    def _tier(self) -> RedisTier:
        """The Redis tier, or RedisUnavailable when the cache could not be opened (the filesystem still works)."""
        if self.redis is None:
            raise RedisUnavailable(f"Redis not connected ({self.display_url})")
        return self.redis

    async def probe(self) -> None:
        """PING Redis now (even while it is being skipped as down); raises RedisUnavailable.

        The embedded server, found gone (killed, crashed), is started again first: a
        watcher or dashboard probing it comes back by itself.
        """
        try:
            await self._tier().probe()
        except RedisUnavailable:
            if self.embedded is None:
                raise
            try:
                await asyncio.to_thread(self.embedded.ensure_running)
            except EmbeddedRedisError as exc:
                log.warning("The embedded redis-server could not be restarted: %s", exc)
                raise RedisUnavailable(str(exc)) from None
            await self._tier().probe()

    async def require_redis(self) -> None:
        """Raise RedisUnavailable (one line) unless Redis answers (on a cluster, once a primary that
        died has been replaced, within the failover wait)."""
        await self._tier().ping(follow_failover=True)

    async def in_redis(self, cache_key: str) -> bool:
        return await self._tier().exists(cache_key)

    async def in_redis_many(self, cache_keys: list[str]) -> list[bool]:
        """Which keys Redis holds, in one round trip."""
        return await self._tier().exists_many(cache_keys)

    async def on_disk(self, cache_key: str) -> bool:
        """A regular entry file exists (a symlink does not count)."""
        return await self.fs.exists(cache_key)

    async def list_files(self, *, include_quarantined: bool = False) -> list[FileEntry]:
        return await self.fs.list_entries(include_quarantined=include_quarantined)

    async def scan_keys(self, spec_name: str | None = None) -> AsyncIterator[list[ParsedKey]]:
        """Every IR key in Redis (or exactly one spec's), a SCAN page at a time."""
        async with contextlib.aclosing(self._tier().scan_ir_keys(spec_name)) as pages:
            async for page in pages:
                yield page

    async def count_keys(self, spec_name: str | None = None) -> int:
        """How many IR entries Redis holds (of one spec), by the server-side stats walk."""
        return await self._tier().count_ir_keys(spec_name)

    async def count_entries(self, spec_name: str | None = None) -> tuple[int, int]:
        """(entries, keys of our name holding another tool's value) in Redis, of one spec or all:
        what a flush would delete, and what it would keep. One server-side walk."""
        return await self._tier().count_entries(spec_name)

    def key_browser(self, page_size: int = 100, *, time_budget: float = 0.5) -> KeyBrowser:
        """A SCAN pager over the IR keys, for a key pane."""
        return KeyBrowser(self.redis, page_size, time_budget=time_budget)

    async def delete_entry(self, cache_key: str, tier: StoreTier) -> bool:
        """Delete one key (UNLINK) or one entry file; True when it was there."""
        self._writable(f"deleting {cache_key}")
        spec_name = self.fs.path_for(cache_key).stem.rsplit("_", 1)[0]
        gone = await (self.redis.delete(cache_key) if tier == "redis" else self.fs.delete(cache_key))
        if gone:
            log.info("Deleted %s from %s", cache_key, "Redis" if tier == "redis" else "the filesystem")
            self.events.emit(CacheEvent("deleted", spec_name, cache_key, tier))
        return gone

    async def delete_entries(self, redis_keys: list[str], files: list[str]) -> dict[str, int]:
        """Delete exactly these IR entries (UNLINK in batches) and entry files; how many went from
        each. A key that holds another tool's value is kept (and said in the log)."""
        self._writable("deleting entries")
        removed_redis = removed_files = kept = 0
        rkeys = [self.keys.redis_key(k).encode() for k in redis_keys]

        def keep(n: int) -> None:
            nonlocal kept
            kept += n

        try:
            try:
                for start in range(0, len(rkeys), _UNLINK_BATCH):
                    removed_redis += await self._tier().unlink_many(rkeys[start : start + _UNLINK_BATCH], on_kept=keep)
                    await self.redis.hit_store.unlink(redis_keys[start : start + _UNLINK_BATCH])
            except FlushIncomplete as exc:  # some of a cluster's primaries deleted their part of the batch
                removed_redis += exc.done.get("redis", 0)
                raise FlushIncomplete({"redis": removed_redis}, exc.reason) from None
            except _REDIS_ERRORS as exc:
                raise FlushIncomplete({"redis": removed_redis}, f"Redis delete stopped: {exc}") from None
            try:
                for key in files:
                    if await self.fs.delete(key):
                        removed_files += 1
            except OSError as exc:  # a read-only cache dir: the next files would fail the same way
                raise FlushIncomplete({"redis": removed_redis, "filesystem": removed_files},
                                      f"cannot delete files in {self.fs.directory}: {exc.strerror or exc}") from None
        finally:  # what went is announced even when the rest could not go
            self._emit_deleted(removed_redis, removed_files)
        if kept:
            log.info("%s under the prefix %s not IR entries: kept", plural(kept, "key"), "is" if kept == 1 else "are")
        return {"redis": removed_redis, "filesystem": removed_files}

    def _emit_deleted(self, removed_redis: int, removed_files: int) -> None:
        if removed_redis or removed_files:
            self.events.emit(CacheEvent("deleted", "", "", "redis+filesystem",
                                        str({"redis": removed_redis, "filesystem": removed_files})))

    async def reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        """EXPIRE one key to `ttl` (default: the configured TTL); False when it is gone or TTL is 0."""
        self._writable(f"resetting the TTL of {cache_key}")
        ok = await self.redis.reset_ttl(cache_key, ttl)
        if ok:
            seconds = self.ttl if ttl is None else ttl
            log.info("Reset TTL of %s to %ss", cache_key, seconds)
            self.events.emit(CacheEvent("ttl", cache_key.rsplit("_", 1)[0], cache_key, "redis", str(seconds)))
        return ok

    async def enable_live_updates(self) -> bool:
        """Keyspace notifications on (True) or not possible (False: poll instead).

        Turning them on is a CONFIG SET: done on the private embedded server,
        and on an external one unless this cache is read-only.
        """
        return await self.redis.enable_notifications(may_configure=not self.read_only or self.embedded_redis)

    def key_changes(self, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[KeyChange]:
        """IR key changes as they happen; raises RedisUnavailable when the connection drops."""
        return key_changes(self.redis, on_subscribed)

    def key_change_batches(
        self, on_subscribed: Callable[[], None] | None = None, *, interval: float = 0.1, limit: int = 500
    ) -> AsyncIterator[ChangeBatch]:
        """IR key changes, coalesced per `interval` (see live.coalesced): what a dashboard listens to."""
        return coalesced(key_changes(self.redis, on_subscribed), interval=interval, limit=limit)
