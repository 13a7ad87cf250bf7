"""Every walk over the keyspace and every multi-key delete goes through here.

One place so that Redis Cluster can slot in later: `scan_pages` becomes one
cursor per primary, and `unlink_keys` splits its batch by hash slot (a
multi-key UNLINK across slots fails with CROSSSLOT).

Flush and stats overlap the scanning with the work on each page: a producer
SCANs while a consumer UNLINKs (or asks MEMORY USAGE for) the previous page,
on a second connection. Redis still runs one short command at a time, so a
concurrent client never waits behind more than one page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

Keys = list[bytes]

# Measured in benchmarks/bench_core.py: SCAN COUNT 1000 and UNLINK batches of
# 1000 keep every command well under a millisecond, so a concurrent PING
# never waits long, while 100 (the seed's COUNT) pays ten times the round trips.
SCAN_COUNT = 1000
BATCH = 1000


async def scan_page(client: Any, cursor: int, match: str, count: int = SCAN_COUNT) -> tuple[int, Keys]:
    """One SCAN step: the next cursor (0 when complete) and the keys of this page."""
    next_cursor, keys = await client.scan(cursor, match=match, count=count)
    return int(next_cursor), list(keys)


async def scan_pages(client: Any, match: str, count: int = SCAN_COUNT) -> AsyncIterator[Keys]:
    """Every key matching `match`, a SCAN page at a time (never KEYS)."""
    cursor = 0
    while True:
        cursor, keys = await scan_page(client, cursor, match, count)
        if keys:
            yield keys
        if cursor == 0:
            return


async def unlink_keys(client: Any, keys: Sequence[bytes]) -> int:
    """Delete `keys` with UNLINK (memory is freed off Redis's main thread)."""
    if not keys:
        return 0
    return int(await client.unlink(*keys))


async def memory_usage(client: Any, keys: Sequence[bytes]) -> list[int | None]:
    """MEMORY USAGE of each key, pipelined in one round trip; None for a key gone meanwhile."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return list(await pipe.execute(raise_on_error=False))


async def _overlapped(
    client: Any,
    match: str,
    keep: Callable[[bytes], bool],
    work: Callable[[Keys], Awaitable[None]],
    *,
    count: int,
    batch: int,
    queue_size: int = 4,
) -> None:
    """SCAN on one task and `work` on full batches on another, bounded by a small queue."""
    queue: asyncio.Queue[Keys | None] = asyncio.Queue(maxsize=queue_size)

    async def produce() -> None:
        pending: Keys = []
        try:
            async for page in scan_pages(client, match, count):
                pending.extend(k for k in page if keep(k))
                while len(pending) >= batch:
                    await queue.put(pending[:batch])
                    pending = pending[batch:]
            if pending:
                await queue.put(pending)
        finally:
            await queue.put(None)

    async def consume() -> None:
        while (keys := await queue.get()) is not None:
            await work(keys)

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        group.create_task(consume())


async def scan_unlink(
    client: Any,
    match: str,
    keep: Callable[[bytes], bool],
    *,
    count: int = SCAN_COUNT,
    batch: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """UNLINK every key that SCAN MATCH finds and `keep` accepts; returns how many went."""
    deleted = 0

    async def work(keys: Keys) -> None:
        nonlocal deleted
        deleted += await unlink_keys(client, keys)
        if on_progress is not None:
            on_progress(deleted)

    await _overlapped(client, match, keep, work, count=count, batch=batch)
    return deleted


async def scan_memory(
    client: Any,
    match: str,
    keep: Callable[[bytes], bool],
    *,
    count: int = SCAN_COUNT,
    batch: int = BATCH,
    on_key: Callable[[bytes, int], None],
) -> None:
    """Call `on_key(key, bytes)` for every matching key, sizes from pipelined MEMORY USAGE."""

    async def work(keys: Keys) -> None:
        for key, size in zip(keys, await memory_usage(client, keys)):
            if isinstance(size, int):
                on_key(key, size)

    await _overlapped(client, match, keep, work, count=count, batch=batch)
