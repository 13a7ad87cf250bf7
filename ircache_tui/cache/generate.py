"""Generation: the generator asked within its deadline, its answer validated and priced, and
kept in both tiers (with the spec's text, for the next version's incremental regeneration). The
seed's MISS line is said here, and every failure is one GenerationError. A changed spec first
tries a patch of its previous IR (incremental.py), and generates in full when that fails."""

from __future__ import annotations

import asyncio
import logging
import time

from ..ir.envelope import StoredEntry
from ..ir.generators import GenerationError, Generator, generator_label, identity_of
from ..ir.generators.base import ReportsUsage
from ..ir.model import ApplicationIR
from ..ir.prices import Price, cost_of, price_for, savings_of
from ..ir.usage import Usage
from ..settings import Settings
from .events import CacheEvent, EventBus
from .incremental import NOT_TRIED, Incremental, saved, with_attempt, with_batch_attempt
from .keys import CacheKey
from .results import GENERATION_FAILED, Lookup
from .tiers import Tiers

log = logging.getLogger("ircache")


class Generation:
    def __init__(self, generator: Generator, settings: Settings, tiers: Tiers, events: EventBus) -> None:
        self.generator = generator
        self._settings = settings
        self._tiers = tiers
        self._events = events
        self._incremental = Incremental(tiers.fs)

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def incremental(self) -> Incremental:
        """Its planning of regenerations from a patch (a batch plans its requests by it too)."""
        return self._incremental

    async def generate(
        self, key: CacheKey, digest: str, spec_markdown: str, spec_path: str, *, store: bool,
        strict: bool = False, full: bool = False, spent: Usage | None = None,
    ) -> Lookup:
        """Generate (within IR_GENERATE_TIMEOUT), price it, and with `store` keep it in both tiers
        (`strict`: a refused ACL rule on the Redis SET raises; the file is written anyway). `full`: no
        incremental attempt (a batch's patch that did not apply is generated so); `spent`: what a
        batch request that gave no IR cost (batch_priced), added to this generation's usage."""
        label = generator_label(self.generator)
        spec_name = key.spec_name
        if store:
            if getattr(self.generator, "uses_llm", True):
                log.info("IR cache MISS for %s, generating with LLM (%s)", spec_name, label)
            else:  # the seed's line, minus a claim that an LLM is asked
                log.info("IR cache MISS for %s, generating with the %s generator (no LLM)", spec_name, label)
            self._events.emit(CacheEvent("miss", spec_name, key.cache_key, "generator", label))
        deadline = self._settings.generate_timeout or None
        reported = Usage()
        started = time.monotonic()
        # a changed spec first tries a patch of its previous IR (incremental.py); on failure, in full
        attempt = NOT_TRIED
        if store and not full:
            attempt = await self._incremental.attempt(self.generator, key, spec_markdown, deadline)
        try:
            if attempt.ir is not None:
                ir, reported = attempt.ir, attempt.usage or Usage(mode="incremental")
            else:
                async with asyncio.timeout(deadline):
                    if isinstance(self.generator, ReportsUsage):
                        ir, reported = await self.generator.generate_with_usage(spec_markdown, spec_name)
                    else:
                        ir = await self.generator.generate(spec_markdown, spec_name)
                reported = with_attempt(reported, attempt.usage)
            if not isinstance(ir, ApplicationIR):
                ir = ApplicationIR.model_validate(ir)
        except TimeoutError:
            message = (f"{self.generator.name} generator did not finish {spec_name} within {deadline:g}s "
                       "(IR_GENERATE_TIMEOUT); nothing was cached")
            log.error("IR generation failed for %s: %s", spec_name, message, extra={GENERATION_FAILED: True})
            self._events.emit(CacheEvent("error", spec_name, key.cache_key, "generator", message))
            raise GenerationError(message) from None
        except GenerationError as exc:
            log.error("IR generation failed for %s: %s", spec_name, exc, extra={GENERATION_FAILED: True})
            self._events.emit(CacheEvent("error", spec_name, key.cache_key, "generator", str(exc)))
            raise
        except Exception as exc:
            message = f"{self.generator.name} generator failed for {spec_name}: {exc.__class__.__name__}: {exc}"
            log.error("IR generation failed for %s: %s", spec_name, message, extra={GENERATION_FAILED: True})
            self._events.emit(CacheEvent("error", spec_name, key.cache_key, "generator", message))
            raise GenerationError(message) from exc
        usage = self.priced(reported, time.monotonic() - started)
        if spent is not None:
            usage = with_batch_attempt(usage, spent)
        if attempt.ir is not None:
            usage = saved(usage, attempt.previous, ir, spec_markdown, self._price())
        made_by = identity_of(self.generator)
        entry = StoredEntry.create(
            ir, spec_name=spec_name, spec_hash=digest, spec_path=str(spec_path),
            generator=made_by.name, model=made_by.model, usage=usage, fingerprint=made_by.fingerprint,
            spec_text=spec_markdown,  # the next version of the spec is diffed against it (incremental.py)
        )
        if store:
            await self._keep(key, entry, label, strict=strict)
        self._events.emit(CacheEvent("generated", spec_name, key.cache_key, "generator", label, usage))
        return Lookup(key.cache_key, "generator", entry)

    async def keep_batched(self, key: CacheKey, digest: str, spec_path: str, ir: ApplicationIR, reported: Usage,
                           seconds: float, batch_id: str, *, strict: bool, spec_text: str | None = None,
                           patched_from: StoredEntry | None = None) -> Lookup:
        """A batch's answer, validated by the generator: priced (its tier is "batch": half) and kept
        in both tiers, as generate() keeps a direct answer. `patched_from`: the previous entry a patch
        answer was applied to (its saving is figured as a direct one's)."""
        label = generator_label(self.generator)
        usage = self.batch_priced(reported, seconds)
        if patched_from is not None and spec_text is not None:
            usage = saved(usage, patched_from, ir, spec_text, self._price())
        made_by = identity_of(self.generator)
        entry = StoredEntry.create(ir, spec_name=key.spec_name, spec_hash=digest, spec_path=str(spec_path),
                                   generator=made_by.name, model=made_by.model, usage=usage,
                                   fingerprint=made_by.fingerprint, spec_text=spec_text)
        await self._keep(key, entry, f"{label} in batch {batch_id}", strict=strict)
        self._events.emit(CacheEvent("generated", key.spec_name, key.cache_key, "generator", label, usage))
        return Lookup(key.cache_key, "generator", entry)

    def batch_priced(self, reported: Usage, seconds: float = 0.0) -> Usage:
        """A batch answer's usage, priced: billed at the batch tier, whether or not a gateway passed
        the tier on."""
        return self.priced(reported.model_copy(update={"service_tier": reported.service_tier or "batch"}), seconds)

    async def _keep(self, key: CacheKey, entry: StoredEntry, how: str, *, strict: bool) -> None:
        """Store in both tiers and say where (`how`: "anthropic (claude-…)", "… in batch msgbatch_…")."""
        raw = entry.to_json_bytes()
        in_redis = on_disk = False
        try:
            in_redis = await self._tiers.store_redis(key, raw, strict=strict)
        finally:  # what was paid for is kept on disk even when Redis refuses it
            on_disk = await self._tiers.store_filesystem(key, raw)
        where = " and ".join(t for t, ok in (("Redis", in_redis), ("the filesystem", on_disk)) if ok)
        if where:
            log.info("Generated IR for %s with %s and cached it as %s (in %s)", key.spec_name, how, key, where)
        else:
            log.warning("Generated IR for %s with %s, but could not cache it (%s)", key.spec_name, how, key)

    def _price(self) -> Price | None:
        paid = getattr(self.generator, "uses_llm", True)
        return price_for(self.generator.model, self._settings.price_override) if paid else None

    def priced(self, reported: Usage, seconds: float) -> Usage:
        """The generator's tokens, with the measured duration and the estimated dollars.

        A generator that reports no tokens and asks no model (offline) cost nothing but time.
        """
        tokens = reported.input_tokens, reported.output_tokens
        if tokens == (None, None) and not getattr(self.generator, "uses_llm", True):
            reported = reported.model_copy(update={"input_tokens": 0, "output_tokens": 0})
        paid = getattr(self.generator, "uses_llm", True)
        price = self._price()
        cost = reported.cost_usd
        if cost is None:
            cost = cost_of(price, reported) if paid else 0.0
        # what the batch discount and prompt caching saved, beside what it cost (stats' saved.by)
        batch, prompt_cache = savings_of(price, reported)
        # validated again (model_copy would not): a figure out of bounds is unknown, never stored
        return Usage.model_validate({**reported.model_dump(), "duration_s": round(reported.duration_s or seconds, 3),
                                     "cost_usd": cost, "mode": reported.mode or "full",
                                     "batch_saved_usd": batch, "prompt_cache_saved_usd": prompt_cache})
