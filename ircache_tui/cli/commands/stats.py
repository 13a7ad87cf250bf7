"""`ircache-tui stats`: what is cached, in Redis and on disk."""

from __future__ import annotations

import argparse
import asyncio

from ...cache.ircache import IRCache
from ...fmt import human_bytes
from ...settings import Settings
from ..common import EXIT_FAILED, EXIT_OK, eprint, print_json

HELP = "show what the IR cache holds (Redis keys, bytes, specs; files on disk)"
DESCRIPTION = """Show what the IR cache holds: IR keys in Redis with their MEMORY USAGE and
spec names, and the entries in the filesystem tier. Exits 1 when Redis is
unreachable (the filesystem part is still printed).

example:
  ircache-tui stats --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (shape documented in the README)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with IRCache(settings=settings) as cache:
        info = await cache.get_cache_info()
        redis_url = cache.display_url
    info["redis"]["url"] = redis_url
    info["ttl"] = settings.ttl
    if args.json:
        print_json(info)
    else:
        r, f = info["redis"], info["filesystem"]
        if r["reachable"]:
            specs = ", ".join(r["specs"]) or "none"
            print(f"Redis       {redis_url}")
            print(f"  IR keys   {r['total_keys']}")
            size = r["total_size_bytes"]
            print(f"  memory    {human_bytes(size) if size is not None else 'n/a (MEMORY USAGE refused)'}")
            print(f"  specs     {len(r['specs'])}: {specs}")
        else:
            print(f"Redis       {redis_url}: unreachable ({r['error']})")
        print(f"Filesystem  {f['directory']}")
        print(f"  files     {f['file_count']}")
        print(f"  size      {human_bytes(f['total_size_bytes'])}")
        print(f"TTL         {settings.ttl}s" + (" (caching off)" if settings.ttl == 0 else ""))
    if not info["redis"]["reachable"]:
        eprint(f"ircache-tui stats: {info['redis']['error']}")  # the one line that says why
        return EXIT_FAILED
    return EXIT_OK
