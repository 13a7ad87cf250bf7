"""Every walk over the keyspace and every multi-key delete goes through here.

One place so that Redis Cluster can slot in later: `scan_pages` becomes one
cursor per primary, and `unlink_keys` splits its batch by hash slot (a
multi-key UNLINK across slots fails with CROSSSLOT).

Replies are parsed by hiredis (a dependency): redis-py's pure-Python
parser costs several microseconds per key, which made parsing the pages,
not Redis, the bottleneck of a flush. Stats run SCAN and MEMORY USAGE of a
page in one read-only script, with a plain fallback where scripts are refused.

Flush and stats overlap the walk with the work on each page: the producer
only walks (the next SCAN depends on this page's cursor, so it must not wait
for anything else), a second task applies `keep` and batches, and the
consumer UNLINKs on a second connection. Redis runs one short command at a
time, so a concurrent client waits behind at most one SCAN page and one
UNLINK batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

Keys = list[bytes]

# Measured with benchmarks/bench_core.py and a sweep of SCAN COUNT and batch
# size over 250-5000 (100,000 IR keys among 100,000 others; the embedded
# redis-server 6.2 on a slow, shared 2-core VM; a PING loop alongside).
# Redis spends 2-4 µs per key there, so a step of 500 (a scripted SCAN page,
# an UNLINK batch) takes 1-2.5 ms, 1000 takes 3-6 ms and 2000-5000 take
# 8-30 ms, all of which a concurrent client waits for; a stats page (SCAN
# plus MEMORY USAGE) costs about 1.5 times a flush step. The wall time hardly
# moved between 500 and 5000 (Redis does the same work, only cut
# differently) and grew below 500. A flush took 1.5-3 s there, depending on
# the machine's load, against 2.2-3.3 s before the script and 4-7 s with the
# seed's SCAN COUNT 100; Redis's own SCAN and UNLINK time (0.8-1.5 s) and the
# `keep` filter in Python (0.3-0.7 s) are most of it. Two UNLINKs in flight
# and queues of 2-8 pages changed nothing measurable, so there is one
# consumer and a queue of four pages.
SCAN_COUNT = 500
BATCH = 500
_QUEUE_PAGES = 4

# One stats step: a SCAN page and the MEMORY USAGE of each key on it (keys
# gone meanwhile are left out), in one round trip.
_SCAN_MEMORY = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys, sizes = {}, {}
for _, key in ipairs(page[2]) do
  local size = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
  if size then
    keys[#keys + 1] = key
    sizes[#sizes + 1] = size
  end
end
return {page[1], keys, sizes}
"""

async def scan_page(client: Any, cursor: int, match: str, count: int = SCAN_COUNT) -> tuple[int, Keys]:
    """One SCAN step: the next cursor (0 when complete) and the keys of this page."""
    next_cursor, keys = await client.scan(cursor, match=match, count=count)
    return int(next_cursor), list(keys)


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _raise_if_cancelled() -> None:
    """Raise the cancellation that an awaited Redis call returned through.

    On Python 3.11, asyncio.wait_for (which redis-py sends with when a socket
    timeout is set) can swallow a cancellation that lands as the send
    completes (CPython gh-86296, fixed in 3.12). A walk that went on after
    that would wait forever on a queue whose reader the TaskGroup has
    already cancelled, so every loop here checks after each Redis call.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def scan_pages(client: Any, match: str, count: int = SCAN_COUNT) -> AsyncIterator[Keys]:
    """Every key matching `match`, a SCAN page at a time (never KEYS)."""
    cursor = 0
    while True:
        cursor, keys = await scan_page(client, cursor, match, count)
        _raise_if_cancelled()
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
) -> None:
    """Walk, filter into batches, and `work` on each batch: three tasks joined by small queues.

    The end-of-stream marker is sent only when a task finishes normally; on
    an error the TaskGroup cancels the others (a marker put from a `finally`
    could wait forever on a full queue whose reader is gone).
    """
    pages: asyncio.Queue[Keys | None] = asyncio.Queue(maxsize=_QUEUE_PAGES)
    batches: asyncio.Queue[Keys | None] = asyncio.Queue(maxsize=_QUEUE_PAGES)

    async def walk() -> None:
        async for page in scan_pages(client, match, count):
            await pages.put(page)
        await pages.put(None)

    async def select() -> None:
        pending: Keys = []
        while (page := await pages.get()) is not None:
            pending.extend(k for k in page if keep(k))
            while len(pending) >= batch:
                await batches.put(pending[:batch])
                pending = pending[batch:]
        if pending:
            await batches.put(pending)
        await batches.put(None)

    async def consume() -> None:
        while (keys := await batches.get()) is not None:
            await work(keys)
            _raise_if_cancelled()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(walk())
            group.create_task(select())
            group.create_task(consume())
    except BaseExceptionGroup as errors:
        # callers see the error itself (a ConnectionError, say), not a TaskGroup's wrapper
        raise _first_leaf(errors) from None


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
    """Call `on_key(key, bytes)` for every matching key that `keep` accepts, with its MEMORY USAGE.

    Sizes come from a read-only script that runs SCAN and MEMORY USAGE for a
    page in one call (packing a pipeline of a MEMORY USAGE per key is what
    costs most in Python). A server that refuses scripts gets SCAN and
    pipelined MEMORY USAGE, `batch` keys a round trip, from that page on.
    """
    script = client.register_script(_SCAN_MEMORY)
    scripted = True

    async def work(keys: Keys) -> None:
        for key, size in zip(keys, await memory_usage(client, keys)):
            if isinstance(size, int):
                on_key(key, size)

    cursor = 0
    while True:
        if scripted:
            try:
                next_cursor, keys, sizes = await script(args=[cursor, match, count])
            except ResponseError:
                scripted = False
                continue  # the same page again, unscripted
            _raise_if_cancelled()
            cursor = int(next_cursor)
            for key, size in zip(keys, sizes):
                if keep(key):
                    on_key(key, int(size))
        else:
            cursor, page = await scan_page(client, cursor, match, count)
            _raise_if_cancelled()
            kept = [k for k in page if keep(k)]
            for start in range(0, len(kept), batch):
                await work(kept[start:start + batch])
                _raise_if_cancelled()
        if cursor == 0:
            return
