"""Renames for free: a miss whose spec text is already cached under another spec name.

A key is `{spec}_{hash8}`; renaming `petstore.md` to `pets.md` changes the spec part and keeps
the hash. On a miss (not a forced refresh), before generating, the filesystem is asked for
`*_{hash8}.json` (one directory scan by suffix, fs_tier.with_hash8): a candidate of another name
whose entry reads whole and valid with the same full spec_hash is copied under the new key,
in both tiers, with no generation.

Only the filesystem is asked, never Redis: every entry ever generated is written to the
filesystem (Redis only ever holds copies of it, or of nothing), so a walk of the Redis keyspace
per miss would cost much and find nothing more.

The copy is a new entry (spec_name and spec_path of the new spec, generated_at now) with the
original's IR and generator, `renamed_from` = the original's cache key, and usage of zero tokens
and no cost (its mode and service tier kept): what the copy cost. Its lookup is answered from
the filesystem tier, and says so (`Lookup.renamed_from`); the hit counters see a filesystem hit
that saved what the original cost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ..ir.envelope import StoredEntry
from ..ir.usage import Usage
from .events import CacheEvent, EventBus
from .fs_tier import FilesystemTier
from .keys import CacheKey
from .results import Lookup
from .tiers import Accept, Tiers

log = logging.getLogger("ircache")

#: candidates read at most per miss (names sharing 8 hex digits of hash: normally one or two)
MAX_CANDIDATES = 16


class Renames:
    def __init__(self, fs: FilesystemTier, tiers: Tiers, events: EventBus) -> None:
        self._fs = fs
        self._tiers = tiers
        self._events = events

    async def fill(self, key: CacheKey, digest: str, spec_path: str, accept: Accept | None) -> Lookup | None:
        """The entry of another spec name with this exact text, stored under `key`; None when there
        is none (or none `accept` takes: an outdated one under IR_OUTDATED=regenerate)."""
        try:
            candidates = [c for c in await self._fs.with_hash8(key.hash8) if c.spec_name != key.spec_name]
        except OSError as exc:
            log.debug("No rename lookup for %s: %s", key.spec_name, exc.strerror or exc)
            return None
        for candidate in sorted(candidates, key=lambda c: -c.mtime)[:MAX_CANDIDATES]:
            found = await self._tiers.read_filesystem(candidate.key, remember=False, quiet=True)
            if found is None:
                continue
            original = found[0]
            if original.spec_hash != digest or (accept is not None and not accept(original)):
                continue  # another text that shares 8 hex digits, or an entry the caller will not serve
            return await self._store(key, spec_path, original, candidate.cache_key)
        return None

    async def _store(self, key: CacheKey, spec_path: str, original: StoredEntry, source: str) -> Lookup:
        was = original.usage or Usage()
        usage = Usage(input_tokens=0, output_tokens=0, duration_s=0.0, cost_usd=0.0, mode=was.mode,
                      service_tier=was.service_tier)
        entry = original.model_copy(update={
            "spec_name": key.spec_name, "spec_path": str(spec_path), "generated_at": datetime.now(timezone.utc),
            "usage": usage, "renamed_from": source,
        })
        raw = entry.to_json_bytes()
        try:
            await self._tiers.store_redis(key, raw)
        finally:  # as a generation: the file is kept even when Redis refuses it
            await self._tiers.store_filesystem(key, raw)
        log.info("IR cache MISS for %s: same spec text as %s, re-keyed without generating", key.spec_name, source)
        # answered from what the filesystem held: a hit there, which saved what the original cost
        self._events.hit(key.spec_name, key.cache_key, "filesystem", original.usage, entry.generated_at)
        self._events.emit(CacheEvent("warmed", key.spec_name, key.cache_key, "filesystem", f"re-keyed from {source}"))
        return Lookup(key.cache_key, "filesystem", entry, renamed_from=source)
