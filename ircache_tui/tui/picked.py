"""What the cursor is on, as the panes hand it to each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class PickedEntry:
    """A Redis key, an entry file, or a spec (whose entry may be in either tier)."""

    spec_name: str
    cache_key: str
    tier: Literal["redis", "filesystem", "spec"]
    spec_path: Path | None = None
