"""Making sure every spec's IR is cached: the spec half of `warm DIR` and of the dashboard's `w`.

Each spec is looked up (Redis, then the filesystem, then the generator), `jobs` at once; warming
is filling Redis, so a refused write stops what has not started and is raised once the lookups in
flight are done. The counts are kept in a tally the caller owns, so that they can be read after
an error too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ..cache.errors import IRCacheError
from ..cache.ircache import IRCache
from ..fmt import shown_name
from ..ir.generators import GenerationError
from .discovery import SpecFile


@dataclass
class SpecsTally:
    """What `cache_specs` did so far: specs answered by each tier (`generator`: made now), and one
    "spec: reason" line per spec it could not generate."""

    by_tier: dict[str, int] = field(default_factory=lambda: {"redis": 0, "filesystem": 0, "generator": 0})
    failures: list[str] = field(default_factory=list)


async def cache_specs(cache: IRCache, specs: list[SpecFile], tally: SpecsTally, *, jobs: int = 4,
                      force: bool = False, on_progress: Callable[[int], None] | None = None) -> None:
    """Look every spec up (generating what is missing; with `force`, regenerating each), `jobs` at
    once, counting in `tally`; `on_progress(done)` after each. A cache error (Redis refusing the
    write) stops the rest and is raised once those in flight are done."""
    limit = asyncio.Semaphore(max(1, jobs))
    stopped: list[IRCacheError] = []
    done = 0

    async def one(spec: SpecFile) -> None:
        nonlocal done
        async with limit:
            if stopped:
                return
            try:
                # warming is filling Redis: a refused SET stops it
                result = await cache.lookup(spec.text, str(spec.path), force, strict_redis=True)
                tally.by_tier[result.tier] += 1
            except GenerationError as exc:
                tally.failures.append(f"{shown_name(spec.path, quote=False)}: {exc}")
            except IRCacheError as exc:
                stopped.append(exc)
                return
        done += 1
        if on_progress is not None:
            on_progress(done)

    await asyncio.gather(*(one(s) for s in specs))
    if stopped:
        raise stopped[0]
