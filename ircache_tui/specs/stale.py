"""Stale entries: older hashes of specs that still exist, and entries of specs that are gone.

An edited spec leaves its previous `{spec}_{oldhash}` entries behind; they can
never be hit again. `find_stale` lists them in both tiers (Redis through
SCAN, never KEYS) and `prune` removes exactly those.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..cache import scan
from ..cache.ircache import IRCache
from .discovery import SpecFile

log = logging.getLogger("ircache")


@dataclass(slots=True)
class StaleReport:
    #: cache keys whose spec exists with another hash
    redis_stale: list[str] = field(default_factory=list)
    #: cache keys whose spec is not among the specs given
    redis_orphaned: list[str] = field(default_factory=list)
    files_stale: list[str] = field(default_factory=list)
    files_orphaned: list[str] = field(default_factory=list)
    redis_error: str = ""

    @property
    def redis_keys(self) -> list[str]:
        return self.redis_stale + self.redis_orphaned

    @property
    def files(self) -> list[str]:
        return self.files_stale + self.files_orphaned

    @property
    def total(self) -> int:
        return len(self.redis_keys) + len(self.files)

    def as_dict(self) -> dict[str, object]:
        return {
            "redis": {"stale": self.redis_stale, "orphaned": self.redis_orphaned},
            "filesystem": {"stale": self.files_stale, "orphaned": self.files_orphaned},
        }


#: in `current_hashes`: a spec file of this name exists but could not be read,
#: so none of its entries may be called stale
ANY_HASH = "*"


def current_hashes(specs: Iterable[SpecFile]) -> dict[str, set[str]]:
    """spec name → the hash8s of its files now (two dirs may hold a spec of the same name)."""
    current: dict[str, set[str]] = {}
    for spec in specs:
        if spec.ok:
            current.setdefault(spec.spec_name, set()).add(spec.hash8)
        elif spec.spec_name:
            current.setdefault(spec.spec_name, set()).add(ANY_HASH)
    return current


def is_stale(spec_name: str, hash8: str, current: dict[str, set[str]]) -> bool:
    """An entry of a spec that exists, with a hash none of its files has now."""
    hashes = current.get(spec_name)
    return hashes is not None and hash8 not in hashes and ANY_HASH not in hashes


def _classify(spec_name: str, hash8: str, current: dict[str, set[str]]) -> str | None:
    if spec_name not in current:
        return "orphaned"
    return "stale" if is_stale(spec_name, hash8, current) else None


async def find_stale(cache: IRCache, specs: Iterable[SpecFile], *, orphans: bool = True) -> StaleReport:
    current = current_hashes(specs)
    report = StaleReport()
    for entry in await cache.fs.list_entries():
        kind = _classify(entry.spec_name, entry.hash8, current)
        if kind == "stale":
            report.files_stale.append(entry.cache_key)
        elif kind == "orphaned" and orphans:
            report.files_orphaned.append(entry.cache_key)
    try:
        async for page in cache.redis.scan_ir_keys():
            for parsed in page:
                kind = _classify(parsed.spec_name, parsed.hash8, current)
                if kind == "stale":
                    report.redis_stale.append(parsed.cache_key)
                elif kind == "orphaned" and orphans:
                    report.redis_orphaned.append(parsed.cache_key)
    except Exception as exc:  # RedisUnavailable or a Redis error: the filesystem part still stands
        report.redis_error = str(exc)
    for part in (report.redis_stale, report.redis_orphaned, report.files_stale, report.files_orphaned):
        part.sort()
    return report


async def prune(cache: IRCache, report: StaleReport) -> dict[str, int]:
    """Delete what `report` lists, and nothing else: Redis in UNLINK batches, then files."""
    removed_redis = 0
    keys = [cache.keys.redis_key(k).encode() for k in report.redis_keys]
    for start in range(0, len(keys), scan.BATCH):
        removed_redis += await cache.redis.unlink_many(keys[start : start + scan.BATCH])
    removed_files = 0
    for key in report.files:
        if await cache.fs.delete(key):
            removed_files += 1
    log.info("Pruned stale IR entries %s", {"redis": removed_redis, "filesystem": removed_files})
    return {"redis": removed_redis, "filesystem": removed_files}
