"""The key pager over a cluster whose primary fails while a walk is half done.

Its own cluster (3 primaries, a replica each), because the test leaves a node dead. The walk's
cursor names its node in the list of primaries the walk started with. When the cluster client
has learned of the failover from another command (not from a walk), the next page must not
scan another node with the dead node's cursor: the walk ends there, the cache says what changed
(the dashboard rescans on that), and a walk from page 1 sees every key exactly once.
"""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache
from ircache_tui.cache.events import CacheEvent
from tests.support.foreign import entry_value

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster failover

KEYS = [f"pf-{i % 20:02d}_{i:08x}" for i in range(3000)]


CLUSTER_REPLICAS = 1  # (the cluster fixture: tests/conftest.py)


def node_of(url: str, key: str) -> int:
    """The port of the primary serving `key` now, asked through `url` (a node still alive)."""
    with SyncCluster.from_url(url) as client:
        return client.get_node_from_key(f"ir_cache:{key}").port


async def every_key(browser) -> list[str]:
    page = await browser.first()
    seen = [row.cache_key for row in page.rows]
    while browser.has_next:
        seen += [row.cache_key for row in (await browser.next()).rows]
    return seen


async def test_a_walk_half_done_when_its_primary_fails_ends_and_says_so(cluster, tmp_path):
    with SyncCluster.from_url(cluster.url) as filler:
        pipe = filler.pipeline(transaction=False)
        for key in KEYS:
            pipe.set(f"ir_cache:{key}", entry_value(), ex=3600)
        pipe.execute()
    cluster.wait_replicated()
    primaries = sorted(cluster.primary_ports())
    victim = primaries[0]  # the walk starts on the first primary by host:port
    replica = cluster.replica_of(victim)
    survivor = primaries[1]
    url = cluster.node_url(cluster.ports.index(survivor))
    on_victim = next(k for k in KEYS if node_of(url, k) == victim)

    async with IRCache(redis_url=url, cache_dir=tmp_path / "c") as cache:
        said: list[CacheEvent] = []
        cache.events.subscribe(lambda e: said.append(e) if e.kind == "topology" else None)
        browser = cache.key_browser(page_size=50)
        first = await browser.first()
        assert len(first.rows) == 50 and browser.has_next
        assert {node_of(url, r.cache_key) for r in first.rows} == {victim}  # mid-way through it

        cluster.kill(victim)
        with cluster.client(replica) as c:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        cluster.wait_ok(time.monotonic() + 30)
        assert await cache.in_redis(on_victim)  # a plain command: the cluster client learns the new primary

        page = await browser.next()
        # the walk ended: no key read with the dead cursor from another node. The page may still show
        # what the first SCAN step returned beyond page 1 (the carry), read before the failover
        assert not browser.has_next
        assert {node_of(url, row.cache_key) for row in page.rows} <= {replica}, page.rows
        assert [e.detail for e in said] == [
            f"Cluster failover: 127.0.0.1:{victim} no longer serves slots; 127.0.0.1:{replica} serves them now"]

        seen = await every_key(cache.key_browser(page_size=200))
        assert sorted(seen) == sorted(KEYS)  # from page 1 again: each key once, on the primaries there are now
