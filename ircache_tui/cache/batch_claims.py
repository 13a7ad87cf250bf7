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

Best effort: a Redis that is down or refuses the commands leaves the run without claims (said once);
the record still guards this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from .batch_record import BATCH_WAIT_POLL
from .errors import BatchInFlight
from .keys import CacheKey
from .machine_lock import whoami
from .redis.lock import Locks
from .results import NOTICE, Lookup
from .tiers import REDIS_ERRORS, Tiers

log = logging.getLogger("ircache")

#: how long a claim outlives its last renewal: a collector that dies frees its specs this soon
CLAIM_TTL_MS = 120_000
#: claims taken, renewed or released at once (each is one round trip)
AT_ONCE = 32


class BatchClaims:
    """One warm's claims, under one token."""

    def __init__(self, locks: Locks, *, ttl_ms: int = CLAIM_TTL_MS) -> None:
        self._locks = locks
        self._ttl_ms = ttl_ms
        self.token = f"{whoami()} {uuid.uuid4().hex}"
        self._held: dict[str, CacheKey] = {}
        self._said = False

    @property
    def held(self) -> int:
        return len(self._held)

    async def claim(self, keys: Iterable[CacheKey]) -> dict[str, str]:
        """Claim `keys`. Returns those another process holds: cache key → who (`pid N on HOST`).
        Without usable claims (Redis down, a refusal) nothing is held elsewhere, as far as we know."""
        elsewhere: dict[str, str] = {}

        async def one(key: CacheKey) -> None:
            if await self._locks.acquire(key, self.token, self._ttl_ms):
                self._held[key.cache_key] = key
            else:
                elsewhere[key.cache_key] = await self._locks.holder(key) or "another process"

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

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[BatchClaims]:
        """Renew every claim held every third of its TTL while the body runs; release them all after."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._ttl_ms / 3000)

                async def one(key: CacheKey) -> None:
                    if not await self._locks.extend(key, self.token, self._ttl_ms):
                        self._held.pop(key.cache_key, None)  # lapsed (we stalled past its TTL): not ours now
                        log.info("The batch claim on %s lapsed; another process may generate it", key.spec_name)

                await self._each(list(self._held.values()), one, "renew")

        renewing = asyncio.ensure_future(renew())
        try:
            yield self
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await self.release()

    async def _each(self, keys: list[CacheKey], step: Callable[[CacheKey], Awaitable[None]], what: str) -> None:
        """Run `step` on every key, AT_ONCE at a time; Redis trouble ends the round, said once."""
        if not keys:
            return
        room = asyncio.Semaphore(AT_ONCE)

        async def guarded(key: CacheKey) -> None:
            async with room:
                await step(key)

        try:
            await asyncio.gather(*(guarded(k) for k in keys))
        except REDIS_ERRORS as exc:
            if not self._said:
                self._said = True
                log.warning("Cannot %s this warm's batch claims in Redis (%s): other machines may generate its specs too",
                            what, exc)


async def made_in_claimed_batch(locks: Locks, tiers: Tiers, key: CacheKey, wait: bool) -> Lookup | None:
    """The entry a batch another machine claimed `key` for makes, once stored; None when no batch
    claims it, or when the claim ends without an entry (then it is generated directly: said once).
    `wait` False: BatchInFlight instead of waiting."""
    try:
        who = await locks.holder(key)
    except REDIS_ERRORS:
        return None
    if who is None:
        return None
    where = f"a Message Batch that {who} collects"
    if not wait:
        raise BatchInFlight(f"{key.spec_name} is being generated in {where}; try again later")
    log.log(NOTICE, "IR for %s is being generated in %s; waiting for it", key.spec_name, where)
    while True:
        await asyncio.sleep(BATCH_WAIT_POLL)
        hit = await tiers.read(key, again=True)
        if hit is not None:
            return hit
        try:
            if not await locks.held(key):
                break
        except REDIS_ERRORS:
            break
    hit = await tiers.read(key, again=True)
    if hit is None:
        log.warning("The batch claim on %s ended with no entry: generating it directly", key.spec_name)
    return hit
