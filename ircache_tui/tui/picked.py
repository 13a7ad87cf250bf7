"""What the cursor is on, as the panes hand it to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class KeyFigures:
    """What the keys pane's row read of a Redis key, handed to the detail so that it need not ask
    Redis again: the TTL counts down from `read_at` (the services' monotonic clock)."""

    ttl: int  # seconds when read; -1 no expiry
    read_at: float
    memory: int | None  # MEMORY USAGE; None: refused or unknown
    hits: int | None  # across processes; None: the counts could not be read
    last_hit: float | None  # epoch seconds; None: never
    #: what the row saw wrong with the value ("foreign", "corrupt", …; browse.KeyRow.problem)
    problem: str | None = None


@dataclass(frozen=True)
class PickedEntry:
    """A Redis key, an entry file, or a spec (whose entry may be in either tier)."""

    spec_name: str
    cache_key: str
    tier: Literal["redis", "filesystem", "spec"]
    spec_path: Path | None = None
    #: a key's figures, from its row; not part of what is picked (a poll re-reads them, the same
    #: key stays picked and its entry is not read again)
    figures: KeyFigures | None = field(default=None, compare=False)
