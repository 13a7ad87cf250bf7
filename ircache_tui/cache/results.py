"""What the cache's public methods hand back: frozen values, never a tier's internals."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

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


# Each result's `to_json()` is exactly what the CLI prints of it under --json (a documented
# interface: the README's tables), so the commands and a library caller say the same thing.


def _frozen(section: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(copy.deepcopy(dict(section)))


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """`get_cache_info()`: the seed's two sections (read-only mappings), plus whether Redis answered.

    `redis`: `{"reachable", "total_keys", "total_size_bytes", "specs", "spec_sizes", "foreign_keys",
    "server", "cluster"}`, or `{"reachable": False, "error", "server", "cluster"}` when Redis does
    not answer; `filesystem`: `{"directory", "file_count", "total_size_bytes"}`. Each has `outdated`
    (entries another generator, model or prompt made) when asked for it."""

    redis: Mapping[str, Any]
    filesystem: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "redis", _frozen(self.redis))
        object.__setattr__(self, "filesystem", _frozen(self.filesystem))

    def to_json(self) -> dict[str, Any]:
        """`stats --json`'s "redis" (less the "url" the command adds) and "filesystem" sections."""
        return {"redis": copy.deepcopy(dict(self.redis)), "filesystem": copy.deepcopy(dict(self.filesystem))}


@dataclass(frozen=True, slots=True)
class FlushResult:
    """`clear_cache()`: how many went from each tier flushed (None: not flushed), and the keys of our
    name holding another tool's value that a Redis flush kept."""

    redis: int | None = None
    filesystem: int | None = None
    foreign_kept: int = 0

    def to_json(self) -> dict[str, int]:
        """`flush --json`: only the tiers flushed; `foreign_kept` with Redis."""
        out: dict[str, int] = {}
        if self.redis is not None:
            out["redis"] = self.redis
        if self.filesystem is not None:
            out["filesystem"] = self.filesystem
        if self.redis is not None:
            out["foreign_kept"] = self.foreign_kept
        return out


@dataclass(frozen=True, slots=True)
class WarmResult:
    """`warm_redis()`: entries copied, already there, not tried (`left`), one "key: reason" per entry
    tried and not copied, and why the walk stopped (None: it ran to its end)."""

    warmed: int = 0
    already_in_redis: int = 0
    left: int = 0
    failures: tuple[str, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> int:
        """Always in step with `failures`."""
        return len(self.failures)

    def to_json(self) -> dict[str, Any]:
        """`warm --json`'s keys of the walk (the command adds "specs", "specs_by_tier" and its spec
        failures to "failures" and "failed")."""
        return {"warmed": self.warmed, "already_in_redis": self.already_in_redis, "failed": self.failed,
                "left": self.left, "failures": list(self.failures), "error": self.error}


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """`delete_entries()`: how many went from each tier."""

    redis: int = 0
    filesystem: int = 0

    def to_json(self) -> dict[str, int]:
        """`prune --json`'s "removed"."""
        return {"redis": self.redis, "filesystem": self.filesystem}


@dataclass(frozen=True, slots=True)
class HitTotals:
    """`hit_totals()`: hits by tier across every process, since when (None: not known), and what they
    saved."""

    redis: int
    filesystem: int
    generator: int
    since: str | None
    saved_usd: float
    saved_seconds: float

    def to_json(self) -> dict[str, Any]:
        """`stats --json`'s "hits" and "saved" sections."""
        return {"hits": {"redis": self.redis, "filesystem": self.filesystem, "generator": self.generator,
                         "since": self.since},
                "saved": {"usd": self.saved_usd, "seconds": self.saved_seconds}}


@dataclass(frozen=True, slots=True)
class HitCount:
    """One entry's hits (`hit_counts()`), across processes; `last`: epoch seconds, or None."""

    redis: int = 0
    filesystem: int = 0
    last: float | None = None

    def to_json(self) -> dict[str, int]:
        """`get --json`'s "hits"."""
        return {"redis": self.redis, "filesystem": self.filesystem}


@dataclass(frozen=True, slots=True)
class GenerationTotals:
    """`generation_totals()`: what the entries on disk cost to produce (`entries_with_usage` of
    `entries` carry their usage)."""

    entries: int = 0
    entries_with_usage: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    #: what the batch discount, prompt caching and regenerating from a patch saved on those
    #: generations (usage.Usage)
    batch_saved_usd: float = 0.0
    prompt_cache_saved_usd: float = 0.0
    incremental_saved_usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """`stats --json`'s "generation"."""
        return {"entries_with_usage": self.entries_with_usage, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}


@dataclass(frozen=True, slots=True)
class Savings:
    """What each lever saved, in dollars: `hits` (the generation cost of every hit, across processes),
    `batch` (the standard price less the batch price of batch generations), `prompt_cache` (cached
    tokens as plain input less what they cost: reads, less the write premium) and `incremental`
    (regenerations from a patch: the estimated full generation less what the patch cost). The generation levers count the entries on disk, the
    tier that keeps every generation: a flushed entry's saving goes with it."""

    hits: float
    batch: float
    prompt_cache: float
    incremental: float = 0.0

    @classmethod
    def of(cls, hits: HitTotals, generation: GenerationTotals) -> "Savings":
        return cls(hits.saved_usd, generation.batch_saved_usd, generation.prompt_cache_saved_usd,
                   generation.incremental_saved_usd)

    @property
    def total(self) -> float:
        return round(self.hits + self.batch + self.prompt_cache + self.incremental, 6)

    def to_json(self) -> dict[str, float]:
        """`stats --json`'s "saved" → "by"."""
        return {"hits": self.hits, "batch": self.batch, "prompt_cache": self.prompt_cache,
                "incremental": self.incremental}


@dataclass(frozen=True, slots=True)
class Lookup:
    """What `lookup` found: the IR, its stored entry and which tier answered; `outdated`: the entry
    was made by another generator, model or prompt than the cache's (served all the same, unless
    IR_OUTDATED=regenerate); `renamed_from`: the cache key its entry was copied from, when the spec's
    text was cached under another name and nothing was generated (tier "filesystem")."""

    cache_key: str
    tier: Tier
    entry: StoredEntry
    outdated: bool = False
    renamed_from: str | None = None

    @property
    def ir(self) -> ApplicationIR:
        return self.entry.application_ir


@dataclass(frozen=True, slots=True)
class FlagsRestore:
    """One node's notify-keyspace-events, which this process had set: `found` before it did, `left`
    now; `reason` says why it was not set back; `listening`: the patterns other clients were still
    subscribed to there (PUBSUB NUMPAT), which kept them on."""

    address: str
    found: str
    left: str
    restored: bool
    reason: str = ""
    listening: int = 0


@dataclass(frozen=True, slots=True)
class NotificationsRestored:
    """`restore_notifications()`: keyspace notifications set back as they were found (or not, and why)."""

    nodes: tuple[FlagsRestore, ...]

    @property
    def restored(self) -> bool:
        return all(n.restored for n in self.nodes)

    @property
    def sentence(self) -> str:
        """One line for the terminal, after the dashboard closes."""
        several = len(self.nodes) > 1
        if self.restored:
            found = sorted({n.found for n in self.nodes})
            where = f" on {len(self.nodes)} nodes" if several else ""
            return (f"Keyspace notifications: set notify-keyspace-events back to "
                    f"{' / '.join(repr(f) for f in found)}{where}, as the dashboard found it")
        kept = next(n for n in self.nodes if not n.restored)
        where = f" at {kept.address}" if several else ""
        state = "on" if kept.left else "off"
        if kept.listening:
            patterns = f"{kept.listening} pattern subscription{'s' if kept.listening != 1 else ''}"
            return (f"Left keyspace notifications {state}{where}: another client still listens "
                    f"({patterns}; notify-keyspace-events {kept.left!r})")
        return f"Left keyspace notifications {state}{where}: notify-keyspace-events is {kept.left!r} ({kept.reason})"


RawKind = Literal["string", "other", "none"]  # "other": a hash, list, set...; "none": the key is gone


@dataclass(frozen=True, slots=True)
class RawHead:
    """The first bytes of a Redis value as it is stored (a corrupt entry, another tool's value),
    to look at: never the whole value (GETRANGE), never decoded, never acted on."""

    cache_key: str
    kind: RawKind
    head: bytes  # at most the limit asked, of a string (b"" otherwise)
    more: bool  # whether the value goes on past `head`


@dataclass(frozen=True)
class AuditRecords:
    """The audit trail as read (IRCache.audit_records): its records oldest first, how many lines
    were not records, and where they came from (the stream's key, or the file's path)."""

    records: tuple[dict[str, Any], ...]
    bad: int
    source: str
