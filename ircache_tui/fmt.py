"""Human-readable counts, sizes, durations and times, shared by the CLI and the dashboard."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

# INVISIBLE (what a terminal would not show as itself) lives beside the scrubber, whose
# `printable` escapes it at every output boundary; re-exported for the name rules (cache/keys.py).
from .redact import INVISIBLE as INVISIBLE
from .redact import printable


def shown_name(name: "str | bytes | os.PathLike[str]", *, quote: bool = True) -> str:
    """A file or spec name as it can be printed safely, quoted: `'a.md'`, `'\\xff.md'`,
    `'evil\\u202etxt.md'`. Bytes that are not UTF-8 (a name from os.listdir carries
    them as surrogates) and invisible characters are spelled as escapes (`printable`)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    text = printable(name)
    return "'" + text.replace("'", "\\'") + "'" if quote else text


def human_count(n: int) -> str:
    """A count for people: `999`, `5,003` (thousands separated)."""
    return f"{n:,}"


def plural(n: int, word: str, plural_word: str | None = None) -> str:
    """A count and its noun in agreement: `1 entry`, `2 entries`, `5,003 keys`.

    `plural_word` defaults to `word + "s"`; pass it for the rest (`entity`/`entities`).
    """
    noun = word if n == 1 else plural_word if plural_word is not None else f"{word}s"
    return f"{human_count(n)} {noun}"


def kept_sentence(n: int) -> str:
    """`1,510 keys under the prefix that are not IR entries (another tool's values)`: what a flush,
    a count or the stats leave alone under names of our grammar."""
    return f"{plural(n, 'key')} under the prefix that {'is' if n == 1 else 'are'} not IR entries (another tool's values)"


def human_usd(usd: float | None) -> str:
    """Dollars for people: `$0.0396` under a dollar (4 significant places), `$12.40`, `$1,234.00`."""
    if usd is None:
        return "n/a"
    if usd == 0:
        return "$0"
    if abs(usd) < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"  # unknown: the server refused MEMORY USAGE, or the key went meanwhile
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def human_ttl(seconds: int | None) -> str:
    """`6d 23h`, `59m 12s`; -1 (no expiry) is `∞`, -2 or None (gone) is `—`."""
    if seconds is None or seconds == -2:
        return "—"
    if seconds == -1:
        return "∞"
    days, rem = divmod(int(seconds), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_seconds(text: str, *, bare_is_seconds: bool = True) -> int | None:
    """Seconds from `90s`, `90m`, `12h`, `7d` (any case, spaces allowed), and from a bare `3600`
    when `bare_is_seconds`; None when `text` is none of these. human_ttl's way back, one rule for
    the dashboard's `T` and `audit --since`."""
    m = _DURATION.match(text)
    if not m or not (m.group(2) or bare_is_seconds):
        return None
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower() or "s"]


def human_time(value: datetime | float | None, now: datetime | None = None) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM` UTC."""
    if value is None:
        return "—"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: `Read-only file system: /x/.cache/ir/a_1234abcd.json`."""
    words = exc.strerror or str(exc) or exc.__class__.__name__
    if isinstance(exc.filename, (str, bytes, os.PathLike)):
        return f"{words}: {shown_name(exc.filename, quote=False)}"
    return words
