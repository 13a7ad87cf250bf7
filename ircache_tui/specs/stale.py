"""Stale and foreign entries: the one definition, and the one walk over both tiers.

An edited spec leaves its previous `{spec}_{oldhash}` entries behind; they can
never be hit again. Those are *stale*: an entry whose spec name exists under
the given directories, with a hash none of its files has now. They are ours
to prune.

Every other entry under the prefix belongs to a spec we cannot see: the
prefix is shared by every pipeline of a team, so an entry whose spec is not
under *my* directories is someone else's (*orphaned* only from where I
stand). `find_stale` lists them so a user can see them, and `prune` keeps
them unless asked otherwise (`orphans=True`, `--orphans`).

The walk (`walk_tiers`) lists the cache dir and SCANs Redis (never KEYS)
through IRCache. `find_stale` is the one count: `prune`, the dashboard's `P`,
the watcher's log and the Specs tab all take theirs from its report
(`StaleReport.stale_entries`), where an entry is one `{spec}_{hash8}`,
counted once whether Redis, the disk or both hold it. A deleted spec's
entries are not stale: no file under the directories bears its name, so
they are orphaned (kept), like any other pipeline's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..cache.errors import IRCacheError
from ..cache.ircache import DeleteResult, IRCache
from ..cache.keys import spec_of
from ..fmt import plural
from .discovery import SpecFile

log = logging.getLogger("ircache")

Kind = Literal["stale", "orphaned"]


@dataclass(slots=True)
class StaleReport:
    #: cache keys whose spec exists with another hash
    redis_stale: list[str] = field(default_factory=list)
    #: cache keys whose spec is not among the specs given (someone else's, unless told otherwise)
    redis_orphaned: list[str] = field(default_factory=list)
    files_stale: list[str] = field(default_factory=list)
    files_orphaned: list[str] = field(default_factory=list)
    redis_error: str = ""
    #: whether prune removes the orphaned entries too (only when the user said so)
    include_orphans: bool = False

    @property
    def stale_entries(self) -> list[str]:
        """The stale entries, each `{spec}_{hash8}` once whichever tiers hold it: the number every
        view gives (the Specs tab, the watcher's log, `P`, `prune`)."""
        return sorted(set(self.redis_stale) | set(self.files_stale))

    def stale_by_spec(self) -> dict[str, int]:
        """spec name → how many of `stale_entries` are its (they add up to the whole count)."""
        counts: dict[str, int] = {}
        for key in self.stale_entries:
            name = spec_of(key)
            counts[name] = counts.get(name, 0) + 1
        return counts

    @property
    def redis_keys(self) -> list[str]:
        """The Redis keys a prune removes."""
        return self.redis_stale + (self.redis_orphaned if self.include_orphans else [])

    @property
    def files(self) -> list[str]:
        """The entry files a prune removes."""
        return self.files_stale + (self.files_orphaned if self.include_orphans else [])

    @property
    def total(self) -> int:
        """How many entries a prune removes."""
        return len(self.redis_keys) + len(self.files)

    @property
    def kept(self) -> int:
        """Orphaned entries found and kept."""
        return 0 if self.include_orphans else len(self.redis_orphaned) + len(self.files_orphaned)

    def with_orphans(self, include: bool) -> "StaleReport":
        return StaleReport(self.redis_stale, self.redis_orphaned, self.files_stale, self.files_orphaned,
                           self.redis_error, include)

    def as_dict(self) -> dict[str, dict[str, list[str]]]:
        return {
            "redis": {"stale": self.redis_stale, "orphaned": self.redis_orphaned},
            "filesystem": {"stale": self.files_stale, "orphaned": self.files_orphaned},
        }


def stale_summary(report: StaleReport) -> str:
    """`4 stale entries (4 Redis keys, 3 files)`: the one count, then what holds them."""
    return (f"{plural(len(report.stale_entries), 'stale entry', 'stale entries')} "
            f"({plural(len(report.redis_stale), 'Redis key')}, {plural(len(report.files_stale), 'file')})")


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


def classify(spec_name: str, hash8: str, current: dict[str, set[str]]) -> Kind | None:
    """"stale", "orphaned" (not a spec under the given dirs), or None (current)."""
    if spec_name not in current:
        return "orphaned"
    return "stale" if is_stale(spec_name, hash8, current) else None


@dataclass(frozen=True, slots=True)
class Entry:
    tier: Literal["redis", "filesystem"]
    spec_name: str
    hash8: str
    cache_key: str


async def walk_tiers(cache: IRCache, errors: list[str] | None = None, *, redis: bool = True) -> AsyncIterator[Entry]:
    """Every entry file, then (with `redis`) every IR key in Redis. A Redis error ends the Redis
    part (noted in `errors` when given); the filesystem part still stands."""
    for f in await cache.list_files():
        yield Entry("filesystem", f.spec_name, f.hash8, f.cache_key)
    if not redis:
        return
    try:
        async for page in cache.scan_keys():
            for parsed in page:
                yield Entry("redis", parsed.spec_name, parsed.hash8, parsed.cache_key)
    except IRCacheError as exc:
        if errors is None:
            log.debug("walk without Redis: %s", exc)
        else:
            errors.append(str(exc))


async def find_stale(cache: IRCache, specs: Iterable[SpecFile], *, orphans: bool = False,
                     redis: bool = True) -> StaleReport:
    """Stale entries of `specs`, and the entries of every other spec name (kept unless `orphans`);
    without `redis`, of the cache dir alone."""
    current = current_hashes(specs)
    report = StaleReport(include_orphans=orphans)
    errors: list[str] = []
    lists = {
        ("redis", "stale"): report.redis_stale, ("redis", "orphaned"): report.redis_orphaned,
        ("filesystem", "stale"): report.files_stale, ("filesystem", "orphaned"): report.files_orphaned,
    }
    async for entry in walk_tiers(cache, errors, redis=redis):
        kind = classify(entry.spec_name, entry.hash8, current)
        if kind is not None:
            lists[(entry.tier, kind)].append(entry.cache_key)
    report.redis_error = errors[0] if errors else ""
    for part in lists.values():
        part.sort()
    return report


async def prune(cache: IRCache, report: StaleReport) -> DeleteResult:
    """Delete what `report` says a prune removes, and nothing else."""
    removed = await cache.delete_entries(report.redis_keys, report.files, action="prune")
    log.info("Pruned stale IR entries %s", removed.to_json())  # (the dict's words, as before)
    return removed
