"""Redis Cluster failover before (or while) a command starts: `flush` and `warm` wait for it.

Its own cluster (3 primaries, two replicas each: every test kills a primary
and leaves it dead, and a promoted replica still has a replica for the next
test). A primary is SIGKILLed while its replicas are told not to take over by
themselves (`cluster-replica-no-failover`) and the other nodes to keep
sending its slots' commands to it (`cluster-require-full-coverage no`), so
the failover stays pending however long the machine takes: every node's
topology still names the dead primary. The command meets the dead node
before any walk has started (its first check that Redis answers, the flush's
first look at the topology, warm's existence check or a SET), says that it
is waiting for a failover, and only then is a replica promoted (`CLUSTER
FAILOVER TAKEOVER`):
the command goes on and finishes, every IR key deleted (or every entry
warmed), every foreign key where it was.

Before the fix, each of these stopped at once with `connection refused`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache, cache_key
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.results import FlushResult
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.foreign import fill_cluster
from tests.support.generators import SPEC, CountingGenerator

from .conftest import assert_clean

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster failover

CLUSTER_REPLICAS = 2  # (the cluster fixture: tests/conftest.py)

PREFIX = "ir_cache"
KEYSPACE = KeySpace(PREFIX)
EXAMPLE = Path(__file__).parents[2] / "examples" / "specs" / "petstore-spec.md"


def foreign_keys(n: int = 300) -> list[bytes]:
    """Under the prefix but not entries (and some outside it): nothing may touch them."""
    kinds = ("{p}:svc-01_{i:07x}", "{p}:svc-01_{i:08x}:lock", "{p}:other/tool_{i:08x}", "other:svc-01_{i:08x}")
    return [kinds[i % len(kinds)].format(p=PREFIX, i=i).encode() for i in range(n)]


def keys_on(cluster, port: int) -> set[bytes]:
    with cluster.client(port) as c:
        return set(c.scan_iter(count=1000))


def every_key(cluster) -> set[bytes]:
    """Our own SCAN of every live primary (a promoted replica included)."""
    return set().union(*(keys_on(cluster, p) for p in cluster.primary_ports()))


def owners(url: str, keys: set[bytes]) -> dict[bytes, int]:
    """The port of the primary that serves each key now."""
    with SyncCluster.from_url(url) as client:
        return {key: int(client.get_node_from_key(key).port) for key in keys}


def primary_with_replica(cluster) -> tuple[int, int, int]:
    """(a primary that has a live replica, that replica, another primary)."""
    primaries = cluster.primary_ports()
    for victim in primaries:
        try:
            return victim, cluster.replica_of(victim), next(p for p in primaries if p != victim)
        except LookupError:
            continue
    raise AssertionError("no primary with a live replica left")


def kill_pending(cluster, victim: int) -> None:
    """SIGKILL `victim`; none of its replicas takes over until `promote` says so, and the other
    nodes keep sending its slots' commands to it, however long the machine takes to start the
    command (not a failover of their own after the node timeout, nor CLUSTERDOWN everywhere)."""
    for port in cluster.ports:
        if port != victim and cluster.alive(port):
            info = cluster.replication(port)
            with cluster.client(port) as c:
                c.config_set("cluster-require-full-coverage", "no")
                if info["role"] == "slave" and int(info["master_port"]) == victim:
                    c.config_set("cluster-replica-no-failover", "yes")
    cluster.kill(victim)


def promote(cluster, replica: int) -> None:
    with cluster.client(replica) as c:
        c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")


def promoted(cluster, replica: int) -> None:
    """`replica` is a primary and the cluster ok, its other replicas following it, even when the
    test failed before it promoted it (the next test needs a whole cluster)."""
    if cluster.replication(replica)["role"] != "master":
        promote(cluster, replica)
    deadline = time.monotonic() + 60
    cluster.wait_ok(deadline)
    cluster.wait_replicas_synced(deadline)


class Command:
    """A CLI process whose stderr is read as it comes, line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen([ENTRY_POINT, *args], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.waiting = threading.Event()  # it said it waits for a failover
        self.ended = threading.Event()  # its stderr closed (it exited)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.err.append(line)
            if "waiting up to" in line.lower():
                self.waiting.set()
        self.ended.set()

    def wait_until_waiting(self, timeout: float = 120) -> None:
        """Until the command says it waits for the failover; it must not end first."""
        deadline = time.monotonic() + timeout
        while not self.waiting.is_set():
            assert not self.ended.wait(0.05), ("the command ended before it waited for the failover",
                                               self.process.wait(), "".join(self.err))
            assert time.monotonic() < deadline, ("the command never said it waited", "".join(self.err))

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """(exit status, stdout, stderr), once it ended; neither stream with a secret or a traceback."""
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        assert_clean(out, "".join(self.err))
        return code, out, "".join(self.err)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.e2e
def test_flush_started_while_a_primary_is_dead_waits_for_the_failover(cluster, tmp_path):
    cluster.flushall()
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    ir = [f"{PREFIX}:spec-{i % 13:02d}_{i:08x}".encode() for i in range(6000)]
    foreign = foreign_keys()
    fill_cluster(url, ir, foreign)
    cluster.wait_replicated()  # the replicas hold every key the victim had
    on_victim = keys_on(cluster, victim)
    assert sum(1 for k in on_victim if KEYSPACE.belongs(k)) > 1000  # the victim has a share to flush
    assert keys_on(cluster, replica) == on_victim

    kill_pending(cluster, victim)  # before the command starts: every node still names it a primary
    flush = Command(["flush", "--yes", "--json", "-v"], cli_env(url, tmp_path / "cache" / "ir"))
    try:
        flush.wait_until_waiting()
        promote(cluster, replica)
        code, out, err = flush.finish()
    finally:
        flush.stop()
        promoted(cluster, replica)
    assert code == 0, (out, err)
    assert json.loads(out) == {"redis": len(ir), "foreign_kept": 0}, err
    assert f"127.0.0.1:{victim} refused the connection" in err  # the wait says which node did not answer

    assert replica in cluster.primary_ports() and victim not in cluster.primary_ports()
    assert every_key(cluster) == set(foreign)  # every entry gone, every foreign key still there


@pytest.mark.e2e
def test_warm_started_while_a_primary_is_dead_waits_for_the_failover(cluster, tmp_path):
    cluster.flushall()
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    env = cli_env(url, tmp_path / "cache" / "ir", IR_GENERATOR="offline")
    specs = tmp_path / "specs"
    specs.mkdir()
    text = EXAMPLE.read_text()
    for i in range(30):
        (specs / f"svc-{i:02d}.md").write_text(text + f"\n\n## Notes\n- service {i}\n")
    first = run_cli("warm", str(specs), "--json", env=env)  # every spec generated, on disk and in Redis
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["specs_by_tier"]["generator"] == 30
    emptied = run_cli("flush", "--yes", "--json", env=env)  # Redis only: the files stay
    assert emptied.returncode == 0 and json.loads(emptied.stdout)["redis"] == 30, emptied.stderr
    entries = {KEYSPACE.redis_key(p.stem).encode() for p in (tmp_path / "cache" / "ir").glob("svc-*.json")}
    assert len(entries) == 30
    foreign = foreign_keys()
    fill_cluster(url, [], foreign)
    cluster.wait_replicated()
    assert victim in owners(url, entries).values()  # the dead primary serves some of the entries to warm

    kill_pending(cluster, victim)
    warm = Command(["warm", str(specs), "--json", "-v"], env)
    try:
        warm.wait_until_waiting()
        promote(cluster, replica)
        code, out, err = warm.finish()
    finally:
        warm.stop()
        promoted(cluster, replica)
    assert code == 0, (out, err)
    result = json.loads(out)
    assert (result["warmed"], result["already_in_redis"], result["failed"], result["left"]) == (30, 0, 0, 0), result
    assert result["specs_by_tier"] == {"redis": 30, "filesystem": 0, "generator": 0}, result
    assert result["error"] is None and result["failures"] == []
    assert f"127.0.0.1:{victim} refused the connection" in err

    assert replica in cluster.primary_ports() and victim not in cluster.primary_ports()
    left = every_key(cluster)
    assert entries <= left and set(foreign) <= left
    with SyncCluster.from_url(url) as reader:
        for key in entries:
            assert reader.get(key).startswith(b'{"schema_version":'), key


class _OnLog(logging.Handler):
    """Calls `then` once, at the first record whose message contains `words`."""

    def __init__(self, words: str, then: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.words, self.then, self.seen = words, then, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.seen and self.words in record.getMessage().lower():
            self.seen = True
            self.then()


@pytest.mark.parametrize("when", ["before the existence check", "at the first SET"])
async def test_warm_redis_waits_for_a_primary_that_died_after_open(cluster, tmp_path, ircache_logs, when):
    """The library's warm_redis on an open cache: the primary dies before its pipelined existence
    check, or once the first entry was warmed (the SETs of the entries it served). The promotion
    comes only once the warm said it waits; the failed share goes again: every entry warmed."""
    cluster.flushall()
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    texts = {f"svc-{i:02d}.md": SPEC + f"\n- GET /svc{i} - Service {i}\n" for i in range(40)}
    logger = logging.getLogger("ircache")
    killed: list[int] = []

    def kill_at_first_warmed(event) -> None:
        if event.kind == "warmed" and not killed:
            kill_pending(cluster, victim)
            killed.append(victim)

    waits = _OnLog("waiting up to", lambda: promote(cluster, replica))
    async with IRCache(redis_url=url, cache_dir=tmp_path / "c", generator=CountingGenerator(),
                       count_hits=False) as cache:
        for path, text in texts.items():
            assert (await cache.lookup(text, path)).tier == "generator"
        await cache.clear_cache(filesystem=False)  # Redis emptied; the files stay
        keys = {KEYSPACE.redis_key(cache_key(text, path)).encode() for path, text in texts.items()}
        assert list(owners(url, keys).values()).count(victim) >= 2  # (some after the first SET)
        cluster.wait_replicated()
        if when == "before the existence check":
            kill_pending(cluster, victim)
            killed.append(victim)
        else:
            cache.events.subscribe(kill_at_first_warmed)
        logger.addHandler(waits)
        try:
            result = await cache.warm_redis()
        finally:
            logger.removeHandler(waits)
            promoted(cluster, replica)
    assert killed and waits.seen  # it died during the warm, and the warm waited
    assert (result.warmed, result.failed, result.left, result.error) == (40, 0, 0, None), result
    assert replica in cluster.primary_ports() and victim not in cluster.primary_ports()
    assert keys <= every_key(cluster)


async def test_flush_on_an_open_cache_waits_for_a_primary_that_died(cluster, tmp_path, ircache_logs):
    """The library's clear_cache, the cache open, a primary killed just before: the flush meets it
    before its walk (the topology and slot migrations it asks first), waits for the promotion and
    deletes every entry, counting each once."""
    cluster.flushall()
    victim, replica, survivor = primary_with_replica(cluster)
    url = cluster.node_url(cluster.ports.index(survivor))
    ir = [f"{PREFIX}:spec-{i % 13:02d}_{i:08x}".encode() for i in range(3000)]
    foreign = foreign_keys()
    fill_cluster(url, ir, foreign)
    cluster.wait_replicated()
    logger = logging.getLogger("ircache")
    waits = _OnLog("waiting up to", lambda: promote(cluster, replica))
    async with IRCache(redis_url=url, cache_dir=tmp_path / "c", count_hits=False) as cache:
        assert (await cache.get_cache_info()).redis["total_keys"] == len(ir)
        kill_pending(cluster, victim)
        logger.addHandler(waits)
        try:
            result = await cache.clear_cache(filesystem=False)
        finally:
            logger.removeHandler(waits)
            promoted(cluster, replica)
    assert waits.seen
    assert result == FlushResult(redis=len(ir))
    assert every_key(cluster) == set(foreign)
