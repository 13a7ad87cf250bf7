"""`ircache-tui audit`: who changed the cache, when, from where, and how it ended."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from typing import Any

from ...cache.audit import AUDIT_FILE, read_trail
from ...fmt import duration_seconds, plural
from ...settings import Settings
from ..common import EXIT_OK, EXIT_USAGE, CommandError, eprint, print_json, say

HELP = "show the audit trail: every flush, prune, delete, TTL change, regenerate and warm"
DESCRIPTION = f"""Show the audit trail of the cache dir ({AUDIT_FILE}): one line per action that
changed the cache (flush, prune, delete, TTL change, regenerate, warm), from the
dashboard, a command or the library: when (UTC), who (user@host, pid), from where,
what, how many it touched, and how it ended. Oldest first. Read-only sessions
record nothing.

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
    records, bad = read_trail(settings.cache_dir, since)
    if bad:
        eprint(f"ircache-tui audit: {plural(bad, 'line')} of the trail could not be read as a record (skipped)")
    if args.json:
        print_json(records)
    elif not records:
        say(f"no actions recorded in {settings.cache_dir / AUDIT_FILE}" + (f" since {since.isoformat()}" if since else ""))
    else:
        for record in records:
            say(line(record))  # a spec name, a server's words: escaped
    return EXIT_OK
