"""`ircache-tui prune DIR ...`: delete entries no spec can hit any more."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ...cache.ircache import DeleteResult, IRCache
from ...fmt import plural
from ...settings import Settings
from ...specs import StaleReport, discover_specs, find_stale, prune
from ...specs.stale import stale_summary
from ..common import EXIT_FAILED, EXIT_OK, confirm, eprint, print_json, say
from ._shared import spec_dirs

HELP = "delete stale entries: older hashes of the specs under DIR"
DESCRIPTION = """Compare the cache with the specs under DIR: entries of an older version of
a spec under DIR are stale, and are deleted from Redis and the filesystem
after confirmation (--yes without a terminal). Entries of spec names that
are not under DIR may belong to another pipeline sharing the prefix: they
are listed as "not under DIR (kept)" and deleted only with --orphans.
--dry-run only lists. Each list shows its first few names and how many more
(-v shows them all; --json has them all).

examples:
  ircache-tui prune examples/specs --dry-run
  ircache-tui prune examples/specs --yes --json
  ircache-tui prune examples/specs --orphans --yes   # also entries of specs not under DIR"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="the spec directories that define what is current")
    p.add_argument("--pattern", default="*.md", help="spec file glob (default *.md)")
    p.add_argument("--orphans", action="store_true",
                   help="also delete entries whose spec is not under DIR (by default they are kept)")
    p.add_argument("--keep-orphans", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print JSON (what was found and what was removed)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)
    return asyncio.run(_run(args, settings, dirs))


async def _run(args: argparse.Namespace, settings: Settings, dirs: list[Path]) -> int:
    specs = discover_specs(dirs, args.pattern, ignored=[settings.cache_dir])
    async with IRCache(settings=settings, origin="cli prune") as cache:
        report = await find_stale(cache, specs, orphans=args.orphans and not args.keep_orphans)
        removed = DeleteResult()
        if report.total and not args.dry_run:
            if not args.json:
                _describe(report, dirs, every=bool(getattr(args, "verbose", 0)))
            confirm(f"Delete {plural(len(report.redis_keys), 'Redis key')} and {plural(len(report.files), 'file')}?",
                    args.yes)
            removed = await prune(cache, report)
    if args.json:
        print_json({"found": report.as_dict(), "stale_entries": len(report.stale_entries), "removed": removed.to_json(),
                    "dry_run": args.dry_run,
                    "orphans": "removed" if report.include_orphans else "kept",
                    "redis_error": report.redis_error or None})
    else:
        if args.dry_run or not report.total:
            _describe(report, dirs, every=bool(getattr(args, "verbose", 0)))
        if not args.dry_run and report.total:
            say(f"pruned {plural(removed.redis, 'Redis key')} and {plural(removed.filesystem, 'file')}")
    if report.redis_error:
        eprint(f"ircache-tui prune: Redis not checked: {report.redis_error}")
        return EXIT_FAILED
    return EXIT_OK


#: names shown of each list before "… and N more" (-v shows them all)
SHOWN = 5


def _describe(report: StaleReport, dirs: list[Path], *, every: bool = False) -> None:
    """A summary first, then each list's first names (`every`: all of them)."""
    where = ", ".join(map(str, dirs))
    orphan_label = "orphaned (spec not under DIR)" if report.include_orphans else f"not under {where} (kept)"
    if not report.total:
        say("nothing stale")
    if report.stale_entries:  # the count the Specs tab and the watcher give: each entry once, whatever its tiers
        say(f"{stale_summary(report)} of specs under {where}")
    for label, keys in (
        ("stale in Redis", report.redis_stale), (f"{orphan_label} in Redis", report.redis_orphaned),
        ("stale on disk", report.files_stale), (f"{orphan_label} on disk", report.files_orphaned),
    ):
        shown = keys if every else keys[:SHOWN]
        for key in shown:
            say(f"{label}: {key}")
        if len(keys) > len(shown):
            say(f"{label}: … and {len(keys) - len(shown):,} more (-v lists them all)")
    if report.kept:
        say(f"kept {report.kept} entr{'y' if report.kept == 1 else 'ies'} of specs not under {where} "
              "(other pipelines may own them; --orphans deletes them)")
