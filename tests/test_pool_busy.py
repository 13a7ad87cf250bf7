"""Our own burst is not an outage (issue 19).

A dashboard bounds its connections (4, per node on a cluster): when all of them are in use, a
command waits for one. It once took the wait's end ("No connection available.") or, on a
cluster, redis-py's immediate MaxConnectionsError for Redis being down: "Redis unavailable"
a dozen times in 35 s after `w`, each flap rescanning the keys pane from page 1. A command now
waits for a free connection; if none comes in time it gets RedisBusy (the caller goes on as if
Redis were down), and Redis stays up. Real servers; the connection is held by a real BLPOP.
"""

from __future__ import annotations

import asyncio

import pytest

from ircache_tui.cache.errors import RedisBusy
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.redis import RedisTier, make_client, node_url
from tests.support.foreign import entry_value

KEY = "shop_0a1b2c3d"


async def hold_every_connection(tier: RedisTier, seconds: int) -> asyncio.Task[object]:
    """A BLPOP in flight on the one connection the tier has to the node that serves KEY."""
    queue = "pool-test:queue"
    if tier.cluster:  # a list on KEY's node: its pool is the one the GET needs
        node = tier.client.get_node_from_key(tier.keys.redis_key(KEY)).name
        queue = next(q for q in (f"pool-test:{i}" for i in range(10_000))
                     if tier.client.get_node_from_key(q).name == node)
    task = asyncio.ensure_future(tier.client.blpop([queue], timeout=seconds))
    while not task.done() and not await _in_blpop(tier):
        await asyncio.sleep(0.01)
    assert not task.done()
    return task


async def _in_blpop(tier: RedisTier) -> bool:
    """Whether the server that serves KEY shows a client blocked in BLPOP (asked on a connection
    of its own)."""
    url = tier.url
    if tier.cluster:
        node = tier.client.get_node_from_key(tier.keys.redis_key(KEY))
        url = node_url(tier.url, node.host, int(node.port))
    admin = make_client(url)
    try:
        return any(c.get("cmd") == "blpop" for c in await admin.client_list())
    finally:
        await admin.aclose()


async def busy_then_free(url: str, *, cluster: bool | None) -> None:
    tier = RedisTier(url, KeySpace(), ttl=60, max_connections=1, socket_timeout=10, pool_wait=0.3,
                     cluster=cluster)
    try:
        await tier.set_raw(KEY, entry_value(10))  # settled, and the topology known on a cluster
        held = await hold_every_connection(tier, 2)
        with pytest.raises(RedisBusy, match="busy"):
            await tier.get_raw(KEY)
        assert not tier.health.down  # not an outage: nobody says "down", nothing is rescanned
        assert await held is None
        assert await tier.get_raw(KEY) == entry_value(10)  # at once: no fast-fail window was opened

        held = await hold_every_connection(tier, 1)
        tier.door.pool_wait = 30.0  # a wait long enough: the command gets the connection when it is free
        if not tier.cluster:
            tier.client.connection_pool.timeout = 30.0  # (a single node's pool waits by itself)
        assert await tier.get_raw(KEY) == entry_value(10)
        assert held.done() and not tier.health.down
    finally:
        await tier.aclose()


@pytest.mark.slow  # (the held connection is held for seconds)
async def test_a_busy_pool_is_not_an_outage(redis_url):
    await busy_then_free(redis_url, cluster=False)


@pytest.mark.server
@pytest.mark.cluster
@pytest.mark.slow
async def test_a_busy_cluster_pool_is_not_an_outage(cluster, nodes):
    await busy_then_free(cluster.url, cluster=True)
