"""Stale counts: per spec, the entries of its name that no current spec file can hit.

The definition is the one `ircache_tui.specs.stale` (and so `prune`) uses:
an entry `{spec}_{hash8}` is stale when no existing spec file named `spec`
has that hash now; a spec file that exists but cannot be read protects
every entry of its name. A key present in both tiers counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from redis.exceptions import RedisError

from ..cache.errors import RedisUnavailable
from ..cache.ircache import IRCache
from ..specs.discovery import SpecFile
from ..specs.stale import ANY_HASH, current_hashes
from .status import SpecState, SpecStatus, log


async def hashes_in_tiers(cache: IRCache) -> dict[str, set[str]]:
    """spec name → the hash8s of its entries in Redis (SCAN) or on disk."""
    found: dict[str, set[str]] = {}
    for entry in await cache.fs.list_entries():
        found.setdefault(entry.spec_name, set()).add(entry.hash8)
    try:
        async for page in cache.redis.scan_ir_keys():
            for parsed in page:
                found.setdefault(parsed.spec_name, set()).add(parsed.hash8)
    except (RedisUnavailable, RedisError) as exc:
        log.debug("stale count without Redis: %s", exc)
    return found


def current_specs(statuses: Iterable[SpecStatus]) -> list[SpecFile]:
    """The spec files that exist now, as `specs.stale` wants them (for find_stale and prune)."""
    out: list[SpecFile] = []
    for status in statuses:
        if status.state is SpecState.DELETED or not status.spec_name:
            continue
        if status.cache_key:
            # SpecFile.hash8 is digest[:8]: the hash8 stands in for the full digest
            out.append(SpecFile(status.path, status.spec_name, status.cache_key[-8:]))
        else:  # unreadable, or not read yet: protects every entry of its name
            out.append(SpecFile(status.path, status.spec_name, error=status.error or "not read yet"))
    return out


def stale_counts(statuses: list[SpecStatus], found: dict[str, set[str]]) -> list[tuple[Path, int]]:
    """(path, stale count) of each status. Pure, so that it can run in a thread."""
    current = current_hashes(current_specs(statuses))
    out: list[tuple[Path, int]] = []
    for status in statuses:
        hashes = current.get(status.spec_name, set())
        if not status.spec_name or ANY_HASH in hashes:
            count = 0
        else:
            count = len(found.get(status.spec_name, set()) - hashes)
        out.append((status.path, count))
    return out
