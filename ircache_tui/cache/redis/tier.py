"""Tier 1: Redis. The seed's four operations, as coroutines over redis.asyncio.

Every call goes through the one door (door.py: errors mapped, health, read-only), to Redis as
the `Nodes` strategy reaches it: one server (nodes.py) or every primary of a cluster
(cluster.py). Whether REDIS_URL names a cluster node is asked once (INFO cluster, on the plain
connection, at open or at the first call that reaches Redis; IR_REDIS_CLUSTER forces or forbids
it); the tier then holds the cluster strategy, and never asks which one it holds again.

The walks themselves (one node each) are in walk.py and sizes.py, the lock in lock.py, the hit
counters' Redis side in hit_store.py, keyspace notifications in notify.py, the cluster-node question in
cluster_probe.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ... import redact
from ...fmt import plural
from ...ir.envelope import ENTRY_HEAD, CorruptEntry, GeneratorInfo, is_entry_head
from ..errors import ClusterRefused, FlushIncomplete, ForeignKey, IRCacheError, RedisCommandError, RedisUnavailable
from ..health import RedisHealth
from ..keys import CacheKey, KeyLike, KeySpace
from ..refusals import command_error
from ..results import NotificationsRestored, RawKind
from ..server import ServerInfo
from ..server_facts import ServerFacts
from ..urls import mask_url
from . import notify
from .clients import make_client, make_cluster_client
from .cluster import ClusterNodes
from .cluster_probe import is_cluster_node
from .diagnose import DOWN_ERRORS, auth_refused
from .door import Door, raising
from .entries import EntryDeleter, ForeignMemory, head_of, shown_head
from .facts import read_facts
from .audit_stream import AuditStream
from .hit_store import HitStore, hits_of
from .lock import Locks
from .nodes import Call, Events, FlushProgress, Nodes, SingleNode
from .sizes import Sizes, merge_sizes, merge_top, scan_sizes, scan_top
from .walk import SCAN_COUNT, Tally, entries_among, scan_page

log = logging.getLogger("ircache")


class RedisTier:
    def __init__(
        self,
        url: str,
        keyspace: KeySpace,
        ttl: int,
        *,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        read_only: bool = False,
        private: bool = False,
        max_connections: int | None = None,
        cluster: bool | None = None,
        on_topology: Callable[[str], None] | None = None,
        pool_wait: float = 30.0,
    ) -> None:
        """`read_only`: refuse every write. `private`: the embedded server, whose config is ours to set
        (a single node: never asked about cluster mode).
        `max_connections`: at most this many connections (per node on a cluster); callers beyond it wait
        up to `pool_wait` seconds, then get RedisBusy (Redis is not marked down: the burst is ours).
        `cluster`: True, the URL is a cluster node (no question asked); False, refuse a cluster node;
        None, ask the server (INFO cluster) before the first call.
        `on_topology`: told, in a sentence, when a cluster's slots changed primary (a failover, a
        resharding) since the last time the topology was asked."""
        redact.register_url_password(url)
        self.url = url
        self.keys = keyspace
        self.ttl = ttl
        self.read_only = read_only
        self.private = private
        self._client_options: dict[str, Any] = dict(
            connect_timeout=connect_timeout, socket_timeout=socket_timeout, max_connections=max_connections,
            pool_wait=pool_wait,
        )
        self._cluster_setting = cluster
        self._on_topology = on_topology
        self._entries = EntryDeleter()
        self._foreign = ForeignMemory(keyspace)  # keys that hold another tool's value: never SET
        nodes: Nodes = (self._cluster_nodes() if cluster and not private
                        else SingleNode(make_client(url, **self._client_options)))
        self.door = Door(url, keyspace.prefix, nodes, read_only=read_only, pool_wait=pool_wait)
        if not private and cluster is not True:  # INFO cluster still to be asked
            self.door.settle = self._settle_mode
        self._mode_lock = asyncio.Lock()
        self._stats_scripted = True  # False once the server refused the stats script
        self.locks = Locks(self.door, keyspace)
        # the same compare-and-delete, for the claims of a Message Batch in flight (one probe for both)
        self.batch_claims = Locks(self.door, keyspace, key_of=keyspace.batch_claim_key, probe=self.locks.probe,
                                  noun="batch claim")
        self.hit_store = HitStore(self.door, keyspace, ttl)
        self.audit_stream = AuditStream(self.door, keyspace)  # IR_AUDIT_REDIS=1 (audit_mirror.py)
        self._flags_found: notify.FlagsFound = {}  # notify-keyspace-events we set, and what we found

    def _cluster_nodes(self) -> ClusterNodes:
        client = make_cluster_client(self.url, **self._client_options)
        return ClusterNodes(client, self.url, self._client_options, self._entries, on_topology=self._on_topology)

    @property
    def nodes(self) -> Nodes:
        """How commands and walks reach Redis (one server, or a cluster's primaries)."""
        return self.door.nodes

    @property
    def client(self) -> Any:
        """A RedisCluster once the URL is known to be a cluster node, else a plain client."""
        return self.door.nodes.client

    @property
    def cluster(self) -> bool:
        return self.door.nodes.is_cluster

    @property
    def health(self) -> RedisHealth:
        return self.door.health

    @property
    def display_url(self) -> str:
        return self.door.display_url

    @property
    def cluster_info(self) -> dict[str, Any] | None:
        """`{"primaries": N}` on a cluster (N None until its topology is known), None on a single node."""
        return self.door.nodes.info

    @property
    def db(self) -> int:
        return self.door.nodes.db

    async def aclose(self) -> None:
        await self.door.nodes.aclose()

    # -- cluster mode ------------------------------------------------------------
    async def open(self) -> None:
        """Settle cluster mode now (INFO cluster), so that a refusal (ClusterRefused) comes at open,
        and learn a cluster's topology (for display_url).

        With Redis down it stays unsettled: the first call that reaches Redis asks. That Redis
        is down is then said by the first call refused, not here (see RedisHealth.announce).
        """
        if self.door.settle is None and self.door.nodes.known:
            return
        if self.door.refusal is not None:
            raise self.door.refusal
        try:
            await self._settle_mode()
            await self.door.nodes.learn()
            self.health.mark_up()
        except ClusterRefused:
            raise
        except DOWN_ERRORS as exc:
            self.health.mark_down(exc, self.door.nodes.reason(exc), announce=False)
        except RedisError as exc:
            if auth_refused(exc):
                self.health.mark_down(exc, self.door.nodes.reason(exc), announce=False)
            else:  # a refused command (an ACL): the first call that needs it says which rule
                log.debug("Opening Redis: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    async def _settle_mode(self) -> None:
        """Ask once whether the URL is a cluster node, and switch to the cluster client if so.

        Raises redis-py's errors (mapped by `_run`) or ClusterRefused.
        """
        async with self._mode_lock:
            if self.door.settle is None:
                return
            if not await is_cluster_node(self.client, self.keys.prefix):
                self.door.settle = None
                return
            if self._cluster_setting is False:
                self.door.settle = None
                self.door.refusal = ClusterRefused(
                    f"{mask_url(self.url)}: this Redis is a cluster node; unset IR_REDIS_CLUSTER=0 "
                    "(or drop --no-cluster) or point at a standalone Redis"
                )
                raise self.door.refusal
            plain = self.door.nodes
            self.door.nodes = self._cluster_nodes()
            self.door.settle = None
            await plain.aclose()
            log.info("Redis at %s is a cluster node: using the cluster client, walks cover every primary",
                     mask_url(self.url))

    # -- raw access (the IRCache's hot path) ------------------------------
    async def ping(self, *, follow_failover: bool = False) -> bool:
        """PING; `follow_failover`: on a cluster, wait for a primary that died to be replaced (a
        command that needs Redis, checking first)."""
        return bool(await self.door.run(lambda: self.client.ping(), follow_failover=follow_failover))

    async def probe(self) -> None:
        """PING now, even inside the fast-fail window after a failure; raises if Redis is still down."""
        await self.door.run(lambda: self.client.ping(), probe=True)

    async def get_raw(self, cache_key: KeyLike) -> bytes | None:
        """The stored bytes, or None on a miss; ForeignKey when the key holds another tool's value
        (another type, or a string that is not an entry): never an entry of ours, never deleted."""
        rkey = self.keys.redis_key(cache_key)
        try:
            raw: bytes | None = await self.door.run(lambda: self.client.get(rkey))  # (bytes: no decode_responses)
        except RedisCommandError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise self._foreign.found(cache_key, "a hash, list, set or other non-string value") from None
        if raw is None:
            self._foreign.forget(cache_key)  # gone: the next writer may be us
        elif not is_entry_head(raw[: len(ENTRY_HEAD)]):
            raise self._foreign.found(cache_key, shown_head(raw))
        return raw

    async def raw_head(self, cache_key: KeyLike, limit: int) -> tuple[RawKind, bytes, bool]:
        """("string", its first `limit` bytes, whether more follow), ("other", b"", False) for a hash,
        list..., ("none", b"", False) when gone. GETRANGE (a byte more than asked) and EXISTS: never the
        whole value, nothing written or remembered, and only commands the least-privilege users have."""
        rkey = self.keys.redis_key(cache_key)
        try:
            head = bytes(await self.door.run(lambda: self.client.getrange(rkey, 0, limit), sent="getrange"))
        except RedisCommandError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            return "other", b"", False
        if not head and not await self.door.run(lambda: self.client.exists(rkey)):
            return "none", b"", False
        return "string", head[:limit], len(head) > limit

    def known_foreign(self, cache_key: KeyLike) -> bool:
        """Whether a read found another tool's value under this key (so it must not be written)."""
        return cache_key in self._foreign

    async def set_raw(self, cache_key: KeyLike, raw: bytes, ttl: int | None = None, *,
                      follow_failover: bool = False) -> bool:
        """SET the entry with EX. ForeignKey when a read found another tool's value there: it is
        not ours to overwrite (the filesystem keeps the entry). `follow_failover`: on a cluster,
        a SET that met a dead primary waits for its replica's promotion and goes again (warm)."""
        self.door.writable(f"SET {cache_key}")
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return False  # TTL 0 means caching is disabled, not "SET EX 0" (an error)
        rkey = self.keys.redis_key(cache_key)
        if cache_key in self._foreign:
            raise ForeignKey(rkey, "another tool's value (found when it was read)")
        return bool(await self.door.run(lambda: self.client.set(rkey, raw, ex=ttl), follow_failover=follow_failover))

    async def exists(self, cache_key: KeyLike) -> bool:
        """Whether Redis holds an entry under this key (another tool's value there is not one). One
        command through the client itself (on a cluster, the cluster client: it follows MOVED and
        learns a new primary after a failover)."""
        rkey = self.keys.redis_key(cache_key)
        try:
            head = await self.door.run(lambda: self.client.getrange(rkey, 0, len(ENTRY_HEAD) - 1), sent="getrange")
        except RedisCommandError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._foreign.found(cache_key, "a non-string value")
            return False
        if head and not is_entry_head(head):
            self._foreign.found(cache_key, "a string that does not begin as an entry")
            return False
        return bool(head)

    async def exists_many(self, cache_keys: Sequence[KeyLike], *, follow_failover: bool = False) -> list[bool]:
        """Which of `cache_keys` hold entries in Redis, in one pipelined round trip (a GETRANGE of
        the envelope's first bytes each: a key holding another tool's value is not an entry).
        `follow_failover`: on a cluster, a node's share that met a dead primary waits for its
        replica's promotion, and the reads go again (warm)."""
        if not cache_keys:
            return []

        rkeys = [self.keys.redis_key(key) for key in cache_keys]
        calls: list[Call] = [(rkey, "getrange", (rkey, 0, len(ENTRY_HEAD) - 1), {}) for rkey in rkeys]
        heads = await self.door.run(lambda: self.door.nodes.pipelined(calls, raise_on_error=False), sent="getrange",
                                follow_failover=follow_failover)
        out = []
        for key, head in zip(cache_keys, heads):
            if isinstance(head, ResponseError) and "WRONGTYPE" in str(head):
                self._foreign.found(key, "a non-string value")
                out.append(False)
            elif isinstance(head, RedisError):
                await self.door.run(raising(head), sent="getrange")  # raises it, mapped like any other
            elif head and not is_entry_head(head):
                self._foreign.found(key, "a string that does not begin as an entry")
                out.append(False)
            else:
                out.append(bool(head))
        return out

    async def delete(self, cache_key: KeyLike) -> bool:
        """UNLINK one entry (and its hit counts); True when the entry was there. ForeignKey when the
        key holds another tool's value: left as it is."""
        self.door.writable(f"UNLINK {cache_key}")
        rkey, hkey = self.keys.redis_key(cache_key), self.keys.hits_key(cache_key)

        async def op() -> int:  # two keys of two slots: two single-key commands
            gone = await self._entries.delete(self.client, rkey)
            if gone >= 0:
                await self.client.unlink(hkey)
            return gone

        gone = await self.door.run(op, sent="getrange")
        if gone < 0:
            raise self._foreign.found(cache_key, "another tool's value")
        return bool(gone)

    async def ttl_of(self, cache_key: KeyLike) -> int:
        """Seconds left (-1 no expiry, -2 missing)."""
        rkey = self.keys.redis_key(cache_key)
        return int(await self.door.run(lambda: self.client.ttl(rkey)))

    async def reset_ttl(self, cache_key: KeyLike, ttl: int | None = None) -> bool:
        """EXPIRE one entry; False when it is gone or TTL is 0. ForeignKey when the key holds another
        tool's value (checked first: its TTL is not ours to change)."""
        self.door.writable(f"EXPIRE {cache_key}")
        ttl = self.ttl if ttl is None else ttl
        rkey = self.keys.redis_key(cache_key)
        if ttl <= 0:
            return False
        if not (await self.exists_many([cache_key]))[0]:
            if cache_key in self._foreign:
                raise ForeignKey(rkey, "another tool's value")
            return False
        return bool(await self.door.run(lambda: self.client.expire(rkey, ttl)))

    # -- the seed's four operations ---------------------------------------
    async def cache_ir(self, cache_key: KeyLike, ir_data: dict[str, Any], ttl: int | None = None) -> bool:
        """SET `ir_cache:{cache_key}` with EX; False when Redis is down or caching is off.

        `ir_data` is an entry as a dict (`StoredEntry.to_dict()`): what is stored must begin as an
        entry does, or no flush or count would take it for one (CorruptEntry says so)."""
        self.door.writable(f"SET {cache_key}")
        raw = json.dumps(ir_data, separators=(",", ":")).encode("utf-8")  # the envelope's own spelling
        if not is_entry_head(raw[: len(ENTRY_HEAD)]) or len(raw) < len(ENTRY_HEAD):
            raise CorruptEntry("cache_ir stores entries: a dict whose first key is schema_version "
                               "(StoredEntry.to_dict()), not any dict")
        try:
            return await self.set_raw(cache_key, raw, ttl)
        except RedisUnavailable:
            return False

    async def get_cached_ir(self, cache_key: KeyLike) -> dict[str, Any] | None:
        """The stored dict, or None on a miss or when Redis is down.

        Raises CorruptEntry when the value is not a JSON object.
        """
        try:
            raw = await self.get_raw(cache_key)
        except (RedisUnavailable, ForeignKey):
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CorruptEntry(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptEntry(f"not a JSON object but {type(data).__name__}")
        return data

    async def clear_ir_cache(
        self, spec_name: str | None = None, *, on_progress: Callable[[int], None] | None = None,
        on_kept: Callable[[int], None] | None = None,
    ) -> int:
        """UNLINK every IR entry (or exactly one spec's), found with SCAN; returns how many.

        Only keys named `{prefix}:{spec}_{hash8}` that hold an entry are touched (the script that
        deletes them checks), with their hit counts (`{key}:hits`), never anything else under the
        prefix, let alone outside it;
        `on_kept(n)` hears of keys of our name that hold another tool's value, left as they are.
        """
        self.door.writable("UNLINK (flush)")
        selection = self.keys.select(spec_name)
        progress = FlushProgress(on_progress)
        refused: dict[bytes, RedisError] = {}  # keys in migrating slots the ACL may not follow (see cluster.py)

        def left_refused(reason: str = "") -> str:
            if not refused:
                return reason
            left = (f"{plural(len(refused), 'key')} in slots being migrated {'was' if len(refused) == 1 else 'were'} "
                    f"left: {command_error(next(iter(refused.values())), prefix=self.keys.prefix)}")
            return f"{reason}; and {left}" if reason else left

        flush = lambda: self.door.nodes.flush(selection, progress, on_kept, refused)  # noqa: E731
        try:
            deleted = await self.door.run(flush, follow_failover=True)  # (a primary gone before its walk began)
            if refused:
                await self.door.run(lambda: self.door.nodes.still_left(refused))
        except FlushIncomplete as exc:
            with contextlib.suppress(IRCacheError):
                await self.door.run(lambda: self.door.nodes.still_left(refused))
            raise FlushIncomplete(exc.done, left_refused(exc.reason)) from None
        except (RedisUnavailable, RedisCommandError) as exc:
            if not progress.total:
                raise  # nothing went: the plain reason is the whole story
            # Redis went (or refused) midway: say exactly how many went; running it again finishes the job
            raise FlushIncomplete({"redis": progress.total}, left_refused(f"Redis flush stopped: {exc}")) from None
        if refused:
            raise FlushIncomplete({"redis": deleted}, left_refused())
        if self.door.nodes.hits_left_by_flush:  # the entries' hit counts go with them (the totals stay)
            with contextlib.suppress(IRCacheError):
                await self.hit_store.clear(spec_name)
        log.info("Cleared IR cache from Redis %s", {"pattern": selection.match, "deleted": deleted})
        return deleted

    async def get_ir_cache_stats(self, current: GeneratorInfo | None = None) -> dict[str, Any]:
        """`{"total_keys", "total_size_bytes", "specs", "server"}`, sizes from MEMORY USAGE (server-side per
        page), `server` as `{"name", "version"}` (None when the server will not say). With `current`
        (the generator in use), also `outdated` (Sizes.outdated). `total_size_bytes` is None when
        the server refuses MEMORY USAGE: the keys are still counted."""
        sizes = await self.door.run(lambda: self._sizes(self.keys.select(), generators=current is not None),
                                    follow_failover=True)
        server = await self.door.server_info()
        specs = sorted({s.decode("utf-8") for s in sizes.specs})
        known = sizes.bytes is not None
        spec_sizes = {name.decode("utf-8"): {"keys": keys, "bytes": size if known else None}
                      for name, (keys, size) in sizes.per_spec.items()}
        stats = {"total_keys": sizes.keys, "total_size_bytes": sizes.bytes, "specs": specs, "spec_sizes": spec_sizes,
                 "foreign_keys": sizes.foreign, "server": server.as_json() if server is not None else None}
        if current is not None:
            stats["outdated"] = sizes.outdated(current)
        return stats

    async def count_ir_keys(self, spec_name: str | None = None) -> int:
        """How many IR entries (of one spec, or all), by the same server-side walk as the stats."""
        return (await self.count_entries(spec_name))[0]

    async def count_entries(self, spec_name: str | None = None) -> tuple[int, int]:
        """(entries, keys of our name that hold another tool's value) of one spec, or all: one walk."""
        selection = self.keys.select(spec_name)
        sizes = await self.door.run(lambda: self._sizes(selection), follow_failover=True)
        return sizes.keys, sizes.foreign

    async def _sizes(self, selection: Any, *, generators: bool = False) -> Sizes:
        """The server-side stats walk, on every primary at once on a cluster, added up."""
        parts = await self.door.nodes.each(  # read-only: after a failover, the whole walk again
            lambda _i, client: scan_sizes(client, selection, scripted=self._stats_scripted, generators=generators),
            follow_failover=True)
        sizes = merge_sizes(parts) if len(parts) > 1 else parts[0]
        self._stats_scripted = sizes.scripted
        return sizes

    async def top_ir_keys(self, by: str, n: int) -> list[CacheKey]:
        """The `n` largest IR keys (by="memory") or the `n` expiring soonest (by="ttl"), over the whole prefix."""
        selection = self.keys.select()

        async def top() -> list[tuple[bytes, int]]:
            parts = await self.door.nodes.each(
                lambda _i, client: scan_top(client, selection, by, n, scripted=self._stats_scripted),
                follow_failover=True)
            self._stats_scripted = all(scripted for _, scripted in parts)
            return parts[0][0] if len(parts) == 1 else merge_top([r for r, _ in parts], by, n)

        ranked = await self.door.run(top, follow_failover=True)
        return [p for p in (self.keys.cache_key_of(k) for k, _ in ranked) if p is not None]

    # -- walking the keyspace (the dashboard and prune) ----------------------
    async def scan_step(self, cursor: int, pattern: str, count: int) -> tuple[int, list[bytes]]:
        """One SCAN step over the keys matching `pattern` (every key it returns, parsed or not: a
        pager counts what it examined): (next cursor, keys). On a cluster the cursor is composite
        (pager.py); 0 still starts and ends the walk."""
        return await self.door.run(lambda: self.door.nodes.scan_step(cursor, pattern, count))

    def _parsed(self, raw: list[bytes], spec_name: str | None) -> list[CacheKey]:
        parsed = [p for p in map(self.keys.cache_key_of, raw) if p is not None]
        if spec_name is not None:
            parsed = [p for p in parsed if p.spec_name == spec_name]
        return parsed

    async def _entries_only(self, client: aioredis.Redis, page: list[CacheKey]) -> list[CacheKey]:
        """The keys of `page` that hold entries (another tool's values under our names are left out)."""
        if not page:
            return page
        rkeys = [self.keys.redis_key(p.cache_key).encode() for p in page]
        ours, _ = await self.door.run(lambda: entries_among(client, rkeys, ENTRY_HEAD), sent="getrange")
        keep = set(ours)
        return [p for p, rkey in zip(page, rkeys) if rkey in keep]

    async def scan_ir_keys(self, spec_name: str | None = None) -> AsyncGenerator[list[CacheKey], None]:
        """Every IR entry's key (parsed), a SCAN page at a time; every node a walk covers is walked
        at once, and pages come as they arrive. Keys of our name that hold another tool's value are
        left out (a GETRANGE each, pipelined with the page's others)."""
        pattern = self.keys.match_pattern(spec_name)
        nodes = await self.door.run(lambda: self.door.nodes.walk_nodes())
        pages: asyncio.Queue[list[CacheKey] | BaseException | None] = asyncio.Queue(maxsize=4)

        async def walk(client: aioredis.Redis) -> None:
            try:
                cursor = 0
                while True:
                    cursor, raw = await self.door.run(lambda: scan_page(client, cursor, pattern, SCAN_COUNT))
                    parsed = await self._entries_only(client, self._parsed(raw, spec_name))
                    if parsed:
                        await pages.put(parsed)
                    if cursor == 0:
                        break
            except Exception as exc:  # handed to the reader, which raises it
                await pages.put(exc)
                return
            await pages.put(None)

        walkers = [asyncio.ensure_future(walk(client)) for client in nodes]
        try:
            left = len(walkers)
            while left:
                item = await pages.get()
                if item is None:
                    left -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in walkers:
                task.cancel()
            await asyncio.gather(*walkers, return_exceptions=True)

    async def unlink_many(self, redis_keys: list[bytes], *, on_kept: Tally | None = None) -> int:
        """UNLINK exact Redis keys that hold entries (the names already checked by the caller);
        `on_kept(n)` hears of those that hold another tool's value, left as they are."""
        self.door.writable("UNLINK")
        keep = [k for k in redis_keys if self.keys.belongs(k)]
        went = [0]
        try:
            return await self.door.run(lambda: self.door.nodes.unlink_exact(keep, went, entry=ENTRY_HEAD, kept=on_kept),
                                   sent="getrange")
        except (RedisUnavailable, RedisCommandError) as exc:
            if went[0]:  # other primaries deleted theirs: say exactly how many
                raise FlushIncomplete({"redis": went[0]}, f"Redis delete stopped: {exc}") from None
            raise

    async def key_details_with_head(
        self, cache_keys: Sequence[KeyLike], head_bytes: int
    ) -> list[tuple[int, int | None, bytes | None, tuple[int, float | None, float | None] | None]]:
        """(TTL, MEMORY USAGE, first `head_bytes` of the value, (hits, last hit, the generated_at
        they were counted on) or None) per key, one round trip.

        A command the server refuses (an ACL without MEMORY, say) leaves its
        field unknown instead of failing the page. The head is None when the
        key holds another type than a string (WRONGTYPE), b"" when unknown.
        """
        if not cache_keys:
            return []

        calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        for key in cache_keys:
            rkey, hkey = self.keys.redis_key(key), self.keys.hits_key(key)
            calls += [(rkey, "ttl", (rkey,), {}), (rkey, "memory_usage", (rkey,), {"samples": 0}),
                      (rkey, "getrange", (rkey, 0, head_bytes - 1), {}),
                      (hkey, "hmget", (hkey, "redis", "filesystem", "last", "gen"), {})]
        flat = await self.door.run(lambda: self.door.nodes.pipelined(calls, raise_on_error=False))
        return [
            (t if isinstance(t, int) else -2, m if isinstance(m, int) else None, head_of(h), hits_of(c))
            for t, m, h, c in zip(flat[::4], flat[1::4], flat[2::4], flat[3::4])
        ]

    # -- live changes --------------------------------------------------------
    async def enable_notifications(self, *, may_configure: bool) -> bool:
        """True if keyspace notifications for our keys are (now) on (notify.py)."""
        return await notify.enable(self.door, may_configure=may_configure, private=self.private,
                                   found=self._flags_found)

    async def restore_notifications(self) -> NotificationsRestored | None:
        """notify-keyspace-events set back where `enable_notifications` set it (notify.restore)."""
        return await notify.restore(self.door, self._flags_found)

    def keyspace_events(self, on_subscribed: Callable[[], None] | None = None) -> Events:
        """(Redis key, event) for every key under the prefix, as notifications arrive (notify.py)."""
        return notify.keyspace_events(self.door, self.keys, on_subscribed)

    # -- the server -------------------------------------------------------
    async def server_info(self) -> ServerInfo | None:
        """Which server answers (Redis, Valkey, ...) and its version (see Door.server_info)."""
        return await self.door.server_info()

    async def server_facts(self) -> ServerFacts:
        """Version, mode, memory, eviction, clients, notifications, persistence, per node (facts.py)."""
        return await read_facts(self.door)

