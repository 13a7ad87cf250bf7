"""Incremental regeneration: a changed spec regenerated from its previous IR and the spec's diff.

On a miss for spec S (the Generation asks `attempt()` before generating in full):

1. the previous entry is the newest (by generated_at) of S's other entries *on the filesystem*, the
   tier that keeps every generation; Redis's keyspace is never walked per miss, so an earlier entry
   that only Redis holds is not used (the spec then regenerates in full). Spec names match exactly:
   `ecommerce` never patches from `ecommerce_v2`. An entry another generator, model or prompt made
   (outdated for the current one: envelope.GeneratorInfo.outdated_for) is never a starting point:
   the patched IR would say the current model made it while holding mostly the old one's work, and
   `warm --outdated` would never find it again;
2. it must carry the spec text it was made from (entries written before spec texts were kept do
   not: full), and the change must be small: at most MAX_CHANGED_FRACTION of the spec's lines
   (a bigger rewrite is cheaper to trust to a full generation than to a long patch);
3. the generator must offer `regenerate_with_usage` (base.RegeneratesFromPatch); the offline one
   does not (it is deterministic and free), so it never takes this path.

A patch that does not apply, an invalid result, a refusal, a cut-off, any failure of the request:
one line (`incremental regeneration of S did not apply: …; generating in full`) and the caller
generates in full; the tokens the attempt spent are added to that generation's usage, which says
mode "full" (a batch's failed patch request too, priced at the batch's half: with_batch_attempt). Nothing from a failed attempt is ever stored.

A batch (`warm --batch`, batch.py) plans its requests by the same rule: a spec whose previous entry
qualifies goes into the batch as a patch request (its record keeps the previous entry's key, so a
resumed batch reloads that IR from disk), and what does not apply there is said in the same line
and generated in full directly.

What an incremental entry saved (`usage.incremental_saved_usd`): the estimated cost of a full
generation less its own. The estimate is the previous entry's cost when it was a full generation
of known cost (the same spec, a little smaller or bigger), else a full request's tokens from the
sizes involved, at the model's prices: the spec as input, the new IR as output, about
CHARS_PER_TOKEN characters a token (the system prompt is left out: a full request would mostly
read it from the prompt cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from ..ir.envelope import CorruptEntry, GeneratorInfo, StoredEntry, decode_entry
from ..ir.generators import GenerationError, Generator
from ..ir.generators.base import IncrementalFailed, RegeneratesFromPatch, identity_of
from ..ir.model import ApplicationIR
from ..ir.patch import SpecDiff, spec_diff
from ..ir.prices import Price, cost_of, estimate_cost
from ..ir.usage import TOKEN_FIELDS, Usage
from .fs_tier import FileEntry, FilesystemTier
from .keys import CacheKey

log = logging.getLogger("ircache")

#: a change touching more than this share of the spec's lines regenerates in full
MAX_CHANGED_FRACTION = 1 / 3
#: how many of a spec's newest files (by mtime) are read to find the newest generation: bounded, and
#: plenty (prune keeps a few per spec)
CANDIDATES = 8
#: characters of JSON or markdown per token, for the estimate of a full generation's cost
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an incremental attempt gave: the IR and its usage, or (ir None) the usage it spent
    before failing (None when it sent nothing). `previous`: the entry it started from."""

    ir: ApplicationIR | None = None
    usage: Usage | None = None
    previous: StoredEntry | None = None


NOT_TRIED = Attempt()
#: the cache dir's entries by spec name (Incremental.listing)
Listing = dict[str, list[FileEntry]]


@dataclass(frozen=True, slots=True)
class Plan:
    """An incremental regeneration to ask for: the entry it starts from and the spec's diff since."""

    previous: StoredEntry
    diff: SpecDiff

    @property
    def previous_key(self) -> str:
        """The previous entry's cache key (a batch's record keeps it, to reload the entry from disk)."""
        return _key_of(self.previous)

    def said(self) -> str:
        return f"{self.previous_key}, {_lines(self.diff)} changed"


def say_fell_back(spec_name: str, reason: str) -> None:
    """The one line said when a regeneration from a patch gave nothing (the caller then goes full)."""
    log.warning("incremental regeneration of %s did not apply: %s; generating in full", spec_name, reason)


class Incremental:
    def __init__(self, fs: FilesystemTier) -> None:
        self._fs = fs

    async def plan(self, generator: Generator, key: CacheKey, spec_markdown: str,
                   listing: Listing | None = None) -> Plan | None:
        """The previous entry and the diff to patch it with, when incremental regeneration applies (see
        the module docstring); None when it does not. A batch's requests are planned by this too, over
        one `listing()` of the cache dir (not one per spec)."""
        if not isinstance(generator, RegeneratesFromPatch) or not getattr(generator, "uses_llm", True):
            return None
        spec_name = key.spec_name
        previous = await self.previous_entry(key, listing, made_by=identity_of(generator))
        if previous is None or previous.spec_text is None:
            log.debug("No earlier entry of %s by this generator with its spec text: generating in full", spec_name)
            return None
        diff = spec_diff(previous.spec_text, spec_markdown, spec_name)
        if not diff.changed_lines or diff.fraction > MAX_CHANGED_FRACTION:
            log.debug("%s changed %d of %d lines since its last entry: generating in full", spec_name,
                      diff.changed_lines, diff.total_lines)
            return None
        return Plan(previous, diff)

    async def attempt(self, generator: Generator, key: CacheKey, spec_markdown: str,
                      deadline: float | None) -> Attempt:
        """Regenerate from the previous entry's IR and the spec's diff when that applies (see the
        module docstring); NOT_TRIED when it does not apply, an Attempt without IR when it failed."""
        plan = await self.plan(generator, key, spec_markdown)
        if plan is None or not isinstance(generator, RegeneratesFromPatch):
            return NOT_TRIED
        spec_name, previous, diff = key.spec_name, plan.previous, plan.diff
        log.info("Regenerating %s from its previous IR (%s): asking for a patch", spec_name, plan.said())
        try:
            async with asyncio.timeout(deadline):
                ir, usage = await generator.regenerate_with_usage(
                    previous.application_ir, diff.text, spec_markdown, spec_name)
            if not isinstance(ir, ApplicationIR):
                ir = ApplicationIR.model_validate(ir)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return self._fell_back(spec_name, f"no answer within {deadline:g}s (IR_GENERATE_TIMEOUT)", None, previous)
        except IncrementalFailed as exc:
            return self._fell_back(spec_name, str(exc), exc.usage, previous)
        except GenerationError as exc:
            return self._fell_back(spec_name, str(exc), None, previous)
        except Exception as exc:  # a generator's bug must not cost the spec its generation
            return self._fell_back(spec_name, f"{exc.__class__.__name__}: {exc}", None, previous)
        log.info("Incremental regeneration of %s applied to %s's IR", spec_name, _key_of(previous))
        return Attempt(ir, usage.model_copy(update={"mode": "incremental"}), previous)

    @staticmethod
    def _fell_back(spec_name: str, reason: str, spent: Usage | None, previous: StoredEntry) -> Attempt:
        say_fell_back(spec_name, reason)
        return Attempt(None, spent, previous)

    async def entry(self, cache_key: str) -> StoredEntry | None:
        """The entry the filesystem holds under `cache_key` (a batch's patch request's previous entry,
        reloaded when its results come), or None when it is gone or unreadable."""
        try:
            key = CacheKey.parse(cache_key)
            raw = await self._fs.read_raw(key)
            return None if raw is None else decode_entry(raw, key.hash8)
        except (OSError, CorruptEntry, ValueError):
            return None

    async def listing(self) -> Listing:
        """The cache dir's entries by spec name (empty when it cannot be listed)."""
        by_spec: Listing = {}
        with contextlib.suppress(OSError):
            for file in await self._fs.list_entries():
                by_spec.setdefault(file.spec_name, []).append(file)
        return by_spec

    async def previous_entry(self, key: CacheKey, listing: Listing | None = None, *,
                             made_by: GeneratorInfo | None = None) -> StoredEntry | None:
        """The newest generation (by generated_at) of the same spec under another key, on disk; with
        `made_by`, the newest of those not outdated for that generator."""
        if listing is None:
            listing = await self.listing()
        files = [f for f in listing.get(key.spec_name, ()) if f.cache_key != key.cache_key]
        newest: StoredEntry | None = None
        usable = 0  # the newest CANDIDATES entries the generator could start from, read among at most 4× that
        for file in sorted(files, key=lambda f: -f.mtime)[:CANDIDATES * 4]:
            if usable == CANDIDATES:
                break
            with contextlib.suppress(OSError, CorruptEntry):
                raw = await self._fs.read_raw(file.key)
                if raw is None:
                    continue
                entry = decode_entry(raw, file.hash8)
                if made_by is not None and entry.generator.outdated_for(made_by):
                    continue  # another model's work (module docstring); not counted among the candidates
                usable += 1
                if newest is None or _when(entry) > _when(newest):
                    newest = entry
        return newest


def with_attempt(full: Usage, spent: Usage | None) -> Usage:
    """A full generation's usage with a failed attempt's tokens added (both were paid for)."""
    if spent is None:
        return full
    counts: dict[str, object] = {}
    for name in TOKEN_FIELDS:
        mine, theirs = getattr(full, name), getattr(spent, name)
        counts[name] = None if mine is None and theirs is None else (mine or 0) + (theirs or 0)
    return Usage.model_validate({**full.model_dump(), **counts, "mode": "full"})


def with_batch_attempt(full: Usage, spent: Usage) -> Usage:
    """A direct full generation's priced usage with a batch request that gave no IR added, priced
    apart at the batch's price (both were paid for: the tokens and dollars add up, each at its own
    tier; the entry keeps the direct request's tier and says mode "full")."""
    merged = with_attempt(full, spent).model_dump()

    def add(name: str, *, unknown_if_either: bool) -> float | None:
        """A cost is unknown if either part's is; a saving is what either part saved (None: neither did)."""
        mine: float | None = getattr(full, name)
        theirs: float | None = getattr(spent, name)
        if mine is None or theirs is None:
            return None if unknown_if_either else (mine if theirs is None else theirs)
        return round(mine + theirs, 9)

    merged.update(service_tier=full.service_tier, duration_s=full.duration_s,
                  cost_usd=add("cost_usd", unknown_if_either=True),
                  batch_saved_usd=add("batch_saved_usd", unknown_if_either=False),
                  prompt_cache_saved_usd=add("prompt_cache_saved_usd", unknown_if_either=False))
    return Usage.model_validate(merged)


def saved(usage: Usage, previous: StoredEntry | None, ir: ApplicationIR, spec_markdown: str,
          price: Price | None) -> Usage:
    """`usage` of an incremental generation with `incremental_saved_usd` set (see the module docstring)."""
    if usage.cost_usd is None:
        return usage
    before = previous.usage if previous is not None else None
    full: float | None = None
    if previous is not None and before is not None and before.mode == "full" and previous.renamed_from is None:
        # the previous full generation's tokens priced now, at this one's tier (a batch pays half of
        # both): not its recorded cost, which a rename (free) or another tier or model would skew
        full = cost_of(price, before.model_copy(update={"service_tier": usage.service_tier}))
    if full is None:
        full = estimate_cost(price, len(spec_markdown) // CHARS_PER_TOKEN, len(ir.model_dump_json()) // CHARS_PER_TOKEN)
        if full is None:
            return usage
        if usage.service_tier == "batch":
            full /= 2
    return Usage.model_validate({**usage.model_dump(), "incremental_saved_usd": round(full - usage.cost_usd, 9)})


def _when(entry: StoredEntry) -> datetime:
    at = entry.generated_at
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _key_of(entry: StoredEntry) -> str:
    return f"{entry.spec_name}_{entry.spec_hash[:8]}"


def _lines(diff: SpecDiff) -> str:
    return f"{diff.changed_lines} of {diff.total_lines} lines"
