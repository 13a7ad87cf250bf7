"""The entries as data: one ExportRow per key, written as NDJSON or CSV.

What `ircache-tui keys --json/--csv` prints and what the dashboard's `e` writes to a file:
the same fields, in the same order, from the same KeyRow the key pane shows. The states
are lowercase words a script can match:

    ok              an entry, as far as its first KiB shows
    corrupt         an entry of ours that is not one (not JSON, or a field missing)
    old-schema      an entry written by another schema version (reads as a miss)
    hash-mismatch   an entry whose spec_hash does not begin with the key's hash8 (a miss)
    foreign         another tool's value under a name of our grammar: not an entry, never
                    touched, listed only when asked (`--foreign`)
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from .browse import KeyRow

ExportFormat = Literal["ndjson", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "ndjson")

#: KeyRow.problem (the words the key pane shows) → the export's state
STATES = {None: "ok", "corrupt": "corrupt", "old schema": "old-schema", "hash ≠ key": "hash-mismatch",
          "foreign": "foreign"}

#: the columns, in order: the CSV's header and the NDJSON objects' fields
FIELDS = ("key", "spec", "hash", "state", "ttl", "bytes", "cost_usd", "hits", "last_hit", "generated_at",
          "generator")


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
    escaped, as `--json` everywhere); CSV cells are the values as they are (unknown: empty)."""
    if fmt == "ndjson":
        return "".join(json.dumps(row.to_json(), ensure_ascii=True, allow_nan=False) + "\n" for row in rows)
    return _csv_lines([["" if (v := getattr(row, name)) is None else str(v) for name in FIELDS] for row in rows])


def _csv_lines(cells: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(cells)
    return out.getvalue()
