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
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..ir.envelope import GeneratorInfo, StoredEntry
from ..ir.generators import Generator, generator_label, identity_of
from ..ir.generators.base import SubmitsBatches
from ..ir.model import ApplicationIR
from ..settings import Settings, parse_ttl
from .browse import KeyBrowser, KeyRow
from .audit import AuditTrail, file_records, stream_records
from .audit_mirror import AuditMirror
from .decoded import DecodedEntries, EntryDigest
from .embedded import EmbeddedRedis
from .batch import BatchProgress, BatchWarm, BatchWarmResult
from .batch_claims import BatchClaims, made_in_claimed_batch
from .batch_record import BatchBook, made_in_batch
from .errors import (BatchUnsupported, ClusterRefused, EmbeddedRedisError, ReadOnlyError, ReadOnlyMiss,
                     RedisUnavailable)
from .events import CacheEvent, EventBus
from .export import ExportDone, ExportFormat, ExportRow, given, write_view
from .fill import Filler
from .fs_tier import FileEntry, FilesystemTier
from .generate import Generation
from .hits import FLUSH_INTERVAL, HitCounter, counts_with, totals_with
from .keys import HASH_LEN, CacheKey, KeySpace
from .live import ChangeBatch, KeyChange, coalesced, key_changes
from .maintenance import Maintenance
from .redis import RedisTier
from .results import GENERATION_FAILED, NOTICE, CacheInfo, DeleteResult, FlushResult, GenerationTotals, HitCount
from .results import AuditRecords, HitTotals, Lookup, NotificationsRestored, RawHead, StoreTier, Tier, WarmResult
from .server_facts import ServerFacts
from .tiers import REDIS_ERRORS, Tiers

RAW_HEAD_LIMIT = 1024  # bytes of a value read_raw_head reads unless asked for another amount

log = logging.getLogger("ircache")
_UNSET: Any = object()
P = TypeVar("P")
__all__ = ["GENERATION_FAILED", "NOTICE", "BatchProgress", "BatchWarmResult", "CacheInfo", "DeleteResult", "FlushResult",
           "GenerationTotals", "HitCount", "HitTotals", "IRCache", "Lookup", "RawHead", "StoreTier", "Tier", "WarmResult"]


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
        origin: str = "library",
    ) -> None:
        """`max_connections`: bound the Redis connections (a dashboard uses 4; per node on a cluster);
        default unbounded. `count_hits`: share hit counts through Redis (hits.py), every
        `hit_flush_interval` seconds. `redis_cluster`: True / False / None (ask the server), as
        IR_REDIS_CLUSTER. `origin`: who acts, as the audit trail says it ("dashboard",
        "cli flush"; audit.py)."""
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
        self._generator: Generator = generator or self.settings.make_generator()
        self.keys = KeySpace(self.settings.prefix)
        self.fs = FilesystemTier(self.settings.cache_dir, read_only=self.settings.read_only)
        self.batches = BatchBook(self.fs.directory)  # Message Batches in flight (batch_record.py)
        self.events = EventBus()
        self.decoded = DecodedEntries(max_entries=decoded_memo)  # 0: validate every read
        self.embedded: EmbeddedRedis | None = None
        self.redis: RedisTier = None  # type: ignore[assignment]  # set in open()
        self._max_connections = max_connections
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_poll = lock_poll_interval
        # the read/store path, generation and the fill (set in open(): they need the Redis tier)
        self._tiers: Tiers | None = None
        self._generation: Generation | None = None
        self._filler: Filler | None = None
        self._count_hits = count_hits
        self._hit_flush_interval = hit_flush_interval
        #: this process's hit counts, shared through Redis (None: read-only, caching off, or not asked)
        self.hits: HitCounter | None = None
        self._said_garbage: set[str] = set()  # stored hit totals said not to be counts (once each)
        #: every action that changes the cache, one JSON line each (none from a read-only cache)
        self.audit = AuditTrail(self.fs.directory, origin, enabled=not self.read_only)
        self._audit_mirror: AuditMirror | None = None  # IR_AUDIT_REDIS=1, once open
        self._maintenance = Maintenance(self._tier, self._path, self.fs, self.keys, self.events, self.decoded,
                                        self.audit, read_only=self.read_only, ttl=self.ttl,
                                        forget_hits=self._forget_hits)

    # -- lifecycle -----------------------------------------------------------
    @property
    def generator(self) -> Generator:
        return self._generator

    @generator.setter
    def generator(self, generator: Generator) -> None:
        """Swapped in place (a test's counting generator, say): the next miss uses it."""
        self._generator = generator
        if self._generation is not None:
            self._generation.generator = generator

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
            self.embedded = EmbeddedRedis(self.settings.cache_dir, server_binary=self.settings.redis_server)
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
        self._tiers = Tiers(self.redis, self.fs, self.decoded, self.events, read_only=self.read_only)
        self._generation = Generation(self.generator, self.settings, self._tiers, self.events)
        self._filler = Filler(self.redis, self.fs, self._tiers, self._generation, lock_ttl_ms=self._lock_ttl_ms,
                              lock_poll=self._lock_poll)
        if not self.read_only:
            with contextlib.suppress(OSError):
                await self.fs.cleanup_temp_files()
        if self.settings.audit_redis and not self.read_only:  # every line to the stream too
            self.audit.mirror = self._audit_mirror = AuditMirror(self.redis.audit_stream)
        if self._count_hits and not self.read_only and self.enabled:
            self.hits = HitCounter(self.redis.hit_store, interval=self._hit_flush_interval)
            self.events.tally = self.hits.record  # called directly on every lookup: no event built for it
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
        if self._filler is not None:
            await self._filler.cancel()
        if self.hits is not None:
            await self.hits.stop()  # the last batch, while Redis is still open
        if self._audit_mirror is not None:
            await self._audit_mirror.close()  # (the same)
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

    async def lookup(self, spec_markdown: str, spec_path: str = "spec.md", force_refresh: bool = False, *,
                     strict_redis: bool = False, wait_for_batch: bool = True) -> Lookup:
        """Like get_application_ir, but also says which tier answered. `strict_redis`: a Redis write
        the ACL refuses raises instead of degrading to the filesystem (for operations whose point is
        to fill Redis, like `warm`). A miss on a spec in a Message Batch that a live process collects
        waits for its entry, or with `wait_for_batch=False` raises BatchInFlight."""
        key, digest = CacheKey.for_spec(spec_markdown, spec_path)  # checked here, then passed as a value
        if self.read_only:
            if force_refresh:
                raise ReadOnlyError(f"read-only cache: not regenerating {key.spec_name} ({key})")
            hit = await self._path().read(key) if self.enabled else None
            if hit is None:
                raise ReadOnlyMiss(key.spec_name, key.cache_key)
            return dataclasses.replace(hit, outdated=self.is_outdated(hit.entry))
        if not self.enabled:
            log.info("IR cache disabled (IR_CACHE_TTL=0) for %s, generating with %s", key.spec_name,
                     generator_label(self.generator))
            return await self._open(self._generation).generate(key, digest, spec_markdown, spec_path, store=False)
        if not force_refresh:
            # IR_OUTDATED=regenerate: an outdated entry is a miss, and the generation replaces it
            accept = (lambda e: not self.is_outdated(e)) if self.settings.outdated == "regenerate" else None
            hit = await self._path().read(key, strict=strict_redis, accept=accept)
            if hit is None:
                hit = await made_in_batch(self.batches, self._path(), key, wait_for_batch, accept)  # a batch makes it
            if hit is None:  # ... or one another machine's warm claimed it for (batch_claims.py)
                hit = await made_in_claimed_batch(self.redis.batch_claims, self._path(), key, wait_for_batch, accept)
            if hit is None:
                hit = await self._open(self._filler).fill(key, digest, spec_markdown, spec_path, False, strict_redis,
                                                          accept)
            return dataclasses.replace(hit, outdated=self.is_outdated(hit.entry)) if hit.tier != "generator" else hit
        with self.audit.recording("regenerate", spec=key.spec_name, key=key.cache_key, tiers=("redis", "filesystem")):
            return await self._open(self._filler).fill(key, digest, spec_markdown, spec_path, True, strict_redis)

    async def warm_batch(self, specs: list[tuple[str, str]], *, force: bool = False,
                         on_progress: Callable[[BatchProgress], None] | None = None) -> BatchWarmResult:
        """Generate every spec (markdown, path) that neither tier holds in Message Batches at half the
        price, after resuming any batch an earlier warm left in this cache dir (batch.py). Raises
        BatchUnsupported when the generator has no batch interface, GenerationError when the batch API
        fails (the record stays: run again to resume), and the tiers' errors on a refused write.
        `force`: submit every spec, cached or not (`warm --outdated --batch` regenerates those)."""
        self._writable("warm --batch")
        if not isinstance(self.generator, SubmitsBatches):
            raise BatchUnsupported(f"the {self.generator.name} generator has no batch API")
        warm = BatchWarm(self.generator.batches(), self._open(self._generation), self._open(self._filler),
                         self._path(), self.batches, BatchClaims(self.redis.batch_claims), poll_interval=self.settings.batch_poll_interval,
                         poll_max=self.settings.batch_poll_max, on_progress=on_progress, force=force)
        return await warm.run(specs)

    # -- outdated entries: made by another generator, model or prompt (envelope.GeneratorInfo) --
    @property
    def current_generator(self) -> GeneratorInfo:
        """What an entry made now records of its generator: name, model, fingerprint."""
        return identity_of(self.generator)

    def is_outdated(self, entry: StoredEntry) -> bool:
        """Made by another generator, model or prompt than this cache's (served all the same,
        unless IR_OUTDATED=regenerate)."""
        return entry.generator.outdated_for(self.current_generator)

    async def outdated_among(self, specs: Sequence[tuple[str, str]]) -> list[int]:
        """Which of these specs (markdown, path) have a current entry that is outdated, by index:
        what `warm --outdated` regenerates. Read from Redis, else the filesystem, as a lookup would,
        but counted as no hit and warming nothing; a spec with no entry is not outdated."""
        tiers, current, found = self._path(), self.current_generator, []
        for i, (markdown, path) in enumerate(specs):
            key, _ = CacheKey.for_spec(markdown, path)
            entry = await tiers.read_redis(key)
            if entry is None and (on_disk := await tiers.read_filesystem(key, remember=False)) is not None:
                entry = on_disk[0]
            if entry is not None and entry.generator.outdated_for(current):
                found.append(i)
        return found

    # -- maintenance (maintenance.py) --------------------------------------------------
    async def clear_cache(
        self, redis: bool = True, filesystem: bool = True, spec_name: str | None = None,
        *, on_progress: Callable[[int], None] | None = None,
    ) -> FlushResult:
        """Flush the IR cache (all of it, or exactly one spec) from the chosen tiers."""
        return await self._maintenance.clear_cache(redis, filesystem, spec_name, on_progress=on_progress)

    async def warm_redis(self) -> WarmResult:
        """Copy every valid filesystem entry that Redis lacks into Redis (Maintenance.warm_redis)."""
        return await self._maintenance.warm_redis()

    async def warm_key(self, cache_key: str) -> bool:
        """Copy one filesystem entry into Redis; True when it was copied (Maintenance.warm_key)."""
        return await self._maintenance.warm_key(cache_key)

    async def delete_entry(self, cache_key: str, tier: StoreTier) -> bool:
        """Delete one key (UNLINK) or one entry file; True when it was there."""
        return await self._maintenance.delete_entry(cache_key, tier)

    async def delete_entries(self, redis_keys: list[str], files: list[str], *, action: str = "delete") -> DeleteResult:
        """Delete exactly these IR entries and entry files; how many went from each."""
        return await self._maintenance.delete_entries(redis_keys, files, action=action)

    async def reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        """EXPIRE one key to `ttl` (default: the configured TTL); False when it is gone or TTL is 0."""
        return await self._maintenance.reset_ttl(cache_key, ttl)

    def _forget_hits(self, spec_name: str | None) -> None:
        if self.hits is not None:
            self.hits.forget(spec_name)

    def _path(self) -> Tiers:
        """The read/store path, or RedisUnavailable before the cache is open."""
        return self._open(self._tiers)

    def _open(self, part: P | None) -> P:
        if part is None:
            raise RedisUnavailable(f"Redis not connected ({self.display_url})")
        return part

    async def hit_totals(self) -> HitTotals:
        """Hits by tier across every process, since when, and what they saved (this process's
        pending batch included). A stored total that is not a count reads as 0 (said once). Raises
        RedisUnavailable."""
        stored = await self._tier().hit_store.totals()
        return totals_with(stored, self.hits.pending if self.hits is not None else None, where=self.keys.stats_key,
                           said=self._said_garbage)

    async def hit_counts(self, cache_keys: list[str], born: list[float | None] | None = None) -> list[HitCount]:
        """Per key, its HitCount (last: epoch seconds or None), across processes, this one's pending
        batch included. `born`: each entry's generated_at (epoch seconds), when known: counts made on
        another generation of the key (an entry deleted and made again) are not its. Raises
        RedisUnavailable."""
        stored = await self._tier().hit_store.counts(cache_keys)
        return counts_with(stored, self.hits.pending if self.hits is not None else None, cache_keys, born)

    async def audit_records(self, since: datetime | None = None) -> AuditRecords:
        """The audit trail, oldest first: under IR_AUDIT_REDIS=1 every machine's, from the Redis stream
        (raises the tier's errors: `audit` then reads this machine's file), else this cache dir's file."""
        if not self.settings.audit_redis:
            return file_records(self.fs.directory, since)
        stream = self._tier().audit_stream
        return stream_records(await stream.read(since), since, f"the Redis stream {stream.key}")

    async def generation_totals(self) -> GenerationTotals:
        """What the entries on disk (the tier that keeps every generation) cost to produce."""
        return GenerationTotals(**await self.fs.usage_totals())

    async def get_cache_info(self, *, outdated: bool = False) -> CacheInfo:
        """The seed's `{"redis": {...}, "filesystem": {...}}` (CacheInfo), plus whether Redis answered;
        with `outdated`, each section's `outdated` count too (one more read of each entry's first KiB)."""
        current = self.current_generator if outdated else None
        try:
            redis_info: dict[str, Any] = {"reachable": True, **await self.redis.get_ir_cache_stats(current)}
        except REDIS_ERRORS as exc:
            redis_info = {"reachable": False, "error": str(exc), "server": None}
        redis_info["cluster"] = self.redis.cluster_info  # {"primaries": N} on a cluster, None on one node
        return CacheInfo(redis_info, await self.fs.stats(current))

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

    async def read_entry_digest(self, cache_key: str, tier: StoreTier = "redis") -> EntryDigest:
        """What a viewer needs of one stored entry: its head, counts, size and indented JSON.

        Raises like read_entry. A small entry is decoded as read_entry does
        (and shares its memo); a big one is validated a slice at a time in a
        worker thread and never held whole (see decoded.digest_sliced): the
        event loop keeps running and memory stays ~3× the stored bytes.
        """
        from .decoded import SLICED_MIN, digest_sliced

        raw = await self._stored_bytes(cache_key, tier)
        if len(raw) < SLICED_MIN:
            return EntryDigest(self.decoded.decode(cache_key, raw), len(raw))
        abandoned = False
        try:
            return await asyncio.to_thread(digest_sliced, raw, cache_key[-HASH_LEN:], stop=lambda: abandoned)
        finally:
            abandoned = True

    async def read_raw_head(self, cache_key: str, limit: int = RAW_HEAD_LIMIT) -> RawHead:
        """The first `limit` bytes (at most 64 KiB) of the Redis value under `cache_key`, as stored:
        to look at a corrupt entry or another tool's value. A bounded read (GETRANGE) that changes
        nothing; raises the tier's errors (RedisUnavailable...)."""
        kind, head, more = await self._tier().raw_head(cache_key, max(1, min(limit, 64 * 1024)))
        return RawHead(cache_key, kind, head, more)

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

    async def scan_keys(self, spec_name: str | None = None) -> AsyncIterator[list[CacheKey]]:
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
        return KeyBrowser(self.redis, page_size, time_budget=time_budget, current=self.current_generator)

    async def entry_rows(self, filter_text: str | None = None, *, foreign: bool = False,
                         page_size: int = 500) -> AsyncGenerator[list[KeyRow], None]:
        """Every key the `/` filter `filter_text` takes (KeyBrowser.set_filter: a substring, `=name`,
        a glob; InvalidSpecName for a bad `=name`), a page of rows at a time, as the key pane shows
        them (hits and last hit from the same counters). Memory stays one page whatever the count;
        a cluster is walked primary by primary. Another tool's values under our names (problem
        "foreign") only with `foreign`."""
        browser = KeyBrowser(self._tier(), page_size, current=self.current_generator)
        browser.set_filter(filter_text)
        async with contextlib.aclosing(browser.walk()) as pages:
            async for rows in pages:
                if not foreign:
                    rows = [row for row in rows if row.problem != "foreign"]
                if rows:
                    yield rows

    async def export_pages(self, filter_text: str | None = None, *, foreign: bool = False,
                           page_size: int = 500) -> AsyncGenerator[list[ExportRow], None]:
        """entry_rows as ExportRows (export.py: the fields `keys --json` prints), a page at a time."""
        async with contextlib.aclosing(self.entry_rows(filter_text, foreign=foreign, page_size=page_size)) as pages:
            async for rows in pages:
                yield [ExportRow.of(row, self.keys.prefix) for row in rows]

    async def export_view(self, path: Path, fmt: ExportFormat, *, sort_key: Callable[[KeyRow], Any],
                          filter_text: str | None = None, rows: Sequence[KeyRow] | None = None) -> ExportDone:
        """export.write_view: `rows` (when given), else every key `filter_text` takes, foreign ones too."""
        pages = given(rows) if rows is not None else self.entry_rows(filter_text, foreign=True)
        return await write_view(pages, path, fmt, self.keys.prefix, sort_key)

    async def enable_live_updates(self) -> bool:
        """Keyspace notifications on (True) or not possible (False: poll instead).

        Turning them on is a CONFIG SET: done on the private embedded server,
        and on an external one unless this cache is read-only.
        """
        return await self.redis.enable_notifications(may_configure=not self.read_only or self.embedded_redis)

    async def restore_notifications(self) -> NotificationsRestored | None:
        """Set notify-keyspace-events back to what `enable_live_updates` found, where it set it (not
        on the embedded server); None when it set nothing. Never raises: the result says what was
        left on, and why (notify.restore)."""
        return await self.redis.restore_notifications() if self.redis is not None else None

    async def server_facts(self) -> ServerFacts:
        """What the server says of itself: version, mode and nodes, memory, eviction policy and
        evicted keys, clients, keyspace notifications, persistence (server_facts.py). A command the
        ACL refuses leaves its fields None and is said once in `refused`; raises RedisUnavailable."""
        return await self._tier().server_facts()

    def key_changes(self, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[KeyChange]:
        """IR key changes as they happen; raises RedisUnavailable when the connection drops."""
        return key_changes(self.redis, on_subscribed)

    def key_change_batches(
        self, on_subscribed: Callable[[], None] | None = None, *, interval: float = 0.1, limit: int = 500
    ) -> AsyncIterator[ChangeBatch]:
        """IR key changes, coalesced per `interval` (see live.coalesced): what a dashboard listens to."""
        return coalesced(key_changes(self.redis, on_subscribed), interval=interval, limit=limit)
