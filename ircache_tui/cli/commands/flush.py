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
Asks for confirmation on a terminal, saying how many it would delete from
each tier; without one, --yes is required. --dry-run only counts.

examples:
  ircache-tui flush petstore-spec --dry-run
  ircache-tui flush petstore-spec --yes
  ircache-tui flush --filesystem --yes --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec_name", nargs="?", metavar="SPEC_NAME", help="flush only this spec (exact name)")
    p.add_argument("--redis", action=argparse.BooleanOptionalAction, default=True, help="flush Redis (default: yes)")
    p.add_argument("--filesystem", action=argparse.BooleanOptionalAction, default=False,
                   help="flush the filesystem tier too (default: no)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--dry-run", action="store_true", help="say what it would delete from each tier; delete nothing")
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
        if args.dry_run or not args.yes:  # the counts first: on the prompt, or as the answer
            would = await _would_delete(cache, args)
            if args.dry_run:
                if args.json:
                    print_json({**would, "dry_run": True})
                else:
                    say(f"would flush {what}: {_counts(would)}; nothing deleted (--dry-run)")
                return EXIT_OK
            confirm(f"Flush {what} from {tiers}: {_counts(would)}?", args.yes)
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


async def _would_delete(cache: IRCache, args: argparse.Namespace) -> dict[str, int]:
    """What a flush would delete from each tier (and keep in Redis), counted: one walk of Redis (the
    flush's own count), one listing of the cache dir."""
    would: dict[str, int] = {}
    if args.redis:
        would["redis"], would["foreign_kept"] = await cache.count_entries(args.spec_name)
    if args.filesystem:
        would["filesystem"] = sum(1 for f in await cache.list_files() if args.spec_name in (None, f.spec_name))
    return would


def _counts(would: dict[str, int]) -> str:
    parts = ([plural(would["redis"], "Redis key")] if "redis" in would else []) + \
            ([plural(would["filesystem"], "file")] if "filesystem" in would else [])
    kept = f" (keeping {kept_sentence(would['foreign_kept'])})" if would.get("foreign_kept") else ""
    return ", ".join(parts) + kept
