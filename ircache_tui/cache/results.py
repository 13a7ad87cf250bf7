"""What the cache's public methods hand back: frozen values, never a tier's internals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from ..ir.envelope import StoredEntry
from ..ir.model import ApplicationIR

Tier = Literal["redis", "filesystem", "generator"]
StoreTier = Literal["redis", "filesystem"]

#: between INFO and WARNING: what a person at a terminal should see without -v, though
#: nothing is wrong (a wait for another process); the CLI shows it by default
NOTICE = logging.INFO + 5
logging.addLevelName(NOTICE, "NOTICE")
#: set on the "IR generation failed" record: a command that prints the error itself hides it
GENERATION_FAILED = "ircache_generation_failed"


class CacheInfo(TypedDict):
    """`get_cache_info()`: the seed's two sections, plus whether Redis answered."""

    redis: dict[str, Any]
    filesystem: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Lookup:
    """What `lookup` found: the IR, its stored entry and which tier answered."""

    cache_key: str
    tier: Tier
    entry: StoredEntry

    @property
    def ir(self) -> ApplicationIR:
        return self.entry.application_ir
