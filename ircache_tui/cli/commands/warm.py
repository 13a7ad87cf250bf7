"""`ircache-tui warm [DIR ...]`: fill Redis from disk, and make sure every spec is cached."""

from __future__ import annotations

import argparse
import asyncio

from ...cache.ircache import IRCache
from ...ir.generators import GenerationError
from ...fmt import human_count, plural, shown_name
from ...settings import Settings
from ...specs import discover_specs
from ..common import EXIT_FAILED, EXIT_OK, generation_failure_reported, print_json, progress
from ._shared import require_redis, spec_dirs

_SHOWN_FAILURES = 20  # a full Redis refuses every entry: the first lines say why, --json has them all

HELP = "warm Redis from the filesystem; with spec dirs, cache every spec's IR"
DESCRIPTION = """Copy every filesystem entry that Redis lacks into Redis. With spec
directories, also make sure every spec's current IR is cached, generating
where it is missing (at most --jobs at once).

examples:
  ircache-tui warm
  ircache-tui warm examples/specs --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="*", metavar="DIR", help="spec directories (recursive)")
    p.add_argument("--pattern", default="*.md", help="spec file glob (default *.md)")
    p.add_argument("--jobs", type=int, default=4, help="generations at once (default 4)")
    p.add_argument("--json", action="store_true", help="print JSON counts")


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)
    with generation_failure_reported():  # each failure is one of its "failed:" lines
        return asyncio.run(_run(args, settings, dirs))


async def _run(args, settings: Settings, dirs) -> int:
    failures: list[str] = []
    tiers = {"redis": 0, "filesystem": 0, "generator": 0}
    async with IRCache(settings=settings) as cache:
        await require_redis(cache)
        cache.strict_redis_writes = True  # warming is filling Redis: a refused SET stops it
        warmed = await cache.warm_redis()
        failures.extend(warmed.pop("failures"))
        specs = discover_specs(dirs, args.pattern, ignored=[settings.cache_dir]) if dirs else []
        for bad in (s for s in specs if not s.ok):
            failures.append(f"{shown_name(bad.path, quote=False)}: {bad.error}")
        good = [s for s in specs if s.ok]
        limit = asyncio.Semaphore(max(1, args.jobs))
        done = 0
        with progress("caching specs", len(good)) as update:

            async def one(spec) -> None:
                nonlocal done
                async with limit:
                    try:
                        result = await cache.lookup(spec.text, str(spec.path))
                        tiers[result.tier] += 1
                    except GenerationError as exc:
                        failures.append(f"{shown_name(spec.path, quote=False)}: {exc}")
                done += 1
                update(done)

            await asyncio.gather(*(one(s) for s in good))
    result = {**warmed, "specs": len(specs), "specs_by_tier": tiers, "failures": failures}
    if args.json:
        print_json(result)
    else:
        print(f"warmed {plural(warmed['warmed'], 'entry', 'entries')} from the filesystem "
              f"({human_count(warmed['already_in_redis'])} already in Redis"
              + (f", {human_count(warmed['failed'])} failed" if warmed["failed"] else "")
              + (f", {human_count(warmed['left'])} not tried" if warmed["left"] else "") + ")")
        if dirs:
            print(f"specs: {human_count(len(specs))} ({human_count(tiers['redis'])} in Redis, "
                  f"{human_count(tiers['filesystem'])} warmed from disk, {human_count(tiers['generator'])} generated)")
        for line in failures[:_SHOWN_FAILURES]:
            print(f"failed: {line}")
        if len(failures) > _SHOWN_FAILURES:
            print(f"failed: … and {human_count(len(failures) - _SHOWN_FAILURES)} more (--json lists them all)")
    return EXIT_FAILED if failures else EXIT_OK
