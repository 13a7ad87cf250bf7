"""Coalesced key changes over a real subscription: a burst becomes a few bounded batches, and a
listener that is cancelled (the pane closed, a rescan) leaves no task of its own behind."""

from __future__ import annotations

import asyncio

import pytest

from ircache_tui import IRCache
from tests.support.generators import CountingGenerator

pytestmark = pytest.mark.server  # keyspace notifications


@pytest.fixture
async def cache(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as c:
        yield c


async def first_batch(batches, subscribed: asyncio.Event, writes) -> object:
    """Start listening, write once the subscription is in place, and return the first batch."""
    reading = asyncio.ensure_future(anext(batches))
    await asyncio.wait_for(subscribed.wait(), 5)
    writes()
    return await asyncio.wait_for(reading, 5)


async def test_a_burst_is_one_bounded_batch_and_foreign_keys_are_not_in_it(cache, sync_redis):
    subscribed = asyncio.Event()
    batches = cache.key_change_batches(subscribed.set, interval=0.2, limit=50)

    def burst():
        for i in range(30):
            sync_redis.set(f"ir_cache:burst_{i:08x}", b"{}")
        sync_redis.set("ir_cache_other:not_ours", b"x")
        sync_redis.set("session:42", b"x")

    batch = await first_batch(batches, subscribed, burst)
    assert sorted(batch.changes) == sorted(f"burst_{i:08x}" for i in range(30))
    assert not batch.overflow
    await batches.aclose()


async def test_more_keys_than_a_batch_holds_is_an_overflow(cache, sync_redis):
    subscribed = asyncio.Event()
    batches = cache.key_change_batches(subscribed.set, interval=0.2, limit=10)
    batch = await first_batch(batches, subscribed, lambda: [sync_redis.set(f"ir_cache:many_{i:08x}", b"{}")
                                                            for i in range(25)])
    assert batch.overflow and len(batch.changes) == 10  # bounded: the caller reloads instead
    await batches.aclose()


async def test_a_listener_cancelled_while_waiting_leaves_no_task_behind(cache, sync_redis):
    subscribed = asyncio.Event()
    batches = cache.key_change_batches(subscribed.set, interval=0.05)
    await first_batch(batches, subscribed, lambda: sync_redis.set("ir_cache:one_00000001", b"{}"))

    before = asyncio.all_tasks()
    listener = asyncio.ensure_future(anext(batches))  # nothing more is written: it waits
    await asyncio.sleep(0.2)
    listener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listener
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == [], f"tasks left pending: {left}"
    await batches.aclose()
