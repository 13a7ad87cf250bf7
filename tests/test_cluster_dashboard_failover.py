"""The dashboard over a cluster whose primary fails, or whose slots move: it says so, and rescans.

Its own cluster (3 primaries, a replica each), because the test leaves a node
dead. A primary holding IR keys is SIGKILLed and its replica takes over
(`CLUSTER FAILOVER TAKEOVER`); then slots are moved between the primaries
that are left. Each time the dashboard must say what happened (a warning
notification and a line in the log pane) and rescan from page 1, so that
paging through shows every IR key exactly once, on the primaries there are now.
"""

from __future__ import annotations

import re
import time

import pytest
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache
from ircache_tui.cache.keys import KeySpace
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import Services
from tests.support.generators import CountingGenerator
from tests.support.tui import every_page, scanning, until
from tests.test_cluster_reshard import Mover, busiest_slots

pytestmark = [pytest.mark.server, pytest.mark.cluster, pytest.mark.slow]  # cluster failover

KEYSPACE = KeySpace("ir_cache")
IR_KEYS = 240


CLUSTER_REPLICAS = 1  # (the cluster fixture: tests/conftest.py)


def log_text(app) -> str:
    return "\n".join(line.text for line in app.log_pane.lines)


def slots_said_moved(text: str, flow: str) -> int:
    """How many slots the log pane's resharding sentences say moved along `flow` ("A → B"), summed."""
    pattern = re.compile(r"Cluster resharding: (\d+) slots? changed primary \((.*)\)")
    return sum(int(m[1]) for m in pattern.finditer(text) if m[2] == flow)


async def settled(app, pilot, quiet: float = 1.5) -> None:
    """Until the log pane has had nothing new for `quiet` seconds and no page is loading: the nodes'
    gossip may show the new topology to one node before another, and each change is another rescan."""
    deadline = time.monotonic() + 30
    last, since = log_text(app), time.monotonic()
    while time.monotonic() - since < quiet or scanning(app.keys_pane):
        assert time.monotonic() < deadline, "the dashboard never settled"
        await pilot.pause(0.1)
        if (now := log_text(app)) != last:
            last, since = now, time.monotonic()


async def every_key_by_paging(app, pilot) -> list[str]:
    """From page 1, `n` until the last page: every key shown on the way (a key twice, twice)."""
    pane = app.keys_pane
    await until(pilot, lambda: pane.rows and not scanning(pane), what="a page", timeout=30)
    assert pane._page.number == 1
    return await every_page(pilot, app)


async def test_dashboard_says_a_failover_happened_and_rescans(cluster, tmp_path):
    client = SyncCluster.from_url(cluster.url)
    names = [f"fo-{i % 12:02d}_{i:08x}" for i in range(IR_KEYS)]
    for name in names:
        client.set(f"ir_cache:{name}", b'{"schema_version": 1}')
        client.set(f"ir_cache:{name}:lock", b"not ours")
    cluster.wait_replicated()
    client.close()

    primaries = cluster.primary_ports()
    victim = primaries[1]
    replica = cluster.replica_of(victim)
    survivor = next(p for p in primaries if p != victim)
    url = cluster.node_url(cluster.ports.index(survivor))
    cache = IRCache(redis_url=url, cache_dir=tmp_path / "ir", generator=CountingGenerator(), max_connections=4)
    app = IRCacheApp(Services(cache=cache, watch=False, page_size=50, poll_interval=0.5, stats_interval=0.5,
                              health_interval=0.3))
    async with app.run_test(size=(170, 45)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="first page")
        before = await every_key_by_paging(app, pilot)
        assert sorted(before) == sorted(names)  # each key once, over the three primaries

        cluster.kill(victim)
        with cluster.client(replica) as c:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        cluster.wait_ok(time.monotonic() + 30)

        said = f"Cluster failover: 127.0.0.1:{victim} no longer serves slots; 127.0.0.1:{replica} serves them now"
        await until(pilot, lambda: said in log_text(app), what="the failover said in the log pane", timeout=30)
        assert any(said in str(n.message) and n.severity == "warning" for n in app._notifications)
        await until(pilot, lambda: app.redis_up is True, what="Redis answering again", timeout=30)
        await settled(app, pilot)
        after = await every_key_by_paging(app, pilot)
        assert sorted(after) == sorted(names)  # the promoted replica had them all: each shown once again

        # then a resharding between the primaries that are left
        now = cluster.primary_ports()
        mover = Mover(now, [cluster.client(p) for p in now])
        src = next(i for i, p in enumerate(mover.ports) if p == survivor)
        dst = next(i for i, p in enumerate(mover.ports) if p == replica)
        slots = busiest_slots([f"ir_cache:{n}".encode() for n in names], mover, src, 4)
        for slot in slots:
            mover.move(slot, src, dst)
        flow = f"127.0.0.1:{survivor} → 127.0.0.1:{replica}"
        # the moves take a moment each, so a topology check may see some of them and the next the rest
        await until(pilot, lambda: slots_said_moved(log_text(app), flow) == len(slots),
                    what="the resharding said in the log pane", timeout=30)
        await settled(app, pilot)
        assert slots_said_moved(log_text(app), flow) == 4  # each move said once, not again on later checks
        resharded = await every_key_by_paging(app, pilot)
        assert sorted(resharded) == sorted(names)
        for c in mover.nodes:
            c.close()
