"""`ircache-tui keys`: every entry in Redis, streamed a page at a time (text, NDJSON or CSV)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from ... import redact
from ...cache import export
from ...cache.browse import filter_rule
from ...cache.export import ExportRow
from ...cache.ircache import IRCache
from ...cache.keys import InvalidSpecName
from ...fmt import human_bytes, human_count, human_ttl, human_usd
from ...settings import Settings
from ..common import EXIT_OK, EXIT_USAGE, CommandError, say
from ._shared import require_redis

HELP = "list the entries in Redis (key, state, TTL, bytes, cost, hits, generator), streamed"
DESCRIPTION = """List every entry under the prefix in Redis, a SCAN page at a time (memory stays
one page however many keys there are): key, state, TTL, MEMORY USAGE, what its
generation cost, hits, last hit, generated at and generator. --json prints one JSON
object a line (NDJSON), --csv the same columns after a header line.

--filter takes what the dashboard's `/` takes: a substring of the spec name, =name
for exactly one spec, or a glob over {spec}_{hash8}. States: ok, corrupt,
old-schema, hash-mismatch, and foreign (another tool's value under a name of our
grammar: listed only with --foreign). Exits 0 when the listing is complete (or
the reader closed the pipe: `| head`), 1 when Redis is unreachable or fails
midway, 2 for a bad --filter.

examples:
  ircache-tui keys --filter petstore
  ircache-tui keys --json | jq -r 'select(.state != "ok") | .key'
  ircache-tui keys --csv --filter '=petstore-spec' > petstore.csv"""

#: keys a SCAN page asks details of in one round trip (and the output flushed after each)
PAGE_SIZE = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", metavar="F", default="",
                   help="substring of the spec name, =exact-name, or a glob over {spec}_{hash8} (as the dashboard's /)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object a line (NDJSON; fields in the README)")
    out.add_argument("--csv", action="store_true", help="CSV with a header line, the --json fields as columns")
    p.add_argument("--foreign", action="store_true",
                   help="also list other tools' values under names of our grammar (state foreign)")


def text_line(row: ExportRow) -> str:
    """One entry for a human: key, state, TTL, bytes, cost, hits, last hit, generator (the name
    escaped by `say`)."""
    hits = "?" if row.hits is None else human_count(row.hits)
    last = row.last_hit.replace("T", " ").removesuffix("Z")[:16] if row.last_hit else ("never" if row.hits is not None else "?")
    return (f"{row.key:<40} {row.state:<13} {human_ttl(-1 if row.ttl is None else row.ttl):>7} "
            f"{human_bytes(row.bytes):>9} {human_usd(row.cost_usd):>8} {hits:>6} {last:>16}  {row.generator or '?'}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        filter_rule(args.filter)
    except InvalidSpecName as exc:
        raise CommandError(f"--filter {args.filter!r}: {exc}", EXIT_USAGE) from None
    try:
        return asyncio.run(_run(args, settings))
    except BrokenPipeError:
        # the reader has what it wanted (`| head`): a normal end. Python would complain on exit
        # about the stdout it cannot flush, so stdout goes nowhere from here
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    fmt: export.ExportFormat | None = "ndjson" if args.json else "csv" if args.csv else None
    # CSV cannot escape a control character: on a terminal its cells are shown escaped, as every
    # name is; piped or redirected they are exact
    escape = fmt == "csv" and sys.stdout.isatty()
    async with IRCache(settings=settings, origin="cli keys") as cache:
        await require_redis(cache)
        if fmt is not None:
            sys.stdout.write(export.header(fmt))
        # Redis failing midway: its error line says it (exit 1; main.py leaves the log's WARNING out)
        async with contextlib.aclosing(cache.export_pages(args.filter or None, foreign=args.foreign,
                                                          page_size=PAGE_SIZE)) as pages:
            async for rows in pages:
                if fmt is None:
                    for row in rows:
                        say(text_line(row))
                else:
                    text = export.lines(rows, fmt)
                    sys.stdout.write(redact.printable(text, newlines=True) if escape else redact.scrub(text))
                sys.stdout.flush()  # a page at a time: `| head` sees the first page at once
    return EXIT_OK
