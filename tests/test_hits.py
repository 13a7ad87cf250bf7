"""Hits counted across processes: batched into Redis without a round trip on the hit path,
summed over processes, kept across restarts, dropped with their entries, never written by a
read-only session, and never taken for IR keys."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.cache.results import FlushResult
from tests.support.generators import SPEC, CountingGenerator

pytestmark = pytest.mark.server  # hit counts kept in this server

ROOT = Path(__file__).resolve().parents[1]
KEY = cache_key(SPEC, "shop.md")


async def test_hits_are_batched_not_sent_per_lookup(redis_url, sync_redis, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=3600) as cache:
        await cache.lookup(SPEC, "shop.md")
        sync_redis.config_resetstat()
        for _ in range(50):
            assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
        stats = sync_redis.info("commandstats")
        assert not [c for c in stats if c.startswith("cmdstat_hincrby")], stats  # nothing sent yet
        assert stats["cmdstat_get"]["calls"] == 50  # one GET a hit: no extra round trip
        totals = await cache.hit_totals()  # the pending batch is counted too
        assert (totals.redis, totals.generator) == (50, 1)
    stored = {k.decode(): v.decode() for k, v in sync_redis.hgetall("ir_cache:stats:hits").items()}
    assert stored["redis"] == "50" and stored["generator"] == "1" and stored["since"]
    per_entry = sync_redis.hgetall(f"ir_cache:{KEY}:hits")
    assert per_entry[b"redis"] == b"50" and float(per_entry[b"last"]) > time.time() - 60
    assert 0 < sync_redis.ttl(f"ir_cache:{KEY}:hits") <= 604800


async def test_counts_are_not_ir_keys_and_go_with_their_entries(redis_url, sync_redis, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=3600) as cache:
        await cache.lookup(SPEC, "shop.md")
        await cache.lookup(SPEC, "shop.md")
        await cache.lookup("# Other\n", "other.md")
        await cache.lookup("# Other\n", "other.md")
        await cache.hits.flush()
        assert await cache.count_keys() == 2  # the stats and hit keys are not entries
        assert sync_redis.exists(f"ir_cache:{KEY}:hits")
        assert await cache.clear_cache(redis=True, filesystem=False, spec_name="shop") == FlushResult(redis=1)
        assert not sync_redis.exists(f"ir_cache:{KEY}:hits")  # flushing a spec drops its counts
        other = cache_key("# Other\n", "other.md")
        assert sync_redis.exists(f"ir_cache:{other}:hits")
        assert (await cache.hit_totals()).redis == 2  # the totals are history: they stay
    assert {k.decode() for k in sync_redis.keys("*")} == {"ir_cache:stats:hits", f"ir_cache:{other}", f"ir_cache:{other}:hits"}


async def test_saved_dollars_and_seconds_add_each_hit_entrys_cost(redis_url, sync_redis, cache_dir):
    from ircache_tui.ir.usage import Usage

    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=3600) as cache:
        first = await cache.lookup(SPEC, "shop.md")
        entry = first.entry.model_copy(update={"usage": Usage(input_tokens=1000, output_tokens=4000,
                                                              duration_s=40.0, cost_usd=0.063)})
        sync_redis.set(f"ir_cache:{KEY}", entry.to_json_bytes())  # as if an LLM had made it
        for _ in range(3):
            await cache.lookup(SPEC, "shop.md")
        totals = await cache.hit_totals()
    assert totals.saved_usd == 0.189 and totals.saved_seconds == 120.0


WORKER = """
import asyncio, sys
from ircache_tui.cache.ircache import IRCache
from tests.support.generators import SPEC, CountingGenerator

async def main(url, cache_dir, n, interval):
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=float(interval)) as cache:
        for i in range(int(n)):
            await cache.lookup(SPEC, "shop.md")
            if i == 9:
                print("flushed-after-10", flush=True)
                await cache.hits.flush()
        print("done", flush=True)
        await asyncio.sleep(3600)  # holds here until killed (or returns when the pipe closes)

asyncio.run(main(*sys.argv[1:]))
"""


def worker(url: str, cache_dir: Path, n: int, interval: float = 3600) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, url, str(cache_dir), str(n), str(interval)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.e2e
def test_two_processes_sum_and_a_sigkill_loses_only_the_last_batch(redis_url, sync_redis, tmp_path):
    cache_dir = tmp_path / "cache"
    a, b = worker(redis_url, cache_dir, 25), worker(redis_url, cache_dir, 40)
    try:
        for proc in (a, b):
            assert proc.stdout.readline() == "flushed-after-10\n", proc.stderr.read()
            assert proc.stdout.readline() == "done\n"
        a.send_signal(signal.SIGKILL)  # its last 15 lookups were never flushed
        b.send_signal(signal.SIGTERM)  # neither were b's 30: a kill -TERM of a library process is a kill too
        a.wait(10)
        b.wait(10)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
    stored = {k.decode(): v.decode() for k, v in sync_redis.hgetall("ir_cache:stats:hits").items()}
    # each process flushed its first 10 lookups (one of them generated, in whichever came first)
    hits = int(stored.get("redis", 0)) + int(stored.get("filesystem", 0)) + int(stored.get("generator", 0))
    assert hits == 20, stored


async def test_two_closed_processes_sum_exactly(redis_url, sync_redis, tmp_path):
    cache_dir = tmp_path / "cache"
    for n in (7, 12):
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
            for _ in range(n):
                await cache.lookup(SPEC, "shop.md")
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        totals = await cache.hit_totals()
        (counts,) = await cache.hit_counts([KEY])
    assert (totals.generator, totals.redis, totals.filesystem) == (1, 18, 0)
    assert (counts.redis, counts.filesystem) == (18, 0)


async def test_a_read_only_session_writes_no_counts(redis_url, sync_redis, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "shop.md")
    before = {k: sync_redis.dump(k) for k in sync_redis.keys("*")}
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, read_only=True) as cache:
        for _ in range(5):
            assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
        assert cache.hits is None
    assert {k: sync_redis.dump(k) for k in sync_redis.keys("*")} == before


async def test_counts_wait_in_memory_while_redis_is_down(cache_dir):
    from tests.support.redis_server import RedisServer

    server = RedisServer().start()
    try:
        async with IRCache(redis_url=server.url, cache_dir=cache_dir, generator=CountingGenerator(),
                           hit_flush_interval=3600) as cache:
            await cache.lookup(SPEC, "shop.md")
            server.stop()
            for _ in range(4):
                assert (await cache.lookup(SPEC, "shop.md")).tier == "filesystem"
            assert await cache.hits.flush() is False  # kept for the next try
            server.start()
            await cache.probe()
            assert await cache.hits.flush() is True
            totals = await cache.hit_totals()
        assert (totals.generator, totals.filesystem) == (1, 4)
    finally:
        server.stop()


@pytest.mark.parametrize("scripts", [True, False], ids=["script", "no-scripts"])
async def test_a_flush_takes_hit_counts_in_the_same_walk(redis_url, sync_redis, cache_dir, scripts):
    """One spec's flush walks the keyspace once: each entry's hit counts go in the same step as
    the entry (it once walked it a second time for `*:hits`), with and without script rights."""
    from tests.support.foreign import entry_value

    pipe = sync_redis.pipeline(transaction=False)
    shop = [f"shop_{i:08x}" for i in range(300)]
    for i, key in enumerate(shop + [f"other{i % 50}_{i:08x}" for i in range(6000)]):
        pipe.set(f"ir_cache:{key}", entry_value(20))
        pipe.hset(f"ir_cache:{key}:hits", mapping={"redis": 1})
    pipe.execute()
    url = redis_url
    if not scripts:  # a user without script rights: GETRANGE, then UNLINK
        sync_redis.acl_setuser("noscripts", enabled=True, passwords=["+pw"], keys=["*"],
                               commands=["+@all", "-evalsha", "-eval", "-script"])
        url = redis_url.replace("unix://", "unix://noscripts:pw@")
    sync_redis.config_resetstat()
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        done = await cache.clear_cache(redis=True, filesystem=False, spec_name="shop")
    assert done == FlushResult(redis=300)
    assert not sync_redis.keys("ir_cache:shop_*")  # entries and hit counts alike
    assert len(sync_redis.keys("ir_cache:other*:hits")) == 6000
    stats = sync_redis.info("commandstats")
    assert ("cmdstat_evalsha" in stats) is scripts  # (the user without script rights is the one used)
    scans = stats["cmdstat_scan"]["calls"]
    one_walk, cursor = 0, 0  # the pages of one walk over what is left (the same size, but for 600 keys)
    while True:
        cursor, _ = sync_redis.scan(cursor, match="ir_cache:shop_????????", count=1000)
        one_walk += 1
        if cursor == 0:
            break
    assert scans <= one_walk + 2, f"{scans} SCANs for a flush; one walk takes {one_walk}"


@pytest.mark.parametrize("rights", ["type", "no-type", "no-scripts"])
async def test_a_flush_of_everything_takes_hit_counts_in_its_walk(redis_url, sync_redis, cache_dir, rights):
    """Flushing everything walks once and takes each entry's hit counts with it, wherever SCAN
    returns the hit key (before its entry, after it, in another batch), and touches nothing that
    is not proved ours: another tool's value under an entry's name keeps its `:hits`, a string under
    a hit key's name stays. With TYPE (proof that a hit key is a hash) the walk's MATCH takes hit keys
    too, and a hit key left by an entry gone earlier goes; without TYPE (the README's ACLs) or
    without scripts, each deleted entry's hit key goes by its name, and such an orphan waits for
    its TTL, as it always did."""
    from tests.support.foreign import entry_value

    pipe = sync_redis.pipeline(transaction=False)
    ours = [f"spec{i % 40}_{i:08x}" for i in range(3000)]
    for key in ours:
        pipe.set(f"ir_cache:{key}", entry_value(20))
        pipe.hset(f"ir_cache:{key}:hits", mapping={"redis": 2})
    for j in range(40):
        pipe.hset(f"ir_cache:gone_{j:08x}:hits", mapping={"redis": 1})  # its entry went before
        pipe.set(f"ir_cache:theirs_{j:08x}", '{"user": 1}')  # another tool's value, named like ours
        pipe.hset(f"ir_cache:theirs_{j:08x}:hits", mapping={"visits": 3})
        pipe.set(f"ir_cache:squat_{j:08x}:hits", "not a hash")
        pipe.set(f"ir_cache:team:{j}", "x")
    pipe.execute()
    url = redis_url
    if rights != "type":
        denied = ["-type"] if rights == "no-type" else ["-evalsha", "-eval", "-script"]
        sync_redis.acl_setuser("limited", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", *denied])
        url = redis_url.replace("unix://", "unix://limited:pw@")
    foreign = {k: sync_redis.dump(k) for k in sync_redis.scan_iter("ir_cache:*")
               if k.startswith((b"ir_cache:theirs_", b"ir_cache:squat_", b"ir_cache:team:"))}
    one_walk, cursor = 0, 0  # the pages of one walk over this keyspace (COUNT as the flush's)
    while True:
        cursor, _ = sync_redis.scan(cursor, match="ir_cache:*", count=300)
        one_walk += 1
        if cursor == 0:
            break
    sync_redis.config_resetstat()
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        done = await cache.clear_cache(redis=True, filesystem=False)
    assert done == FlushResult(redis=3000, foreign_kept=40)  # (`theirs_…`: said, not deleted)
    assert not sync_redis.keys("ir_cache:spec*")  # entries and hit counts alike
    assert {k: sync_redis.dump(k) for k in foreign} == foreign  # every foreign key, as it was
    orphans = len(sync_redis.keys("ir_cache:gone_*"))
    assert orphans == (0 if rights == "type" else 40)
    stats = sync_redis.info("commandstats")
    scans = stats["cmdstat_scan"]["calls"]
    assert scans <= one_walk + 2, f"{scans} SCANs for a flush; one walk takes {one_walk}"
