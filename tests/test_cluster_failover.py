"""Redis Cluster failover: a primary SIGKILLed in the middle of a 100,000-key flush.

Its own cluster (3 primaries, a replica each: tests/support/redis_cluster.py),
because the test leaves one node dead. The flush runs as `ircache-tui flush
--yes --json` with REDIS_URL of a primary that is not killed. Once deletions
are under way (the primaries' DBSIZE drops), one primary that still holds IR
keys is SIGKILLed and its replica takes over (`CLUSTER FAILOVER TAKEOVER`).
The flush either follows the new topology and completes (exit 0, the full
count), or stops with one line saying how many keys went (exit 1); a second
flush then finishes the job, and every node is left with exactly the foreign
keys, none lost (the promoted replica had them).

The counts are exact up to what a kill makes unknowable: one UNLINK batch
(walk.BATCH keys) in flight on the killed primary, executed there but its
reply lost; and the deletes replied to but not yet replicated when it died
(then the keys come back on the promoted replica, and the flush deletes and
counts them again): the test measures that lag just before the kill, as it
grows with the machine's load.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

import pytest
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache
from ircache_tui.cache.redis import cluster as cluster_nodes
from ircache_tui.cache.redis import walk
from ircache_tui.cache.errors import FlushIncomplete
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.results import FlushResult
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.foreign import entry_value

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster failover

PREFIX = "ir_cache"
KEYSPACE = KeySpace(PREFIX)
IR_KEYS = 100_000
FOREIGN = 2000


CLUSTER_REPLICAS = 1  # (the cluster fixture: tests/conftest.py)


def ir_keys() -> list[bytes]:
    return [f"{PREFIX}:spec-{i % 97:02d}_{i:08x}".encode() for i in range(IR_KEYS)]


def foreign_keys() -> list[bytes]:
    """Under the prefix but never IR keys, and some outside it: nothing may touch them."""
    kinds = (
        "{p}:spec-01_{i:07x}",        # 7 hex
        "{p}:spec-01_{i:08x}:lock",   # a lock
        "{p}:spec-01_{i:08x}:meta",
        "{p}:.hidden_{i:08x}",        # a leading dot
        "{p}:other/tool_{i:08x}",     # a separator
        "{p}:spec-02_{i:08x}_bak",
        "{p}:spec-03X{i:08x}",
        "other:spec-01_{i:08x}",      # outside the prefix
    )
    return [kinds[i % len(kinds)].format(p=PREFIX, i=i).encode() for i in range(FOREIGN)]


def keys_on(cluster, port: int) -> set[bytes]:
    with cluster.client(port) as c:
        return set(c.scan_iter(count=1000))


def ir_count(keys: set[bytes]) -> int:
    return sum(1 for k in keys if KEYSPACE.belongs(k))


def dbsize(clients) -> int:
    return sum(c.dbsize() for c in clients)


def fill(cluster, url: str, foreign: list[bytes]) -> None:
    cluster.flushall()
    filler = SyncCluster.from_url(url)
    pipe = filler.pipeline(transaction=False)
    for key in ir_keys():
        pipe.set(key, entry_value(), ex=3600)
    for key in foreign:
        pipe.set(key, b"not ours")
    pipe.execute()
    filler.close()
    cluster.wait_replicated()  # the replicas hold every key before the flush starts


def primary_with_replica(cluster) -> tuple[int, int, int]:
    """(a primary that has a live replica, that replica, another primary)."""
    primaries = cluster.primary_ports()
    assert len(primaries) == 3
    for victim in primaries:
        try:
            replica = cluster.replica_of(victim)
        except LookupError:
            continue
        return victim, replica, next(p for p in primaries if p != victim)
    raise AssertionError("no primary with a live replica left")


def only_foreign_left(cluster, foreign: list[bytes]) -> None:
    """Every IR key gone, every foreign key still there (the promoted replica had the killed
    primary's), each on one primary, and the replicas hold what their primaries hold."""
    cluster.wait_replicated()
    held = {p: keys_on(cluster, p) for p in cluster.primary_ports()}
    assert set().union(*held.values()) == set(foreign)
    assert sum(len(k) for k in held.values()) == len(foreign)
    for p in held:
        try:
            replica = cluster.replica_of(p)
        except LookupError:  # a promoted replica has none of its own (its primary is dead)
            assert p in cluster.started_as_replicas
            continue
        assert keys_on(cluster, replica) == held[p]


@pytest.mark.e2e
@pytest.mark.slow
def test_primary_killed_mid_flush(cluster, tmp_path):
    foreign = foreign_keys()
    primaries = cluster.primary_ports()
    victim, replica, survivor = primary_with_replica(cluster)
    fill(cluster, cluster.node_url(cluster.ports.index(survivor)), foreign)

    victim_keys = keys_on(cluster, victim)
    victim_foreign = len(victim_keys) - ir_count(victim_keys)
    assert ir_count(victim_keys) > 20_000 and victim_foreign > 0
    assert keys_on(cluster, replica) == victim_keys
    total = IR_KEYS + FOREIGN

    env = cli_env(cluster.node_url(cluster.ports.index(survivor)), tmp_path / "cache" / "ir")
    clients = [cluster.client(p) for p in [victim, *(p for p in primaries if p != victim)]]
    try:
        assert dbsize(clients) == total
        flush = subprocess.Popen([ENTRY_POINT, "flush", "--yes", "--json"], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while dbsize(clients) > total - 3000:  # deletions under way
            assert flush.poll() is None, ("the flush ended before it was seen deleting", flush.communicate())
            assert time.monotonic() < deadline, "the flush never started deleting"
            time.sleep(0.002)
        # the deletes the replica has not received yet come back with its promotion and are deleted (and
        # counted) again: measured here, the replica first, so that the figure errs on the large side
        with cluster.client(replica) as r:
            lag = r.dbsize()
        left_on_victim = clients[0].dbsize() - victim_foreign
        lag = max(0, lag - (left_on_victim + victim_foreign))
        cluster.kill(victim)
        with cluster.client(replica) as c:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        # the killed primary still had IR keys to delete: its walk was cut short
        assert left_on_victim > 1000, left_on_victim
        out, err = flush.communicate(timeout=60)
    finally:
        for c in clients:
            c.close()

    cluster.wait_ok(time.monotonic() + 30)
    now = cluster.primary_ports()
    assert sorted(now) == sorted([replica, *(p for p in primaries if p != victim)])  # the replica took over
    remaining = sum(ir_count(keys_on(cluster, p)) for p in now)
    gone = IR_KEYS - remaining

    if flush.returncode == 0:  # followed the promotion and finished
        assert remaining == 0, (out, err)
        deleted = json.loads(out)["redis"]
        assert abs(deleted - IR_KEYS) <= walk.BATCH + lag, (deleted, lag, err)
    else:  # stopped: one line saying exactly how many went
        assert flush.returncode == 1, (flush.returncode, out, err)
        # (piped, the progress goes to stderr as "unlinking keys: N" lines every 10,000 keys)
        lines = [line for line in err.strip().splitlines() if not line.startswith("unlinking keys: ")]
        assert len(lines) == 1, err
        assert "deleted before it stopped: " in lines[0] and lines[0].endswith(" Redis keys"), lines[0]
        deleted = int(lines[0].rsplit("deleted before it stopped: ", 1)[1].split()[0].replace(",", ""))
        assert 0 < deleted and abs(deleted - gone) <= walk.BATCH + lag, (deleted, gone, lag, lines[0])

    again = run_cli("flush", "--yes", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"redis": remaining, "foreign_kept": 0}

    only_foreign_left(cluster, foreign)


@pytest.mark.slow
async def test_flush_stops_and_says_what_went_then_finishes_after_the_promotion(cluster, tmp_path, monkeypatch):
    """In-process, the other branch for sure: the killed primary's replica is not promoted within
    the wait, so clear_cache raises FlushIncomplete with what went; the same cache, asked again once
    the replica took over, walks the new primaries and finishes."""
    monkeypatch.setattr(cluster_nodes, "FAILOVER_WAIT", 0.5)  # well inside the cluster's 5 s node timeout
    foreign = foreign_keys()
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    fill(cluster, url, foreign)
    victim_keys = keys_on(cluster, victim)
    assert ir_count(victim_keys) > 20_000

    killed: list[int] = []

    def progress(so_far: int) -> None:
        if so_far >= 3000 and not killed:  # under way everywhere; the victim still has most of its keys
            cluster.kill(victim)
            killed.append(so_far)

    async with IRCache(redis_url=url, cache_dir=tmp_path / "c") as cache:
        with pytest.raises(FlushIncomplete) as stopped:
            await cache.clear_cache(filesystem=False, on_progress=progress)
        assert killed
        deleted = stopped.value.done["redis"]
        assert "deleted before it stopped: " in str(stopped.value)

        with cluster.client(replica) as c:
            c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        cluster.wait_ok(time.monotonic() + 30)
        remaining = sum(ir_count(keys_on(cluster, p)) for p in cluster.primary_ports())
        assert remaining > 20_000  # the victim's walk was cut short, and its replica kept the rest
        assert abs(deleted - (IR_KEYS - remaining)) <= walk.BATCH, (deleted, remaining)

        await asyncio.sleep(cache.redis.health.min_backoff + 0.1)  # past the fast-fail window
        assert await cache.clear_cache(filesystem=False) == FlushResult(redis=remaining)
    only_foreign_left(cluster, foreign)


async def test_stats_follow_a_failover(cluster, tmp_path):
    """The stats walk asked right after a primary died: the dead node's part fails, the walk waits
    for its replica's promotion and runs again over the new primaries, so `stats` gives the whole
    count (not one node short, not an error)."""
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    cluster.flushall()
    keys = ir_keys()[:6000]
    with SyncCluster.from_url(url) as filler:
        pipe = filler.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, entry_value(), ex=3600)
        pipe.execute()
    cluster.wait_replicated()

    async with IRCache(redis_url=url, cache_dir=tmp_path / "c") as cache:
        assert (await cache.get_cache_info()).redis["total_keys"] == len(keys)
        cluster.kill(victim)
        promote = threading.Timer(0.5, lambda: cluster.client(replica).execute_command(
            "CLUSTER", "FAILOVER", "TAKEOVER"))
        promote.start()  # after the walk below found the victim gone
        try:
            info = await cache.get_cache_info()
        finally:
            promote.join()
        assert info.redis["total_keys"] == len(keys), info.redis
        assert info.redis["cluster"] == {"primaries": 3}
        now = sorted(cluster.primary_ports())
        assert replica in now and victim not in now
