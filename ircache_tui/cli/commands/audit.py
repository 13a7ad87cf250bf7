"""`ircache-tui audit`: who changed the cache, when, from where, and how it ended."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from ...cache.audit import AUDIT_FILE, file_records
from ...cache.errors import IRCacheError
from ...cache.ircache import IRCache
from ...cache.results import AuditRecords
from ...fmt import duration_seconds, plural
from ...settings import Settings
from ..common import EXIT_OK, EXIT_USAGE, CommandError, eprint, print_json, redis_down_reported, say

HELP = "show the audit trail: every flush, prune, delete, TTL change, regenerate and warm"
DESCRIPTION = f"""Show the audit trail of the cache dir ({AUDIT_FILE}): one line per action that
changed the cache (flush, prune, delete, TTL change, regenerate, warm), from the
dashboard, a command or the library: when (UTC), who (user@host, pid), from where,
what, how many it touched, and how it ended. Oldest first. Read-only sessions
record nothing. With IR_AUDIT_REDIS=1 it shows the trail every machine sharing the
Redis writes (a capped stream, {{prefix}}:audit), or this machine's file, said in
one line, when Redis cannot be read.

examples:
  ircache-tui audit --since 1h
  ircache-tui audit --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN",
                   help="only actions since then: 30m, 1h, 7d, or an ISO 8601 time (UTC unless it says)")
    p.add_argument("--json", action="store_true", help="print the records as a JSON list")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30m`, `1h`, `7d` ago, or an ISO 8601 time; CommandError (exit 2) otherwise."""
    ago = duration_seconds(text, bare_is_seconds=False)
    if ago is not None:
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=ago)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--since {text!r}: give a duration (30m, 1h, 7d) or an ISO 8601 time", EXIT_USAGE) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def line(record: dict[str, Any]) -> str:
    """One record for a human: `2026-12-07 14:02:11 ana@build-3 (pid 4242) cli flush: flush spec
    petstore from redis: redis 41 → ok`."""
    at = str(record.get("at", ""))[:19].replace("T", " ")
    what = str(record.get("action", "?"))
    if record.get("key"):
        what += f" {record['key']}"
    elif record.get("spec"):
        what += f" spec {record['spec']}"
    elif record.get("action") in ("flush", "warm"):
        what += " all"
    tiers = record.get("tiers") or []
    if tiers and record.get("action") != "warm":
        what += " from " + "+".join(map(str, tiers))
    touched = record.get("touched") or {}
    counts = ", ".join(f"{k} {v}" for k, v in touched.items())
    return (f"{at} {record.get('user', '?')}@{record.get('host', '?')} (pid {record.get('pid', '?')}) "
            f"{record.get('from', '?')}: {what}" + (f": {counts}" if counts else "") + f" → {record.get('outcome', '?')}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since) if args.since else None
    trail = asyncio.run(_shared(settings, since)) if settings.audit_redis else file_records(settings.cache_dir, since)
    if trail.bad:
        eprint(f"ircache-tui audit: {plural(trail.bad, 'line')} of the trail could not be read as a record (skipped)")
    if args.json:
        print_json(list(trail.records))
    elif not trail.records:
        say(f"no actions recorded in {trail.source}" + (f" since {since.isoformat()}" if since else ""))
    else:
        for record in trail.records:
            say(line(record))  # a spec name, a server's words: escaped
    return EXIT_OK


async def _shared(settings: Settings, since: datetime | None) -> AuditRecords:
    """Every machine's trail from the stream; this machine's file, said, when Redis cannot give it."""
    try:
        with redis_down_reported():  # (said below, in the one line: not also as the health tracker's WARNING)
            async with IRCache(settings=dataclasses.replace(settings, read_only=True), origin="cli audit") as cache:
                return await cache.audit_records(since)
    except IRCacheError as exc:
        eprint(f"ircache-tui audit: cannot read the audit stream in Redis ({(str(exc).splitlines() or [type(exc).__name__])[0]}): "
               f"showing this machine's trail, {settings.cache_dir / AUDIT_FILE}")
        return file_records(settings.cache_dir, since)
