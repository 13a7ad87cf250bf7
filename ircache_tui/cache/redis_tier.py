"""Tier 1: Redis. The seed's four operations, as coroutines over redis.asyncio.

Short timeouts and one quick retry: an unreachable Redis costs milliseconds,
not 5 s per attempt. Connection failures mark Redis down in `health` (logged
once) and surface as RedisUnavailable; while it is down calls fail fast
without touching the network, and the first success marks it up again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..ir.envelope import CorruptEntry
from . import scan, scripts
from .errors import RedisUnavailable
from .health import RedisHealth
from .keys import KeySpace
from .packing import with_hiredis_packing
from .urls import mask_url

log = logging.getLogger("ircache")

T = TypeVar("T")
_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def make_client(url: str, *, connect_timeout: float = 0.5, socket_timeout: float = 2.0) -> aioredis.Redis:
    """A client for any redis URL (redis://, rediss://, unix://, credentials included)."""
    client = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        retry_on_timeout=False,
        client_name="ircache-tui",
    )
    pool = client.connection_pool  # from_url chose the class for the scheme; keep it, pack in C
    pool.connection_class = with_hiredis_packing(pool.connection_class)
    return client


class RedisTier:
    def __init__(
        self,
        url: str,
        keyspace: KeySpace,
        ttl: int,
        *,
        connect_timeout: float = 0.5,
        socket_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.keys = keyspace
        self.ttl = ttl
        self.client = make_client(url, connect_timeout=connect_timeout, socket_timeout=socket_timeout)
        self.health = RedisHealth(mask_url(url))
        self._release = self.client.register_script(scripts.RELEASE_LOCK)
        self._extend = self.client.register_script(scripts.EXTEND_LOCK)

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _run(self, op: Callable[[], Awaitable[T]]) -> T:
        if self.health.should_skip():
            raise RedisUnavailable(f"Redis unavailable at {self.display_url}: {self.health.reason}")
        try:
            result = await op()
        except _DOWN_ERRORS as exc:
            self.health.mark_down(exc)
            raise RedisUnavailable(f"Redis unavailable at {self.display_url}: {self.health.reason}") from None
        self.health.mark_up()
        return result

    # -- raw access (the IRCache's hot path) ------------------------------
    async def ping(self) -> bool:
        return bool(await self._run(self.client.ping))

    async def get_raw(self, cache_key: str) -> bytes | None:
        rkey = self.keys.redis_key(cache_key)
        return await self._run(lambda: self.client.get(rkey))

    async def set_raw(self, cache_key: str, raw: bytes, ttl: int | None = None) -> bool:
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return False  # TTL 0 means caching is disabled, not "SET EX 0" (an error)
        rkey = self.keys.redis_key(cache_key)
        return bool(await self._run(lambda: self.client.set(rkey, raw, ex=ttl)))

    async def exists(self, cache_key: str) -> bool:
        rkey = self.keys.redis_key(cache_key)
        return bool(await self._run(lambda: self.client.exists(rkey)))

    async def exists_many(self, cache_keys: list[str]) -> list[bool]:
        """Which of `cache_keys` Redis holds, in one pipelined round trip."""
        if not cache_keys:
            return []

        async def op() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key in cache_keys:
                pipe.exists(self.keys.redis_key(key))
            return await pipe.execute()

        return [bool(x) for x in await self._run(op)]

    async def delete(self, cache_key: str) -> bool:
        rkey = self.keys.redis_key(cache_key)
        return bool(await self._run(lambda: self.client.unlink(rkey)))

    async def ttl_of(self, cache_key: str) -> int:
        """Seconds left (-1 no expiry, -2 missing)."""
        rkey = self.keys.redis_key(cache_key)
        return int(await self._run(lambda: self.client.ttl(rkey)))

    async def reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        ttl = self.ttl if ttl is None else ttl
        rkey = self.keys.redis_key(cache_key)
        if ttl <= 0:
            return False
        return bool(await self._run(lambda: self.client.expire(rkey, ttl)))

    # -- the seed's four operations ---------------------------------------
    async def cache_ir(self, cache_key: str, ir_data: dict[str, Any], ttl: int | None = None) -> bool:
        """SET `ir_cache:{cache_key}` with EX; False when Redis is down or caching is off."""
        try:
            return await self.set_raw(cache_key, json.dumps(ir_data).encode("utf-8"), ttl)
        except RedisUnavailable:
            return False

    async def get_cached_ir(self, cache_key: str) -> dict[str, Any] | None:
        """The stored dict, or None on a miss or when Redis is down.

        Raises CorruptEntry when the value is not a JSON object.
        """
        try:
            raw = await self.get_raw(cache_key)
        except RedisUnavailable:
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
        self, spec_name: str | None = None, *, on_progress: Callable[[int], None] | None = None
    ) -> int:
        """UNLINK every IR key (or exactly one spec's), found with SCAN; returns how many.

        Only keys that parse as `{prefix}:{spec}_{hash8}` are touched, never
        anything else under the prefix, let alone outside it.
        """
        selection = self.keys.select(spec_name)
        deleted = await self._run(lambda: scan.scan_unlink(self.client, selection, on_progress=on_progress))
        log.info("Cleared IR cache from Redis %s", {"pattern": selection.match, "deleted": deleted})
        return deleted

    async def get_ir_cache_stats(self) -> dict[str, Any]:
        """`{"total_keys", "total_size_bytes", "specs"}`, sizes from MEMORY USAGE (server-side per page)."""
        sizes = await self._run(lambda: scan.scan_sizes(self.client, self.keys.select()))
        specs = sorted({s.decode("utf-8") for s in sizes.specs})
        return {"total_keys": sizes.keys, "total_size_bytes": sizes.bytes, "specs": specs}

    # -- walking the keyspace (the dashboard and prune) ----------------------
    async def scan_ir_page(self, cursor: int, count: int, spec_name: str | None = None, match: str | None = None):
        """One SCAN step over IR keys: (next cursor, parsed keys of this page)."""
        pattern = match or self.keys.match_pattern(spec_name)
        next_cursor, raw = await self._run(lambda: scan.scan_page(self.client, cursor, pattern, count))
        parsed = [p for p in map(self.keys.cache_key_of, raw) if p is not None]
        if spec_name is not None:
            parsed = [p for p in parsed if p.spec_name == spec_name]
        return next_cursor, parsed

    async def scan_ir_keys(self, spec_name: str | None = None):
        """Every IR key (parsed), a SCAN page at a time."""
        cursor = 0
        while True:
            cursor, page = await self.scan_ir_page(cursor, scan.SCAN_COUNT, spec_name)
            if page:
                yield page
            if cursor == 0:
                return

    async def unlink_many(self, redis_keys: list[bytes]) -> int:
        """UNLINK exact Redis keys (already checked to be ours by the caller)."""
        keep = [k for k in redis_keys if self.keys.belongs(k)]
        return await self._run(lambda: scan.unlink_keys(self.client, keep))

    async def key_details_with_head(self, cache_keys: list[str], head_bytes: int) -> list[tuple[int, int | None, bytes]]:
        """(TTL, MEMORY USAGE, first `head_bytes` of the value) per key, one round trip."""
        if not cache_keys:
            return []

        async def op() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key in cache_keys:
                rkey = self.keys.redis_key(key)
                pipe.ttl(rkey)
                pipe.memory_usage(rkey, samples=0)
                pipe.getrange(rkey, 0, head_bytes - 1)
            return await pipe.execute(raise_on_error=False)

        flat = await self._run(op)
        return [
            (t if isinstance(t, int) else -2, m if isinstance(m, int) else None, h if isinstance(h, bytes) else b"")
            for t, m, h in zip(flat[::3], flat[1::3], flat[2::3])
        ]

    # -- cross-process lock -----------------------------------------------
    async def acquire_lock(self, cache_key: str, token: str, ttl_ms: int) -> bool:
        lkey = self.keys.lock_key(cache_key)
        return bool(await self._run(lambda: self.client.set(lkey, token, nx=True, px=ttl_ms)))

    async def extend_lock(self, cache_key: str, token: str, ttl_ms: int) -> bool:
        lkey = self.keys.lock_key(cache_key)
        return bool(await self._run(lambda: self._extend(keys=[lkey], args=[token, ttl_ms])))

    async def release_lock(self, cache_key: str, token: str) -> bool:
        lkey = self.keys.lock_key(cache_key)
        return bool(await self._run(lambda: self._release(keys=[lkey], args=[token])))

    async def lock_held(self, cache_key: str) -> bool:
        lkey = self.keys.lock_key(cache_key)
        return bool(await self._run(lambda: self.client.exists(lkey)))
