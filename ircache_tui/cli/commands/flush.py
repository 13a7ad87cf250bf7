"""`ircache-tui flush [SPEC_NAME]`: delete IR entries, all of them or exactly one spec's."""

from __future__ import annotations

import argparse
import asyncio

from ...cache.ircache import IRCache
from ...cache.keys import InvalidSpecName, validate_spec_name
from ...fmt import kept_sentence, plural
from ...settings import Settings
from ..common import EXIT_OK, EXIT_USAGE, CommandError, confirm, print_json, progress, say
from ._shared import require_redis

HELP = "flush IR entries (all, or exactly one spec's) from Redis and/or the filesystem"
DESCRIPTION = """Delete IR cache entries: every one, or exactly those of SPEC_NAME (not
SPEC_NAME_v2, not SPEC_NAME-api). Redis only by default: the filesystem is the
cold-start tier; add --filesystem to delete files too. Only keys under the
prefix that are IR entries are touched (SCAN + UNLINK, never KEYS or FLUSHDB):
a key named like one that holds another tool's value is kept, and counted.
Asks for confirmation on a terminal; without one, --yes is required.

examples:
  ircache-tui flush petstore-spec --yes
  ircache-tui flush --filesystem --yes --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec_name", nargs="?", metavar="SPEC_NAME", help="flush only this spec (exact name)")
    p.add_argument("--redis", action=argparse.BooleanOptionalAction, default=True, help="flush Redis (default: yes)")
    p.add_argument("--filesystem", action=argparse.BooleanOptionalAction, default=False,
                   help="flush the filesystem tier too (default: no)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true",
                   help='print JSON: {"redis": N, "filesystem": M, "foreign_kept": K}')


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.spec_name is not None:
        try:
            validate_spec_name(args.spec_name)
        except InvalidSpecName as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
    if not args.redis and not args.filesystem:
        raise CommandError("nothing to flush: both --no-redis and --no-filesystem given", EXIT_USAGE)
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    tiers = " and ".join(t for t, on in (("Redis", args.redis), ("the filesystem", args.filesystem)) if on)
    what = f"spec {args.spec_name!r}" if args.spec_name else "ALL IR entries"
    async with IRCache(settings=settings, origin="cli flush") as cache:
        if args.redis:
            await require_redis(cache)
        confirm(f"Flush {what} from {tiers}?", args.yes)
        with progress("unlinking keys") as update:
            result = await cache.clear_cache(
                redis=args.redis, filesystem=args.filesystem, spec_name=args.spec_name, on_progress=update
            )
    if args.json:
        print_json(result.to_json())
    else:
        parts = []
        if result.redis is not None:
            parts.append(plural(result.redis, "Redis key"))
        if result.filesystem is not None:
            parts.append(plural(result.filesystem, "file"))
        say(f"flushed {what}: " + ", ".join(parts))
        if result.foreign_kept:
            say(f"kept {kept_sentence(result.foreign_kept)}")
    return EXIT_OK
