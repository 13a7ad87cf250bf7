"""A spec's history in the cache: the entries its earlier versions left, read through IRCache.

Every version of a spec leaves `{spec}_{hash8}` entries behind (in Redis
until their TTL runs out, on disk until a prune). `older_entry` finds the
most recent of them other than a given key, by the `generated_at` each entry
carries; `read_any_tier` reads one key from whichever tier has a usable copy.
A corrupt or vanished entry is skipped, never raised; a Redis that is down
leaves the filesystem to answer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..cache.errors import IRCacheError
from ..cache.ircache import IRCache, StoreTier
from ..ir.envelope import CorruptEntry, StoredEntry

log = logging.getLogger("ircache")

#: what reading one entry may raise when it is gone, corrupt or its tier is unusable
_SKIPPED = (KeyError, CorruptEntry, IRCacheError, OSError, ValueError)


async def read_any_tier(
    cache: IRCache, cache_key: str, tiers: tuple[StoreTier, ...] = ("redis", "filesystem")
) -> tuple[StoredEntry, StoreTier] | None:
    """The entry stored under `cache_key` and the tier it was read from (Redis first);
    None when no tier has a usable copy (absent, corrupt, Redis down and no file)."""
    for tier in tiers:
        try:
            return await cache.read_entry(cache_key, tier), tier
        except _SKIPPED as exc:
            log.debug("%s not read from %s: %s", cache_key, tier, exc)
    return None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


async def older_entry(cache: IRCache, spec_name: str, current_key: str) -> tuple[str, StoreTier] | None:
    """The most recent entry (by `generated_at`) of `spec_name` in either tier other than
    `current_key`, as (cache key, tier); None when there is none.

    Redis is walked with SCAN (exactly this spec's keys) and the cache dir is
    listed; a key in both tiers is read from Redis, or from its file if the
    Redis copy cannot be used. An unavailable Redis leaves the files.
    """
    in_redis: set[str] = set()
    try:
        async for page in cache.scan_keys(spec_name):
            in_redis.update(parsed.cache_key for parsed in page if parsed.spec_name == spec_name)
    except IRCacheError as exc:
        log.debug("history of %s without Redis: %s", spec_name, exc)
    on_disk = {f.cache_key for f in await cache.list_files() if f.spec_name == spec_name}
    best: tuple[datetime, str, StoreTier] | None = None
    for key in sorted((in_redis | on_disk) - {current_key}):
        tiers: tuple[StoreTier, ...] = ("redis",) if key in in_redis else ()
        tiers += ("filesystem",) if key in on_disk else ()
        found = await read_any_tier(cache, key, tiers)
        if found is None:
            continue
        entry, tier = found
        candidate = (_utc(entry.generated_at), key, tier)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else (best[1], best[2])
