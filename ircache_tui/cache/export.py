"""The entries as data: one ExportRow per key, written as NDJSON or CSV.

What `ircache-tui keys --json/--csv` prints and what the dashboard's `e` writes to a file
(write_view, through IRCache.export_view): the same fields, in the same order, from the same
KeyRow the key pane shows. The states are lowercase words a script can match:

    ok              an entry, as far as its first KiB shows
    corrupt         an entry of ours that is not one (not JSON, or a field missing)
    old-schema      an entry written by another schema version (reads as a miss)
    hash-mismatch   an entry whose spec_hash does not begin with the key's hash8 (a miss)
    foreign         another tool's value under a name of our grammar: not an entry, never
                    touched, listed only when asked (`--foreign`)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from .browse import KeyRow

ExportFormat = Literal["ndjson", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "ndjson")

#: KeyRow.problem (the words the key pane shows) → the export's state
STATES = {None: "ok", "corrupt": "corrupt", "old schema": "old-schema", "hash ≠ key": "hash-mismatch",
          "foreign": "foreign"}

#: the columns, in order: the CSV's header and the NDJSON objects' fields
FIELDS = ("key", "spec", "hash", "state", "ttl", "bytes", "cost_usd", "hits", "last_hit", "generated_at",
          "generator")

#: Rows a file export sorts. Sorting needs every row before the first is written, so the rows are
#: held (a few hundred bytes each: 200,000 is some tens of MB); past this many the rest of the view
#: is written as the scan finds it (ExportDone.sorted False). `ircache-tui keys` streams any number
#: at flat memory.
SORT_LIMIT = 200_000
#: rows turned into text and written in one go (in the writer's thread)
CHUNK = 1_000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ExportRow:
    key: str  # the Redis key, `{prefix}:{spec}_{hash8}`
    spec: str
    hash: str  # hash8
    state: str  # one of STATES' values
    ttl: int | None  # seconds left; None: no expiry
    bytes: int | None  # MEMORY USAGE; None when the server refused it
    cost_usd: float | None  # what its generation cost; None: unknown
    hits: int | None  # across processes, as last flushed to Redis; None when they could not be read
    last_hit: str | None  # ISO 8601 UTC; None: never (or unknown)
    generated_at: str | None
    generator: str | None

    @classmethod
    def of(cls, row: KeyRow, prefix: str) -> ExportRow:
        return cls(
            key=f"{prefix}:{row.cache_key}", spec=row.spec_name, hash=row.hash8,
            state=STATES.get(row.problem, (row.problem or "ok").replace(" ", "-")),
            ttl=row.ttl if row.ttl >= 0 else None, bytes=row.memory,
            cost_usd=row.cost_usd if row.cost_usd is None or math.isfinite(row.cost_usd) else None,
            hits=row.hits, last_hit=iso_utc(row.last_hit), generated_at=row.generated_at, generator=row.generator,
        )

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


def iso_utc(epoch: float | None) -> str | None:
    """`2026-03-01T12:00:05Z`, or None."""
    if epoch is None or not math.isfinite(epoch):
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def header(fmt: ExportFormat) -> str:
    """What comes before the first row: the CSV's header line (NDJSON has none)."""
    return _csv_lines([list(FIELDS)]) if fmt == "csv" else ""


def lines(rows: list[ExportRow], fmt: ExportFormat) -> str:
    """The rows, one line each. NDJSON is exact and ASCII (every control and non-ASCII character
    escaped, as `--json` everywhere); CSV cells are the values as they are (unknown: empty), but
    for a text a spreadsheet would run as a formula (csv_cell)."""
    if fmt == "ndjson":
        return "".join(json.dumps(row.to_json(), ensure_ascii=True, allow_nan=False) + "\n" for row in rows)
    return _csv_lines([[csv_cell(getattr(row, name)) for name in FIELDS] for row in rows])


#: what makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | float | None) -> str:
    """A CSV cell: empty for unknown; a text that begins like a formula gets a leading `'`, so that
    a spec file named `=HYPERLINK(…).md` opens as text in a spreadsheet. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return str(value)


def _csv_lines(cells: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(cells)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class ExportDone:
    path: Path  # absolute
    count: int
    sorted: bool  # False: over SORT_LIMIT rows, written in scan order


async def given(rows: Sequence[KeyRow]) -> AsyncGenerator[list[KeyRow], None]:
    """Rows already at hand as one page."""
    yield list(rows)


async def write_view(pages: AsyncGenerator[list[KeyRow], None], path: Path, fmt: ExportFormat, prefix: str,
                     sort_key: Callable[[KeyRow], Any]) -> ExportDone:
    """Write every row of `pages` to `path` (a new file: an existing one is never overwritten),
    sorted by `sort_key` (up to SORT_LIMIT rows; it runs in the writer's thread, so it must only
    read the row: the caller's sort columns stay the caller's), and close `pages`. OSError when the file cannot
    be made or written, IRCacheError when the rows cannot be read; on any failure or cancellation
    nothing we made is left at `path`, and the call returns only once the writer has let go of it."""
    async with contextlib.aclosing(pages):
        return await _write_view(pages, Path(path).absolute(), fmt, prefix, sort_key)


async def _write_view(pages: AsyncIterator[list[KeyRow]], path: Path, fmt: ExportFormat, prefix: str,
                      sort_key: Callable[[KeyRow], Any]) -> ExportDone:
    file = _OneFile(path)
    held: dict[str, KeyRow] | None = {}  # by key: a key SCAN returned twice is written once
    count = 0
    try:
        await file.run(file.create, fmt)
        async for rows in pages:
            if held is None:
                count += await file.write_all(rows, fmt, prefix)
                continue
            held.update((row.cache_key, row) for row in rows)
            if len(held) > SORT_LIMIT:  # too many to sort: what is held goes out as found
                count += await file.write_all(list(held.values()), fmt, prefix)
                held = None
        if held is not None:
            count += await file.write_all(await file.run(sorted, held.values(), key=sort_key), fmt, prefix)
        await file.run(file.close)
    except BaseException:
        await file.discard()
        raise
    finally:
        file.thread.shutdown(wait=False)
    return ExportDone(file.path, count, held is not None)


class _OneFile:
    """The export's file, touched only from its one thread: open, every write, close and unlink
    run there in the order they were asked, so a cancelled export never closes the file while a
    write is still on it, and a descriptor its open made is never lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="ircache-export")
        self.out: IO[str] | None = None  # set (in the thread) once the file is ours

    async def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await asyncio.wrap_future(self.thread.submit(fn, *args, **kwargs))

    def create(self, fmt: ExportFormat) -> None:
        self.out = open(self.path, "x", encoding="utf-8", newline="")
        self.out.write(header(fmt))

    async def write_all(self, rows: list[KeyRow], fmt: ExportFormat, prefix: str) -> int:
        for start in range(0, len(rows), CHUNK):  # a chunk at a time: a cancel waits one chunk at most
            await self.run(self._write, rows[start:start + CHUNK], fmt, prefix)
        return len(rows)

    def _write(self, rows: list[KeyRow], fmt: ExportFormat, prefix: str) -> None:
        assert self.out is not None
        self.out.write(lines([ExportRow.of(row, prefix) for row in rows], fmt))

    def close(self) -> None:
        if self.out is not None:
            self.out.close()

    def _remove(self) -> None:
        if self.out is None:
            return  # never made (e.g. the name was taken): not ours to remove
        with contextlib.suppress(OSError):
            self.out.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def discard(self) -> None:
        """Close and remove the file after whatever the thread is doing, and wait for that, even
        through further cancellation (it is one chunk's work at most)."""
        done: Future[None] = self.thread.submit(self._remove)
        cancelled = False
        while True:
            try:
                await asyncio.shield(asyncio.wrap_future(done))
                break
            except asyncio.CancelledError:
                cancelled = True
            except BaseException:  # nothing more to do: the first failure is what the caller sees
                break
        if cancelled:
            raise asyncio.CancelledError
