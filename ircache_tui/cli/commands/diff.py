"""`ircache-tui diff SPEC.md`: what the spec's current IR changed from the version before it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ...cache.ircache import IRCache
from ...cache.keys import cache_key, parse_cache_key
from ...fmt import shown_name
from ...ir.diff import IRDiff, LineKind, diff_ir, render_lines
from ...ir.envelope import StoredEntry
from ...ir.generators import GenerationError
from ...settings import Settings
from ...specs import older_entry, read_any_tier, read_spec
from ...redact import printable
from ..common import EXIT_OK, EXIT_USAGE, CommandError, generation_failure_reported, print_json, say

HELP = "compare a spec's IR with its previous version: entities, endpoints, flows, rules"
DESCRIPTION = """Compare the spec's current IR (through the cache, generated on a miss unless
--no-generate or --read-only) with the most recent other entry of the same
spec name in Redis or the filesystem, or with --from KEY. The diff is
structural: entities, attributes, endpoints (by method and path), flows and
validation rules added, removed or changed.

Exit status: 0 compared (with or without differences), 1 nothing to compare
with (or the current IR is not cached and may not be generated), 2 bad usage.

examples:
  ircache-tui diff examples/specs/petstore-spec.md
  ircache-tui diff examples/specs/petstore-spec.md --json
  ircache-tui diff examples/specs/petstore-spec.md --from petstore-spec_0a1b2c3d --no-generate"""

_ANSI = {"heading": "\x1b[1m", "added": "\x1b[32m", "removed": "\x1b[31m", "changed": "\x1b[33m", "detail": "\x1b[33m"}
_RESET = "\x1b[0m"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.md", help="the spec file")
    p.add_argument("--from", dest="from_key", metavar="KEY",
                   help="compare with this cache key ({spec_name}_{hash8}) instead of the most recent older entry")
    p.add_argument("--no-generate", action="store_true",
                   help="take the current IR from Redis or the filesystem only; exit 1 if it is not cached")
    p.add_argument("--json", action="store_true",
                   help='print JSON: spec_name, from, to, and entities/endpoints/flows/rules as {"added", "removed", "changed"}')


def run(args: argparse.Namespace, settings: Settings) -> int:
    spec = read_spec(Path(args.spec), seen=False)
    if spec.error:
        raise CommandError(f"{shown_name(args.spec, quote=False)}: {spec.error}", EXIT_USAGE)
    if args.from_key is not None and parse_cache_key(args.from_key) is None:
        raise CommandError(f"--from {shown_name(args.from_key)} is not a cache key of the form {{spec_name}}_{{hash8}}",
                           EXIT_USAGE)
    with generation_failure_reported():  # its error line says it
        return asyncio.run(_run(args, settings, spec.text))


async def _run(args: argparse.Namespace, settings: Settings, text: str) -> int:
    async with IRCache(settings=settings, origin="cli diff") as cache:
        to_key, current = await _current(cache, args, text)
        spec_name = _spec_of(to_key)
        if args.from_key is not None:
            from_key = args.from_key
        else:
            older = await older_entry(cache, spec_name, to_key)
            if older is None:
                raise CommandError(f"nothing to compare {to_key} with: no other entry of {spec_name} "
                                   "in Redis or the filesystem")
            from_key = older[0]
        found = await read_any_tier(cache, from_key)
        if found is None:
            raise CommandError(f"no usable entry {from_key} in Redis or the filesystem")
        before = found[0]
    diff = diff_ir(before.application_ir, current.application_ir)
    if args.json:
        print_json(diff.as_json(spec_name, from_key, to_key))
    else:
        _print_text(diff, spec_name, from_key, to_key, colour=sys.stdout.isatty() and not settings.no_color)
    return EXIT_OK


async def _current(cache: IRCache, args: argparse.Namespace, text: str) -> tuple[str, StoredEntry]:
    """The spec's current key and entry: through lookup, or from the tiers only (--no-generate, read-only)."""
    if args.no_generate or cache.read_only:
        key = cache_key(text, args.spec)
        found = await read_any_tier(cache, key)
        if found is None:
            why = "a read-only cache does not generate" if cache.read_only else "--no-generate does not generate it"
            raise CommandError(f"IR of {_spec_of(key)} ({key}) is not cached, and {why}")
        return key, found[0]
    try:
        result = await cache.lookup(text, args.spec)
    except GenerationError as exc:
        raise CommandError(str(exc)) from None
    return result.cache_key, result.entry


def _spec_of(key: str) -> str:
    parsed = parse_cache_key(key)
    return parsed.spec_name if parsed is not None else key


def _print_text(diff: IRDiff, spec_name: str, from_key: str, to_key: str, *, colour: bool) -> None:
    def paint(kind: LineKind, line: str) -> str:
        return f"{_ANSI[kind]}{line}{_RESET}" if colour else line

    say(f"{spec_name}: {from_key} \u2192 {to_key}")
    say(f"  {diff.summary()}")
    for kind, line in render_lines(diff):  # names from the IRs: escaped before our own colours go on
        print(paint(kind, printable(line)))
