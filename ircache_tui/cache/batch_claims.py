"""Claims in Redis on the entries a Message Batch is making: `warm --batch`'s single flight across machines.

The batch record (batch_record.py) tells this machine's processes that a spec is in a batch. A
pipeline on another machine that shares the Redis but not the cache dir does not see it, and would
pay for the spec again: directly on a miss, or in a batch of its own. So a warm claims each entry
in Redis before it submits (`{prefix}:{key}:batch`, SET NX PX: the generation lock's machinery,
redis/lock.py, and its kind of token, `pid N on HOST <uuid>`), keeps its claims alive while it
collects (every CLAIM_TTL_MS / 3), and releases them (compare-and-delete) once the results are
stored or the run ends however it ends. Then:

- another warm leaves a claimed spec to the batch that holds it (counted `busy`, like a spec in a
  batch of this machine);
- a lookup that misses on a claimed spec waits for its entry, as it waits for a batch of its own
  machine (`get --no-wait`: BatchInFlight); once the claim is gone with no entry (its collector
  died, so the claim lapsed within CLAIM_TTL_MS; or the batch gave none and its retry failed), it
  generates the spec directly.

Only a value shaped like a claim (`pid N on HOST` and 32 hex digits) is one: another tool's value
at that key is never waited on, overwritten or deleted (the spec is then submitted unclaimed).

Best effort: a Redis that is down or refuses the commands leaves the run without claims (said once
for each step: take, renew, release); the record still guards this machine. A waiting lookup rides
out a Redis that does not answer for up to CLAIM_TTL_MS before it gives up waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from .batch_record import BATCH_WAIT_POLL
from .errors import BatchInFlight
from .keys import CacheKey
from .machine_lock import whoami
from .redis.lock import Locks
from .results import NOTICE, Lookup
from .tiers import REDIS_ERRORS, Accept, Tiers

log = logging.getLogger("ircache")

#: how long a claim outlives its last renewal: a collector that dies frees its specs this soon
CLAIM_TTL_MS = 120_000
#: claims taken, renewed or released at once (each is one round trip)
AT_ONCE = 32
#: what a claim's token looks like (machine_lock.whoami, then a uuid4's hex); the first group is who
_CLAIM = re.compile(r"(pid \d+ on \S+) [0-9a-f]{32}")


async def claimant(locks: Locks, key: CacheKey) -> str | None:
    """Who claims `key` for a batch (`pid N on HOST`), or None: no claim, or another tool's value."""
    token = await locks.token(key)
    m = _CLAIM.fullmatch(token) if token is not None else None
    return m.group(1) if m else None


class BatchClaims:
    """One warm's claims, under one token."""

    def __init__(self, locks: Locks, *, ttl_ms: int = CLAIM_TTL_MS) -> None:
        self._locks = locks
        self._ttl_ms = ttl_ms
        self.token = f"{whoami()} {uuid.uuid4().hex}"
        self._held: dict[str, CacheKey] = {}
        self._said: set[str] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    async def claim(self, keys: Iterable[CacheKey]) -> dict[str, str]:
        """Claim `keys`. Returns those another batch claims: cache key → who (`pid N on HOST`). A key
        that could not be claimed otherwise (Redis trouble, another tool's value there) is neither
        ours nor theirs: the caller goes on without a claim on it."""
        elsewhere: dict[str, str] = {}

        async def one(key: CacheKey) -> None:
            if await self._locks.acquire(key, self.token, self._ttl_ms):
                self._held[key.cache_key] = key
            elif (who := await claimant(self._locks, key)) is not None:
                elsewhere[key.cache_key] = who

        await self._each([k for k in keys if k.cache_key not in self._held], one, "take")
        return elsewhere

    async def release(self, keys: Iterable[CacheKey] | None = None) -> None:
        """Give up the claims on `keys` (all of them when None) that are still ours."""
        if keys is None:
            mine = list(self._held.values())
            self._held.clear()
        else:
            mine = [self._held.pop(k.cache_key) for k in keys if k.cache_key in self._held]

        async def one(key: CacheKey) -> None:
            await self._locks.release(key, self.token)

        await self._each(mine, one, "release")

    async def _renew(self) -> None:
        async def one(key: CacheKey) -> None:
            if await self._locks.extend(key, self.token, self._ttl_ms):
                return
            if self._held.pop(key.cache_key, None) is not None:  # (not released meanwhile: lapsed)
                log.warning("The batch claim on %s lapsed; another machine may generate it too", key.spec_name)

        while True:
            started = time.monotonic()
            await self._each(list(self._held.values()), one, "renew")
            # a third of the TTL from the round's start, however long the round took
            await asyncio.sleep(max(0.0, self._ttl_ms / 3000 - (time.monotonic() - started)))

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[BatchClaims]:
        """Renew every claim held every third of its TTL while the body runs; release them all after."""

        async def renewing_later() -> None:
            await asyncio.sleep(self._ttl_ms / 3000)
            await self._renew()

        renewing = asyncio.ensure_future(renewing_later())
        try:
            yield self
        finally:
            renewing.cancel()
            (ended,) = await asyncio.gather(renewing, return_exceptions=True)
            if isinstance(ended, Exception):  # not a Redis error (_each takes those): a bug, said
                log.warning("Renewing batch claims stopped: %s: %s", ended.__class__.__name__, ended)
            await self.release()

    async def _each(self, keys: list[CacheKey], step: Callable[[CacheKey], Awaitable[None]], what: str) -> None:
        """Run `step` on every key, AT_ONCE at a time, and wait for every one of them; a key Redis
        failed on is left as it was (the first failure of each step is said once)."""
        room = asyncio.Semaphore(AT_ONCE)

        async def guarded(key: CacheKey) -> None:
            async with room:
                await step(key)

        done = await asyncio.gather(*(guarded(k) for k in keys), return_exceptions=True)
        failed = next((r for r in done if isinstance(r, BaseException)), None)
        if failed is None:
            return
        if not isinstance(failed, REDIS_ERRORS):
            raise failed
        if what not in self._said:
            self._said.add(what)
            log.warning("Cannot %s this warm's batch claims in Redis (%s): other machines may generate its specs too",
                        what, failed)


async def made_in_claimed_batch(locks: Locks, tiers: Tiers, key: CacheKey, wait: bool,
                                accept: Accept | None = None) -> Lookup | None:
    """The entry a batch another machine claimed `key` for makes, once stored (and `accept`ed, as
    Tiers.read); None when no batch claims it, or when the claim ends without an entry (then it is
    generated directly: said once). `wait` False: BatchInFlight instead of waiting."""
    try:
        who = await claimant(locks, key)
    except REDIS_ERRORS:
        return None
    if who is None:
        return None
    where = f"a Message Batch that {who} collects"
    if not wait:
        raise BatchInFlight(f"{key.spec_name} is being generated in {where}; try again later")
    log.log(NOTICE, "IR for %s is being generated in %s; waiting for it", key.spec_name, where)
    answered = time.monotonic()  # when Redis last said the claim stands
    while True:
        await asyncio.sleep(BATCH_WAIT_POLL)
        hit = await tiers.read(key, again=True, accept=accept)
        if hit is not None:
            return hit
        try:
            if await claimant(locks, key) is None:
                break
            answered = time.monotonic()
        except REDIS_ERRORS as exc:  # a blip is no verdict: the claim would have lapsed by now
            if time.monotonic() - answered > CLAIM_TTL_MS / 1000:
                log.warning("Redis has not said for %.0f s whether %s is still claimed (%s): generating it "
                            "directly", CLAIM_TTL_MS / 1000, key.spec_name, exc)
                return await tiers.read(key, again=True, accept=accept)
    hit = await tiers.read(key, again=True, accept=accept)
    if hit is None:
        log.warning("The batch claim on %s ended with no entry: generating it directly", key.spec_name)
    return hit
