"""Filling a miss once: concurrent misses for one key generate once, in-process through a shared
task, across the machine's processes through a file lock in the cache dir (machine_lock.py, which
holds while Redis is down), across machines through a Redis lock (SET NX PX + token, released by
compare-and-delete). A waiter says so, and after WAIT_NOTICE_S names the holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..ir.usage import Usage
from .fs_tier import FilesystemTier
from .generate import Generation
from .keys import CacheKey
from .machine_lock import MachineLock, whoami
from .redis import RedisTier
from .renames import Renames
from .results import NOTICE, Lookup
from .tiers import REDIS_ERRORS, Accept, Tiers

log = logging.getLogger("ircache")

T = TypeVar("T")
#: a waiter for another process's generation says so at default verbosity after this long
WAIT_NOTICE_S = 1.5


class Filler:
    def __init__(self, redis: RedisTier, fs: FilesystemTier, tiers: Tiers, generation: Generation, *,
                 lock_ttl_ms: int, lock_poll: float) -> None:
        self._redis = redis
        self._fs = fs
        self._tiers = tiers
        self._generation = generation
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_poll = lock_poll
        self._inflight: dict[tuple[CacheKey, bool], asyncio.Task[Lookup]] = {}
        self._renames = Renames(fs, tiers, generation.events)

    async def cancel(self) -> None:
        """Cancel the generations in flight, and wait for them to release their locks."""
        inflight = list(self._inflight.values())
        for task in inflight:
            task.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)

    async def _single_flight(self, flight: tuple[CacheKey, bool], make: Callable[[], Awaitable[Lookup]]) -> Lookup:
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.ensure_future(make())
            self._inflight[flight] = task
            task.add_done_callback(lambda _t: self._inflight.pop(flight, None))
        # shield: one impatient caller cancelling must not cancel the others' generation
        return await asyncio.shield(task)

    async def fill(
        self, key: CacheKey, digest: str, spec_markdown: str, spec_path: str, force: bool, strict: bool,
        accept: Accept | None = None, *, full: bool = False, spent: Usage | None = None,
    ) -> Lookup:
        """Generate once what the tiers lack: in this process (single flight), on this machine (the
        file lock) and across machines (the Redis lock); a waiter reads what the holder made.
        `accept`: what a re-read may serve (Tiers.read). A miss whose spec text is cached under
        another name is filled from that entry instead (renames.py), unless forced. `full`: generate
        in full, with no incremental attempt, and `spent`: what a batch request that gave no IR cost,
        added to the generation's usage (Generation.generate)."""
        return await self._single_flight(
            (key, force), lambda: self._fill(key, digest, spec_markdown, spec_path, force, strict, accept, full,
                                            spent))

    async def _fill(
        self, key: CacheKey, digest: str, spec_markdown: str, spec_path: str, force: bool, strict: bool,
        accept: Accept | None, full: bool = False, spent: Usage | None = None,
    ) -> Lookup:
        spec_name = key.spec_name
        token = f"{whoami()} {uuid.uuid4().hex}"  # the holder's name travels with the token, for waiters
        machine = MachineLock(self._fs.directory, key.cache_key, poll=self._lock_poll)

        async def machine_holder() -> str | None:
            return machine.holder()

        try:
            waited = await self._waiting(spec_name, machine.acquire, machine_holder)
        except OSError as exc:  # a read-only or broken cache dir: the Redis lock still works
            log.debug("No machine lock for %s (%s): %s", spec_name, machine.path, exc.strerror or exc)
            waited = False
        try:
            if waited:  # another process here generated (or refreshed) it while we waited
                hit = await self._tiers.read(key, again=True, strict=strict, accept=accept)
                if hit is not None:
                    return hit
            locked = await self._acquire_or_wait(key, spec_name, token, force, strict, accept)
            if isinstance(locked, Lookup):
                return locked  # another machine generated it while we waited
            try:
                if not force:
                    # filled between our miss and the lock
                    hit = await self._tiers.read(key, again=True, strict=strict, accept=accept)
                    if hit is not None:
                        return hit
                    renamed = await self._renames.fill(key, digest, spec_path, accept)
                    if renamed is not None:
                        return renamed
                async with self._keep_lock(key, token, locked):
                    return await self._generation.generate(key, digest, spec_markdown, spec_path, store=True,
                                                             strict=strict, full=full, spent=spent)
            finally:
                if locked:
                    with contextlib.suppress(*REDIS_ERRORS):
                        await self._redis.locks.release(key, token)
        finally:
            machine.release()

    async def _waiting(
        self, spec_name: str, wait: Callable[[Callable[[], None]], Awaitable[T]],
        holder: Callable[[], Awaitable[str | None]],
    ) -> T:
        """Run `wait(on_wait)`; once it has waited WAIT_NOTICE_S, say so at default verbosity, naming the holder."""
        notice: asyncio.Task[None] | None = None

        async def say_later() -> None:
            await asyncio.sleep(WAIT_NOTICE_S)
            with contextlib.suppress(*REDIS_ERRORS):
                who = await holder()
                log.log(NOTICE, "Waiting for %s to finish generating %s", who or "another process", spec_name)

        def on_wait() -> None:
            nonlocal notice
            log.info("IR for %s is being generated by another process; waiting", spec_name)
            notice = asyncio.ensure_future(say_later())

        try:
            return await wait(on_wait)
        finally:
            if notice is not None:
                notice.cancel()

    async def _acquire_or_wait(self, key: CacheKey, spec_name: str, token: str, force: bool,
                               strict: bool, accept: Accept | None) -> bool | Lookup:
        """True: we hold the lock. False: Redis is down, go on without one. Lookup: someone else filled it."""
        try:
            return await self._waiting(
                spec_name, lambda on_wait: self._redis_lock(key, spec_name, token, force, strict, on_wait, accept),
                lambda: self._redis.locks.holder(key),
            )
        except REDIS_ERRORS:
            return False  # down, or no usable lock (the tier said why, once)

    async def _redis_lock(
        self, key: CacheKey, spec_name: str, token: str, force: bool, strict: bool, on_wait: Callable[[], None],
        accept: Accept | None,
    ) -> bool | Lookup:
        waited = False
        while True:
            if await self._redis.locks.acquire(key, token, self._lock_ttl_ms):
                if waited and force:
                    hit = await self._tiers.read(key, again=True, strict=strict)  # their refresh is as fresh as ours
                    if hit is not None:
                        with contextlib.suppress(*REDIS_ERRORS):
                            await self._redis.locks.release(key, token)
                        return hit
                return True
            if not waited:
                on_wait()
            waited = True
            while await self._redis.locks.held(key):
                await asyncio.sleep(self._lock_poll)
            if not force:
                hit = await self._tiers.read(key, again=True, strict=strict, accept=accept)
                if hit is not None:
                    return hit

    @contextlib.asynccontextmanager
    async def _keep_lock(self, key: CacheKey, token: str, locked: bool) -> AsyncIterator[None]:
        """Extend the lock while a slow generation runs, so it never expires under us."""
        if not locked:
            yield
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lock_ttl_ms / 3000)
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._redis.locks.extend(key, token, self._lock_ttl_ms)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            # not `suppress(CancelledError): await task`: that would also swallow a cancel of ours
            await asyncio.gather(task, return_exceptions=True)
