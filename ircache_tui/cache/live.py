"""Live key changes: keyspace notifications when the server allows them, polling otherwise.

The embedded server starts without notifications (a pipeline would pay for
events nobody hears); the dashboard turns them on there. On an external
server we use them when `notify-keyspace-events` already covers what we
need, or turn them on when allowed (never in read-only mode); otherwise the
caller polls. A server that restarts forgets a CONFIG SET, so the dashboard
asks again each time Redis comes back. The Redis side is RedisTier's
(`enable_notifications`, `keyspace_events`); this module says what an event
means for an IR key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .keys import CacheKey

if TYPE_CHECKING:
    from .redis import RedisTier


@dataclass(frozen=True, slots=True)
class KeyChange:
    key: CacheKey
    event: str  # "set", "del", "expired", "expire", ...

    @property
    def gone(self) -> bool:
        return self.event in ("del", "expired", "evicted", "rename_from", "move_from")


async def key_changes(redis: "RedisTier", on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[KeyChange]:
    """IR key changes as they happen. Ends (raises) when the connection drops.

    `on_subscribed` runs once the subscription is in place: a caller that
    reloads its view then misses nothing that changed before it listened.
    """
    async with contextlib.aclosing(redis.keyspace_events(on_subscribed)) as events:
        async for redis_key, event in events:
            parsed = redis.keys.cache_key_of(redis_key)
            if parsed is not None:
                yield KeyChange(parsed, event)


@dataclass(slots=True)
class ChangeBatch:
    """The IR keys that changed during one interval: the last change of each, or `overflow`
    when more distinct keys changed than a batch holds (the caller then reloads instead)."""

    changes: dict[str, KeyChange]
    overflow: bool = False


async def coalesced(
    source: AsyncIterator[KeyChange], *, interval: float = 0.1, limit: int = 500
) -> AsyncIterator[ChangeBatch]:
    """Batch `source` into one ChangeBatch per `interval` after activity, in bounded memory.

    A burst of any size becomes a few batches of at most `limit` keys: the
    consumer refreshes them in one round trip, instead of one worker (and one
    connection) per notification. A reader task drains the subscription so
    Redis never buffers for us; the source's error (a dropped connection)
    ends the iteration after the last batch.
    """
    pending: dict[str, KeyChange] = {}
    overflow = False
    ready = asyncio.Event()

    async def read() -> None:
        nonlocal overflow
        async for change in source:
            key = change.key.cache_key
            if key in pending or len(pending) < limit:
                pending[key] = change
            else:
                overflow = True
            ready.set()

    reader = asyncio.create_task(read())
    waiter: asyncio.Task[Literal[True]] | None = None
    try:
        while True:
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not reader.done():
                await asyncio.sleep(interval)  # let the burst gather
            if pending or overflow:
                batch = ChangeBatch(pending, overflow)
                pending, overflow = {}, False
                ready.clear()
                yield batch
            if reader.done():
                reader.result()  # raises the source's error
                return
    finally:
        # cancelled while waiting (the pane closed, a rescan): neither task may outlive us, or
        # asyncio reports "Task was destroyed but it is pending" when the loop closes
        if waiter is not None:
            waiter.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        aclose = getattr(source, "aclose", None)  # the subscription goes now, not when collected
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
