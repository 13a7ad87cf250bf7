"""`warm --batch`: every spec that needs generating in one Message Batch, at half the price.

    specs ──miss in both tiers──► submit (≤ 100,000 requests, ≤ 256 MB each) ──► record written
        ──► poll (IR_BATCH_POLL_INTERVAL, doubling to IR_BATCH_POLL_MAX) ──► results joined by
        custom_id, validated, stored in both tiers ──► what failed retried once directly ──► record removed

Across machines: before it submits, a warm claims each spec in Redis (batch_claims.py); a spec
another process's batch claims is left to it (counted busy), and a lookup elsewhere waits for it.

Resumable: the record (batch_record.py) is written as soon as the API has accepted the batch, before
the first poll; a warm stopped at any point leaves it, and the next warm resumes every record no
live process is collecting before it looks for misses: it never submits the same specs twice. The
create request and the record's write are shielded from a cancel (Ctrl-C, SIGTERM): a batch the API
accepted is always recorded. Only a SIGKILL in those milliseconds could lose one.

A spec whose previous entry qualifies for incremental regeneration (incremental.py: the same rule as
a direct generation) goes in as a patch request; its record keeps the previous entry's key, and the
answer is applied to that entry's IR reloaded from disk (by a resumed warm too).

An errored, expired or canceled request, or an answer that is not a valid ApplicationIR (a refusal,
a cut-off), is retried once as a direct generation (with its own repair turn); a patch request's
failure (a patch that does not apply too) is said in incremental's one line ("… did not apply: …;
generating in full") and retried in full. What still fails is reported, one line per spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..fmt import describe_os_error
from ..ir.envelope import StoredEntry
from ..ir.generators import GenerationError, generator_label
from ..ir.generators.base import BatchApi, BatchOutcome
from ..ir.usage import Usage
from .batch_claims import BatchClaims
from .batch_record import MAX_BYTES, MAX_REQUESTS, BatchBook, BatchRecord, BatchSpec, custom_id_for
from .fill import Filler
from .generate import Generation
from .incremental import Listing, say_fell_back
from .keys import CacheKey, InvalidSpecName
from .machine_lock import MachineLock
from .results import NOTICE
from .tiers import Tiers

log = logging.getLogger("ircache")
#: a batch's entries stored at once (each is a Redis SET and an fsynced file)
STORES_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A poll of one batch: its requests done (succeeded, errored, expired, canceled) of all."""

    batch_id: str
    done: int
    total: int
    ended: bool


@dataclass(frozen=True, slots=True)
class BatchWarmResult:
    """`warm_batch()`: the batches collected (those it `resumed` among them), the specs already
    cached, those `submitted` now, stored from a batch (`succeeded`), `retried_directly`, those left
    to a batch another live process collects (`busy`), and one "spec: reason" per spec that failed.
    Already cached: `in_redis`, and `from_filesystem` (copied into Redis on the way)."""

    batches: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    in_redis: int = 0
    from_filesystem: int = 0
    submitted: int = 0
    succeeded: int = 0
    retried_directly: int = 0
    busy: int = 0
    failures: tuple[str, ...] = ()

    @property
    def generated(self) -> int:
        """Specs made now, in a batch or by a direct retry (what failed is not)."""
        return self.succeeded + self.retried_directly - len(self.failures)

    def to_json(self) -> dict[str, Any]:
        """`warm --batch --json`'s "batch" section."""
        return {"batch_ids": list(self.batches), "resumed": list(self.resumed), "in_redis": self.in_redis,
                "from_filesystem": self.from_filesystem,
                "submitted": self.submitted, "succeeded": self.succeeded,
                "retried_directly": self.retried_directly, "busy": self.busy, "failed": len(self.failures),
                "failures": list(self.failures)}


@dataclass
class _Tally:
    batches: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    in_redis: int = 0
    from_filesystem: int = 0
    submitted: int = 0
    succeeded: int = 0
    retried: int = 0
    busy: int = 0
    failures: list[str] = field(default_factory=list)

    def result(self) -> BatchWarmResult:
        return BatchWarmResult(tuple(self.batches), tuple(self.resumed), self.in_redis, self.from_filesystem,
                               self.submitted,
                               self.succeeded, self.retried, self.busy, tuple(self.failures))


class BatchWarm:
    def __init__(self, api: BatchApi, generation: Generation, filler: Filler, tiers: Tiers, book: BatchBook,
                 claims: BatchClaims, *, poll_interval: float, poll_max: float,
                 on_progress: Callable[[BatchProgress], None] | None, force: bool = False) -> None:
        self._api = api
        self._claims = claims
        self._generation = generation
        self._filler = filler
        self._tiers = tiers
        self._book = book
        self._poll = poll_interval
        self._poll_max = max(poll_max, poll_interval)
        self._on_progress = on_progress or (lambda progress: None)
        self._tally = _Tally()
        self._force = force  # regenerate what the tiers hold too (warm --outdated --batch)
        self._made: set[str] = set()  # cache keys this run stored (a resumed batch's): not counted as cached

    async def run(self, specs: list[tuple[str, str]]) -> BatchWarmResult:
        async with self._claims.kept():  # renewed while we work, released however we stop
            for record in self._book.records():  # what an earlier warm left: finished first, never resubmitted
                lock = self._book.lock(record.batch_id)
                if not _try_lock(lock):
                    continue  # another live process collects it
                log.log(NOTICE, "Resuming batch %s (submitted %s, %d specs)", record.batch_id,
                        record.submitted_clock, len(record.specs))
                self._tally.resumed.append(record.batch_id)
                await self._claims.claim(_keys(record))  # ours again (any another batch holds stays theirs)
                try:
                    await self._collect(record, lock)
                except GenerationError as exc:  # e.g. a batch of another key or workspace: say how to give it up
                    raise GenerationError(f"{exc} (resuming the batch recorded in "
                                          f"{self._book.path(record.batch_id)}: delete that file to give it up)") from None
            wanted = await self._unclaimed(await self._misses(specs))
            records = [await self._submit(chunk) for chunk in split_at_limits(wanted)]
            for record, lock in records:
                await self._collect(record, lock)
        return self._tally.result()

    async def _unclaimed(self, wanted: list[Request]) -> list[Request]:
        """The misses no other process's batch claims, claimed now for ours; the others are left to
        theirs (busy). A claimed spec is read again: a batch elsewhere may have stored it and let go
        of it between our read and our claim."""
        elsewhere = await self._claims.claim(CacheKey.parse(spec.cache_key) for spec, _ in wanted)
        kept: list[Request] = []
        for spec, params in wanted:
            key = CacheKey.parse(spec.cache_key)
            if spec.cache_key in elsewhere:
                log.info("%s is in a Message Batch that %s collects: left to it", key.spec_name,
                         elsewhere[spec.cache_key])
                self._tally.busy += 1
            elif not self._force and (hit := await self._tiers.read(key, strict=True)) is not None:
                await self._claims.release([key])
                if hit.tier == "redis":
                    self._tally.in_redis += 1
                else:
                    self._tally.from_filesystem += 1
            else:
                kept.append((spec, params))
        return kept

    async def _misses(self, specs: list[tuple[str, str]]) -> list[tuple[BatchSpec, dict[str, Any]]]:
        """The specs in neither tier (with force: cached or not) nor in a batch in flight, once each, with
        their request params."""
        wanted: dict[str, tuple[BatchSpec, dict[str, Any]]] = {}
        listing: Listing | None = None  # the cache dir's entries, listed once for every patch planned
        for markdown, path in specs:
            try:
                key, digest = CacheKey.for_spec(markdown, path)
            except InvalidSpecName as exc:
                self._tally.failures.append(f"{path}: {exc}")
                continue
            if key.cache_key in wanted or key.cache_key in self._made:
                continue
            if self._book.holding(key.cache_key) is not None:
                self._tally.busy += 1
                continue
            hit = None if self._force else await self._tiers.read(key, strict=True)
            if hit is not None:
                if hit.tier == "redis":
                    self._tally.in_redis += 1
                else:
                    self._tally.from_filesystem += 1
                continue
            if listing is None:
                listing = await self._generation.incremental.listing()
            wanted[key.cache_key] = await self._request(key, digest, path, markdown, listing)
        return list(wanted.values())

    async def _request(self, key: CacheKey, digest: str, path: str, markdown: str,
                       listing: Listing) -> tuple[BatchSpec, dict[str, Any]]:
        """A spec's request: a patch of its previous entry when that qualifies (the rule of a direct
        generation, incremental.py), else a full one."""
        custom_id = custom_id_for(key.cache_key)
        plan = await self._generation.incremental.plan(self._generation.generator, key, markdown, listing)
        if plan is None:
            spec = BatchSpec(custom_id, key.cache_key, digest, path, markdown)
            return spec, self._api.params(markdown, key.spec_name)
        log.info("Regenerating %s from its previous IR (%s): asking for a patch in the batch", key.spec_name,
                 plan.said())
        params = self._api.patch_params(plan.previous.application_ir, plan.diff.text, markdown, key.spec_name)
        return BatchSpec(custom_id, key.cache_key, digest, path, markdown, plan.previous_key), params

    async def _submit(self, chunk: list[tuple[BatchSpec, dict[str, Any]]]) -> tuple[BatchRecord, MachineLock]:
        label = generator_label(self._generation.generator)
        for spec, _params in chunk:
            log.info("IR cache MISS for %s, generating with LLM (%s) in a batch", CacheKey.parse(spec.cache_key)
                     .spec_name, label)

        async def create_and_record() -> tuple[BatchRecord, MachineLock]:
            batch_id = await self._api.submit([(spec.custom_id, params) for spec, params in chunk])
            record = BatchRecord(batch_id, time.time(), self._generation.generator.name,
                                 self._generation.generator.model, tuple(spec for spec, _ in chunk))
            lock = self._book.lock(batch_id)
            _try_lock(lock)  # before the record: a waiter that sees the record sees it collected
            try:
                self._book.write(record)
            except OSError as exc:  # the batch is paid for: collect it now rather than lose it
                log.warning("Batch %s was submitted but could not be recorded in %s (%s): collecting it now; "
                            "stopped before it ends, its results are lost (cancel it in the Anthropic console)",
                            batch_id, self._book.path(batch_id), describe_os_error(exc))
            return record, lock

        task = asyncio.ensure_future(create_and_record())
        try:
            record, lock = await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.gather(task, return_exceptions=True)  # an accepted batch is recorded, then we stop
            raise
        log.log(NOTICE, "Submitted batch %s: %d specs", record.batch_id, len(record.specs))
        self._tally.batches.append(record.batch_id)
        self._tally.submitted += len(record.specs)
        return record, lock

    async def _collect(self, record: BatchRecord, lock: MachineLock) -> None:
        """Poll until the batch ends, store its results, retry what failed directly, drop the record."""
        try:
            if record.batch_id not in self._tally.batches:
                self._tally.batches.append(record.batch_id)
            interval = self._poll
            while True:
                status = await self._api.status(record.batch_id)
                self._on_progress(BatchProgress(record.batch_id, status.done, status.total, status.ended))
                if status.ended:
                    break
                await asyncio.sleep(interval)
                interval = min(interval * 2, self._poll_max)
            by_id = {spec.custom_id: spec for spec in record.specs}
            # what to retry directly, why, and what a failed patch request spent (added to the retry's usage)
            retry: list[tuple[BatchSpec, str, Usage | None]] = []
            seconds = time.time() - record.submitted_at
            storing: set[asyncio.Task[None]] = set()
            room = asyncio.Semaphore(STORES_AT_ONCE)

            async def keep(spec: BatchSpec, outcome: BatchOutcome, previous: StoredEntry | None) -> None:
                assert outcome.ir is not None and outcome.usage is not None
                try:
                    await self._generation.keep_batched(CacheKey.parse(spec.cache_key), spec.digest, spec.spec_path,
                                                        outcome.ir, outcome.usage, seconds, record.batch_id,
                                                        strict=True, spec_text=spec.markdown,
                                                        patched_from=previous)
                    self._tally.succeeded += 1
                    self._made.add(spec.cache_key)
                finally:
                    room.release()

            try:
                patch_ids = {spec.custom_id for spec in record.specs if spec.previous_key is not None}
                # (closed whatever ends the loop: a failed store does not leave the results stream open)
                async with contextlib.aclosing(self._api.results(record.batch_id, patch_ids)) as outcomes:
                    async for outcome in outcomes:
                        spec = by_id.pop(outcome.custom_id, None)
                        if spec is None:
                            continue  # not one of ours (the record is the truth)
                        previous = None
                        if spec.previous_key is not None and outcome.answer is not None:
                            # reloaded from disk one at a time (the same whether this process submitted the
                            # batch or resumes it)
                            previous = await self._generation.incremental.entry(spec.previous_key)
                            if previous is None:
                                gone = f"its previous entry {spec.previous_key} is no longer in the cache dir"
                                retry.append((spec, gone, self._spent(outcome)))
                                continue
                            outcome = self._api.read_patch(previous.application_ir, outcome)
                        if outcome.ir is None or outcome.usage is None:
                            retry.append((spec, outcome.problem, self._spent(outcome)))
                            continue
                        await room.acquire()
                        storing.add(asyncio.ensure_future(keep(spec, outcome, previous)))
            finally:  # a refused write (or a cancel) stops the rest; the record stays for a rerun
                stored = await asyncio.gather(*storing, return_exceptions=True)
            for failed in stored:
                if isinstance(failed, BaseException):
                    raise failed
            retry += [(spec, "no result", None) for spec in by_id.values()]
            for spec, problem, spent in retry:
                await self._retry(record.batch_id, spec, problem, spent)
            self._book.remove(record.batch_id)
        finally:
            lock.release()
            await self._claims.release(_keys(record))

    def _spent(self, outcome: BatchOutcome) -> Usage | None:
        """What a request that gave no IR (a refusal, a cut-off, a patch that does not apply) cost, at
        the batch's price; None when no answer came (errored, expired: nothing billed)."""
        if outcome.usage is not None:
            return self._generation.batch_priced(outcome.usage)
        return None

    async def _retry(self, batch_id: str, spec: BatchSpec, problem: str, spent: Usage | None = None) -> None:
        """One direct generation of what the batch gave no IR for; a failed patch request's is in full."""
        key = CacheKey.parse(spec.cache_key)
        if spec.previous_key is not None:
            say_fell_back(key.spec_name, f"{problem} (batch {batch_id})")
        else:
            log.warning("Batch %s gave no IR for %s (%s): retrying it as a direct request", batch_id, key.spec_name,
                        problem)
        self._tally.retried += 1
        try:
            await self._filler.fill(key, spec.digest, spec.markdown, spec.spec_path, False, True,
                                    full=spec.previous_key is not None, spent=spent)
            self._made.add(spec.cache_key)
        except GenerationError as exc:
            self._tally.failures.append(f"{key.spec_name}: {exc}")


Request = tuple[BatchSpec, dict[str, Any]]


def split_at_limits(requests: list[Request], *, max_requests: int = MAX_REQUESTS,
                    max_bytes: int = MAX_BYTES) -> list[list[Request]]:
    """The requests in batches the API takes: at most `max_requests` each, and at most `max_bytes`
    of request JSON (a request bigger than that alone is sent alone: the API says what it thinks)."""
    chunks: list[list[Request]] = []
    size = 0
    for spec, params in requests:
        one = len(json.dumps({"custom_id": spec.custom_id, "params": params}).encode()) + 2
        if not chunks or len(chunks[-1]) >= max_requests or (chunks[-1] and size + one > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append((spec, params))
        size += one
    return chunks


def _keys(record: BatchRecord) -> list[CacheKey]:
    return [CacheKey.parse(spec.cache_key) for spec in record.specs]


def _try_lock(lock: MachineLock) -> bool:
    """Take a batch's collector lock; True if ours (a cache dir we cannot lock: go on without it)."""
    try:
        return lock.try_acquire()
    except OSError:
        return True
