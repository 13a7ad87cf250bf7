"""The keys pane's `e`: the view written to a file, every page of it, in the pane's sort order.

The rows come from the cache a page at a time (IRCache.entry_rows, the `/` filter's meaning) and
are written as `ircache-tui keys --csv/--json` prints them (cache/export.py). Writing happens in
a thread, a chunk at a time, so the dashboard keeps drawing. A file that cannot be finished (the
disk full, Redis gone midway, the export cancelled) is removed: no half export is left behind
looking like a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ....cache import export
from ....cache.browse import KeyRow
from ....cache.export import ExportFormat, ExportRow

#: Rows an export sorts. Sorting needs every row before the first is written, so the rows are held
#: (a few hundred bytes each: 200,000 is some tens of MB); past this many the rest of the view is
#: written as the scan finds it, and the notification says the file is not sorted. `ircache-tui
#: keys` streams any number at flat memory.
SORT_LIMIT = 200_000
#: rows turned into text and written in one go (in a thread)
CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class Exported:
    path: Path  # absolute
    count: int
    sorted: bool  # False: over SORT_LIMIT rows, written in scan order


async def rows_of(rows: list[KeyRow]) -> AsyncIterator[list[KeyRow]]:
    """Rows already at hand (the largest/expiring views: the rows shown are the view) as one page."""
    yield rows


async def write_export(pages: AsyncIterator[list[KeyRow]], order: Callable[[KeyRow], Any], fmt: ExportFormat,
                       path: Path, prefix: str) -> Exported:
    """Write every row of `pages` to `path` (a new file: an existing one is never overwritten),
    sorted by `order`. OSError when the file cannot be made or written, IRCacheError when the
    rows cannot be read; either way nothing is left at `path`."""
    path = Path(path).absolute()
    out: IO[str] = await asyncio.to_thread(open, path, "x", encoding="utf-8", newline="")
    held: dict[str, KeyRow] | None = {}  # by key: a key SCAN returned twice is written once
    count = 0
    try:
        await asyncio.to_thread(out.write, export.header(fmt))
        async for rows in pages:
            if held is None:
                count += await _write(out, rows, fmt, prefix)
                continue
            held.update((row.cache_key, row) for row in rows)
            if len(held) > SORT_LIMIT:  # too many to sort: what is held goes out as found
                count += await _write(out, list(held.values()), fmt, prefix)
                held = None
        if held is not None:
            count += await _write(out, sorted(held.values(), key=order), fmt, prefix)
        await asyncio.to_thread(out.close)
    except BaseException:
        out.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return Exported(path, count, held is not None)


async def _write(out: IO[str], rows: list[KeyRow], fmt: ExportFormat, prefix: str) -> int:
    for start in range(0, len(rows), CHUNK):
        await asyncio.to_thread(_write_chunk, out, rows[start:start + CHUNK], fmt, prefix)
    return len(rows)


def _write_chunk(out: IO[str], rows: list[KeyRow], fmt: ExportFormat, prefix: str) -> None:
    out.write(export.lines([ExportRow.of(row, prefix) for row in rows], fmt))
