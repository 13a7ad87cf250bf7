"""Redis Cluster: the same cache, commands and dashboard over a 3-primary cluster.

One real cluster for the module (tests/support/redis_cluster.py), flushed on
every primary before each test. The product is always given the URL of ONE
node; what it reports is checked against our own SCAN of every node. Each
test that fills the cluster puts IR keys of prefix-sharing specs
(`ecommerce`, `ecommerce_v2`, `ecommerce-api`) and of other specs in every
slot range, plus 2,000 foreign keys under the prefix (and some outside it)
that nothing may touch or count.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache, cache_key
from ircache_tui.cache.errors import ClusterRefused
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.results import DeleteResult
from tests.support.foreign import entry_value
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "ir_cache"
KEYSPACE = KeySpace(PREFIX)
PASSWORD = "Cl7-uster-pw-Q3z"
FOREIGN = 2000
# prefix-sharing spec names: flushing `ecommerce` must leave the other two alone
SPEC_KEYS = {"ecommerce": 1200, "ecommerce_v2": 700, "ecommerce-api": 600}
OTHER_SPECS = 40  # and 10 keys each of `spec-00` ... `spec-39`


# -- the cluster ---------------------------------------------------------------

def every_key(nodes) -> set[bytes]:
    """Our own SCAN of every node: the whole keyspace of the cluster."""
    return {k for n in nodes for k in n.scan_iter(count=1000)}


def ir_keys_per_node(nodes, spec: str | None = None) -> list[int]:
    """Entries per node: keys of our grammar that hold an entry (another tool's values under our names
    are not entries: FOREIGN_NAMED)."""
    return [sum(1 for k in n.scan_iter(count=1000) if KEYSPACE.belongs(k, spec) and k not in FOREIGN_NAMED)
            for n in nodes]


def value(spec: str, i: int) -> bytes:
    """An entry, as far as its first bytes go (the cache writes the envelope compact, schema_version first)."""
    return json.dumps({"schema_version": 1, "spec": spec, "i": i, "pad": "x" * (i % 50)}, separators=(",", ":")).encode()


# another tool's keys named exactly like entries of `ecommerce` and `spec-00`: a string or a hash each,
# never counted, flushed or pruned (fill() writes the `-h` ones as hashes)
FOREIGN_NAMED = {f"{PREFIX}:{spec}_{0xb0000000 + i:08x}".encode() for spec in ("ecommerce", "spec-00") for i in range(150)}


def layout() -> tuple[dict[bytes, bytes], list[bytes]]:
    """(IR key → value, foreign keys): the same keyspace for a cluster and a single server."""
    ir: dict[bytes, bytes] = {}
    for spec, n in SPEC_KEYS.items():
        for i in range(n):
            ir[f"{PREFIX}:{spec}_{i:08x}".encode()] = value(spec, i)
    for s in range(OTHER_SPECS):
        for i in range(10):
            ir[f"{PREFIX}:spec-{s:02d}_{0xa0000000 + i:08x}".encode()] = value(f"spec-{s:02d}", i)
    foreign: list[bytes] = []
    for i in range(FOREIGN):  # under the prefix, never IR keys
        kind = i % 8
        foreign.append({
            0: f"{PREFIX}:ecommerce_{i:07x}",             # 7 hex
            1: f"{PREFIX}:ecommerce_{i:08X}Z",            # trailing junk
            2: f"{PREFIX}:ecommerce_{i:08x}:lock",        # a lock
            3: f"{PREFIX}:ecommerce_{i:08x}:meta",
            4: f"{PREFIX}:ecommerceX{i:08x}",
            5: f"{PREFIX}:.hidden_{i:08x}",                # a leading dot
            6: f"{PREFIX}:other/tool_{i:08x}",             # a separator
            7: f"{PREFIX}:ecommerce_v2_{i:08x}_bak",
        }[kind].encode())
    foreign += [f"other:ecommerce_{i:08x}".encode() for i in range(100)]  # outside the prefix
    foreign += sorted(FOREIGN_NAMED)
    return ir, foreign


def fill(url_or_client, ir: dict[bytes, bytes], foreign: list[bytes]) -> None:
    client = SyncCluster.from_url(url_or_client) if isinstance(url_or_client, str) else url_or_client
    pipe = client.pipeline(transaction=False)
    for key, v in ir.items():
        pipe.set(key, v, ex=3600)
    for key in foreign:
        if key in FOREIGN_NAMED and int(key[-1:], 16) % 2:
            pipe.hset(key, "owner", "team-b")
        else:
            pipe.set(key, b"not ours")
    pipe.execute()
    if isinstance(url_or_client, str):
        client.close()


@pytest.fixture
def filled(cluster, nodes):
    ir, foreign = layout()
    fill(cluster.url, ir, foreign)
    per_node = ir_keys_per_node(nodes)
    assert all(n > 300 for n in per_node), per_node  # every primary holds its share
    return ir, foreign


@pytest.fixture
def env(cluster, tmp_path):
    return cli_env(cluster.url, tmp_path / "cache" / "ir", IR_GENERATOR="offline")


# -- detection and stats --------------------------------------------------------

@pytest.mark.e2e
def test_stats_counts_every_primary_and_matches_a_single_server(filled, nodes, env, tmp_path):
    ir, foreign = filled
    done = run_cli("stats", "--json", env=env)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)["redis"]
    ours = sum(ir_keys_per_node(nodes))  # our own per-node SCAN
    assert ours == len(ir)
    assert stats["total_keys"] == ours
    assert stats["foreign_keys"] == len(FOREIGN_NAMED)  # named like entries, holding another tool's values
    assert stats["cluster"] == {"primaries": 3}
    assert stats["total_size_bytes"] > 0
    assert sorted(stats["specs"]) == sorted({*SPEC_KEYS, *(f"spec-{s:02d}" for s in range(OTHER_SPECS))})
    assert stats["spec_sizes"]["ecommerce"]["keys"] == SPEC_KEYS["ecommerce"]
    assert stats["spec_sizes"]["ecommerce_v2"]["keys"] == SPEC_KEYS["ecommerce_v2"]

    # what one standalone server holding the same keys reports
    with RedisServer() as single:
        client = redis.Redis.from_url(single.url)
        fill(client, ir, foreign)
        client.close()
        alone = run_cli("stats", "--json", env=cli_env(single.url, tmp_path / "single" / "ir"))
    assert alone.returncode == 0, alone.stderr
    single_stats = json.loads(alone.stdout)["redis"]
    assert single_stats["cluster"] is None
    assert single_stats["total_keys"] == stats["total_keys"]
    assert single_stats["foreign_keys"] == stats["foreign_keys"]
    assert single_stats["specs"] == stats["specs"]
    assert {k: v["keys"] for k, v in single_stats["spec_sizes"].items()} == \
        {k: v["keys"] for k, v in stats["spec_sizes"].items()}

    text = run_cli("stats", env=env)
    assert text.returncode == 0, text.stderr
    assert "cluster, 3 primaries" in text.stdout
    assert f"IR keys   {ours:,}" in text.stdout


async def test_library_detects_the_cluster_and_uses_the_server_side_steps(filled, cluster, tmp_path, caplog):
    ir, _ = filled
    caplog.set_level("INFO", logger="ircache")
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        assert cache.redis.cluster
        assert "cluster, 3 primaries" in cache.display_url
        info = await cache.get_cache_info()
        assert info.redis["cluster"] == {"primaries": 3}
        assert info.redis["total_keys"] == len(ir)
        assert await cache.count_keys("ecommerce") == SPEC_KEYS["ecommerce"]
        assert cache.redis._stats_scripted  # Redis 6.2 runs the stats step on each node (keys of that node)
        # the stale walk (scan_keys) sees every key once
        seen: list[str] = []
        async for page in cache.scan_keys():
            seen += [p.cache_key for p in page]
        assert len(seen) == len(set(seen)) == len(ir)
        spec_only: list[str] = []
        async for page in cache.scan_keys("ecommerce"):
            spec_only += [p.cache_key for p in page]
        assert len(spec_only) == SPEC_KEYS["ecommerce"]
    assert "refused the stats script" not in caplog.text


async def test_forced_cluster_mode(filled, cluster, tmp_path):
    ir, _ = filled
    async with IRCache(redis_url=cluster.node_url(2), cache_dir=tmp_path / "c", redis_cluster=True) as cache:
        assert cache.redis.cluster
        assert await cache.count_keys() == len(ir)


@pytest.mark.e2e
def test_no_cluster_refuses_a_cluster_node(cluster, nodes, env):
    for args, extra in ((("stats", "--json"), {"IR_REDIS_CLUSTER": "0"}), (("--no-cluster", "stats"), {})):
        done = run_cli(*args, env={**env, **extra})
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "this Redis is a cluster node; unset IR_REDIS_CLUSTER=0" in lines[0]
        assert "or point at a standalone Redis" in lines[0]
        assert done.stdout == ""
    bad = run_cli("stats", env={**env, "IR_REDIS_CLUSTER": "maybe"})
    assert bad.returncode == 2 and "IR_REDIS_CLUSTER must be 1 or 0" in bad.stderr


async def test_no_cluster_refuses_in_the_library(cluster, nodes, tmp_path):
    cache = IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c", redis_cluster=False)
    with pytest.raises(ClusterRefused, match="this Redis is a cluster node"):
        await cache.open()
    assert not cache.is_open


# -- flushes ------------------------------------------------------------------------

@pytest.mark.e2e
def test_flush_one_spec_is_exact_on_every_node(filled, nodes, env):
    ir, foreign = filled
    before = every_key(nodes)
    ecommerce = {k for k in ir if KEYSPACE.belongs(k, "ecommerce")}
    assert len(ecommerce) == SPEC_KEYS["ecommerce"]
    assert all(n > 0 for n in ir_keys_per_node(nodes, "ecommerce"))  # on every node

    done = run_cli("flush", "ecommerce", "--yes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"redis": SPEC_KEYS["ecommerce"], "foreign_kept": 150}  # ecommerce's namesakes
    assert every_key(nodes) == before - ecommerce  # exactly those, from every node

    rest = len(ir) - len(ecommerce)
    done = run_cli("flush", "--yes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"redis": rest, "foreign_kept": len(FOREIGN_NAMED)}
    assert every_key(nodes) == set(foreign)  # every IR key gone, nothing else


async def test_deletes_never_cross_slots(filled, cluster, nodes, tmp_path):
    ir, foreign = filled
    keys = [k.decode()[len(PREFIX) + 1:] for k in ir if KEYSPACE.belongs(k, "ecommerce_v2")]
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        # exists_many and unlink_many over hundreds of slots on three nodes, counted exactly
        assert await cache.in_redis_many(keys[:500] + ["ecommerce_v2_deadbeef"]) == [True] * 500 + [False]
        rkeys = [KEYSPACE.redis_key(k).encode() for k in keys[:400]]
        assert await cache.redis.unlink_many(rkeys + [b"ir_cache:ecommerce_v2_deadbeef"]) == 400
        named = sorted(k for k in FOREIGN_NAMED if b"ecommerce_" in k)  # named like entries, not entries
        kept: list[int] = []
        assert await cache.redis.unlink_many(named, on_kept=kept.append) == 0 and sum(kept) == len(named)
        assert set(named) <= every_key(nodes)  # still there, on their nodes
        assert await cache.redis.unlink_many(rkeys) == 0
        # prune's delete (entries and their hit counts), in batches
        removed = await cache.delete_entries(keys[400:], [])
        assert removed == DeleteResult(len(keys) - 400, 0)
        assert await cache.count_keys("ecommerce_v2") == 0
        # one entry and its hit counts (two slots): delete_entry
        one = [k.decode()[len(PREFIX) + 1:] for k in ir if KEYSPACE.belongs(k, "ecommerce-api")][0]
        assert await cache.delete_entry(one, "redis")
        assert not await cache.delete_entry(one, "redis")
    left = every_key(nodes)
    assert set(foreign) <= left
    assert not any(KEYSPACE.belongs(k, "ecommerce_v2") for k in left)
    assert sum(1 for k in left if KEYSPACE.belongs(k) and k not in FOREIGN_NAMED) == len(ir) - len(keys) - 1


async def test_lock_hits_and_dashboard_walks(filled, cluster, nodes, tmp_path):
    ir, _ = filled
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c", hit_flush_interval=3600) as cache:
        # the lock: one key, compare-and-delete on that key's node: the server's own command where it
        # has one (DELIFEQ on Valkey 9), else a script with KEYS[1]
        assert await cache.redis.locks.acquire("ecommerce_00000001", "tok-a", 5000)
        assert cache.redis.locks.known_mode in ("native", "script")
        assert not await cache.redis.locks.acquire("ecommerce_00000001", "tok-b", 5000)
        assert await cache.redis.locks.extend("ecommerce_00000001", "tok-a", 5000)
        assert not await cache.redis.locks.release("ecommerce_00000001", "tok-b")
        assert await cache.redis.locks.release("ecommerce_00000001", "tok-a")
        assert not await cache.redis.locks.held("ecommerce_00000001")

        # hit counts: pipelined single-key commands on the entries' and the totals' nodes
        keys = [f"ecommerce_{i:08x}" for i in range(60)]
        for key in keys:
            cache.hits.record("redis", key, None)
        await cache.hits.flush()
        counts = await cache.hit_counts(keys)
        assert [c.redis for c in counts] == [1] * 60
        assert (await cache.hit_totals()).redis == 60
        await cache.clear_cache(filesystem=False, spec_name="ecommerce")  # takes the hit keys with it
        assert not any(k.endswith(b":hits") and b"ecommerce_" in k and b"_v2" not in k for k in every_key(nodes))

        # the key pane's pager walks every primary in turn, each key once
        browser = cache.key_browser(page_size=97)
        page = await browser.first()
        seen = [r.cache_key for r in page.rows]
        done = [page.primaries_done]
        while browser.has_next:
            page = await browser.next()
            seen += [r.cache_key for r in page.rows]
            done.append(page.primaries_done)
        assert page.complete
        # the pane's header counts the primaries walked to their end: 0, 1, 2 along the way, 3 at the end
        assert page.primaries == 3 and done[-1] == 3 and done == sorted(done) and done[0] < 3
        expected = {k.decode()[len(PREFIX) + 1:] for k in ir if not KEYSPACE.belongs(k, "ecommerce")}
        expected |= {k.decode()[len(PREFIX) + 1:] for k in FOREIGN_NAMED}  # shown, as foreign rows
        assert {r.cache_key for r in await browser.rows_for(sorted(expected)) if r.problem == "foreign"} == \
            {k.decode()[len(PREFIX) + 1:] for k in FOREIGN_NAMED}
        assert len(seen) == len(set(seen)) and set(seen) == expected
        prev = await browser.prev()
        assert prev.number == page.number - 1 and len(prev.rows) == 97

        # "largest first" over the whole prefix: the biggest key of each node is found. Each 1.5 times
        # the one before: MEMORY USAGE counts what the allocator gives, and jemalloc (Redis 7.0 on
        # Debian) rounds up to size classes as much as 25% apart, so closer sizes can weigh the same
        big = {f"big-0{i}_{0xc0000000 + i:08x}": 20_000 * 3**i // 2**i for i in range(6)}
        for key, size in big.items():
            await cache.redis.set_raw(key, value("big", size) + b" " * size)
        writer = SyncCluster.from_url(cluster.url)
        for key in sorted(FOREIGN_NAMED)[:3]:  # bigger still, but not entries: never in the ranking
            writer.set(key, b"x" * 400_000)
        writer.close()
        top = await browser.top("largest", 6)
        assert [r.cache_key for r in top.rows] == sorted(big, key=big.get, reverse=True)
        assert await cache.enable_live_updates()  # on every primary (each publishes its own keys' events)
        assert all(c.config_get("notify-keyspace-events")["notify-keyspace-events"] for c in nodes)


# -- the commands, with REDIS_URL of one node ------------------------------------------

@pytest.mark.e2e
@pytest.mark.slow
def test_get_warm_prune_on_the_cluster(cluster, nodes, env, specs):
    foreign = [f"{PREFIX}:foreign_{i:07x}".encode() for i in range(200)]
    fill(cluster.url, {}, foreign)
    spec = specs / "petstore-spec.md"
    first = run_cli("get", str(spec), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["tier"] == "generator"
    again = run_cli("get", str(spec), "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tier"] == "redis"
    old_key = json.loads(again.stdout)["cache_key"]

    assert json.loads(run_cli("flush", "--yes", "--json", env=env).stdout) == {"redis": 1, "foreign_kept": 0}
    warm = run_cli("warm", str(specs), "--json", env=env)
    assert warm.returncode == 0, warm.stderr
    result = json.loads(warm.stdout)
    n_specs = len(list(specs.glob("*.md")))
    assert n_specs == 2 and result["warmed"] == 1 and result["specs_by_tier"]["generator"] == 1, result
    assert sum(ir_keys_per_node(nodes)) == n_specs

    spec.write_text(spec.read_text() + "\n\n## Notes\n- edited\n")
    assert run_cli("get", str(spec), env=env).returncode == 0
    new_key = cache_key(spec.read_text(), str(spec))
    prune = run_cli("prune", str(specs), "--yes", "--json", env=env)
    assert prune.returncode == 0, prune.stderr
    pruned = json.loads(prune.stdout)
    assert pruned["removed"] == {"redis": 1, "filesystem": 1}
    left = every_key(nodes)
    assert KEYSPACE.redis_key(old_key).encode() not in left
    assert KEYSPACE.redis_key(new_key).encode() in left
    assert KEYSPACE.hits_key(old_key).encode() not in left
    assert set(foreign) <= left
    assert sum(ir_keys_per_node(nodes)) == n_specs


@pytest.mark.e2e
@pytest.mark.slow
def test_password_cluster(specs, tmp_path):
    with RedisClusterServers(3, password=PASSWORD) as secure:
        env = cli_env(secure.url, tmp_path / "cache" / "ir", IR_GENERATOR="offline")
        spec = str(specs / "petstore-spec.md")
        outputs = []
        for tier in ("generator", "redis"):
            done = run_cli("get", spec, "--json", env=env)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["tier"] == tier
            outputs.append(done.stdout + done.stderr)
        stats = run_cli("stats", "--json", "-v", env=env)
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["redis"]["total_keys"] == 1
        assert json.loads(stats.stdout)["redis"]["cluster"] == {"primaries": 3}
        flush = run_cli("flush", "--yes", "--json", env=env)
        assert json.loads(flush.stdout) == {"redis": 1, "foreign_kept": 0}
        outputs += [stats.stdout, stats.stderr, flush.stdout, flush.stderr]
        wrong = run_cli("stats", env=cli_env(secure.url.replace(PASSWORD, "nope"), tmp_path / "w"))
        assert wrong.returncode == 1 and "refused the password" in wrong.stderr
        assert not any(PASSWORD in text for text in outputs + [wrong.stderr])


CLUSTER_RW_RULES = ["+ping", "+get", "+set", "+exists", "+getrange", "+scan", "+unlink", "+memory|usage", "+evalsha",
                    "+script|load", "+cluster|slots", "+command"]
NO_SCRIPTS = [r for r in CLUSTER_RW_RULES if r not in ("+evalsha", "+script|load")] + ["+watch", "+multi", "+exec"]


@pytest.mark.parametrize("rules", [CLUSTER_RW_RULES, NO_SCRIPTS], ids=["read-write", "no-scripts"])
@pytest.mark.e2e
def test_acl_user_without_info(cluster, nodes, env, specs, rules, tmp_path):
    """A least-privilege user (the README's read-write rules plus what the cluster client asks:
    +cluster|slots +command), without +info: detection falls back to the CROSSSLOT probe. Without
    scripts, the stats walk runs client-side on every node and the lock uses WATCH on its key's node."""
    user = ["on", f">{PASSWORD}", "resetkeys", "resetchannels", "-@all", *rules, f"~{PREFIX}:*"]
    for n in nodes:  # ACLs are per node
        n.execute_command("ACL", "SETUSER", "ircache-cluster", "reset", *user)
    try:
        url = f"redis://ircache-cluster:{PASSWORD}@127.0.0.1:{cluster.ports[1]}/0"
        user_env = {**env, "REDIS_URL": url}
        for name in ("petstore-spec.md", "ecommerce-api-spec-human.md"):
            done = run_cli("get", str(specs / name), "-v", env=user_env)
            assert done.returncode == 0, done.stderr
            assert "WARNING" not in done.stderr, done.stderr  # the lock worked (script or WATCH)
            assert ("with WATCH/MULTI/EXEC" in done.stderr) == (rules is NO_SCRIPTS), done.stderr
        stats = run_cli("stats", "--json", env=user_env)
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["redis"]["total_keys"] == 2
        assert json.loads(stats.stdout)["redis"]["cluster"] == {"primaries": 3}
        flush = run_cli("flush", "--yes", "--json", env=user_env)
        assert json.loads(flush.stdout) == {"redis": 2, "foreign_kept": 0}, flush.stderr
    finally:
        for n in nodes:
            n.acl_deluser("ircache-cluster")


# -- one generation across processes -------------------------------------------------

_WORKER = textwrap.dedent("""
    import asyncio, sys
    from ircache_tui import IRCache
    from tests.support.generators import SPEC, CountingGenerator

    async def main(url, cache_dir, log):
        gen = CountingGenerator(delay=1.5, log_path=log)
        async with IRCache(redis_url=url, cache_dir=cache_dir, generator=gen) as cache:
            found = await cache.lookup(SPEC, "shop.md")
            print(found.tier, flush=True)

    asyncio.run(main(*sys.argv[1:]))
""")


@pytest.mark.e2e
def test_single_flight_across_processes(cluster, nodes, tmp_path):
    log = tmp_path / "generations.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith(("IR_", "REDIS_", "ANTHROPIC_"))}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, cluster.node_url(i), str(tmp_path / f"dir{i}"), str(log)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)  # each its own node URL and cache dir: only the cluster is shared
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert len(log.read_text().splitlines()) == 1  # one generation
    assert sorted(out.strip() for out, _ in results) == ["generator", "redis"]
    key = KEYSPACE.redis_key(cache_key(SPEC, "shop.md")).encode()
    assert key in every_key(nodes)


# -- the dashboard opens --------------------------------------------------------------

async def test_dashboard_opens_on_the_cluster(filled, cluster, tmp_path):
    from ircache_tui.tui.app import IRCacheApp
    from ircache_tui.tui.services import Services
    from tests.support.tui import static_text, until

    cache = IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c", generator=CountingGenerator())
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.first_page_shown and len(app.keys_pane.rows) > 0, what="first page")
        # (a placeholder "… IR keys" comes first; the URL is the cache's, as it learned it)
        await until(pilot, lambda: "(cluster" in static_text(app, "#status"), what="the cluster named", timeout=30)
        status = static_text(app, "#status")
        assert "cluster, 3 primaries" in status or "(cluster" in status
        assert "live: notifications" in status
        assert " of 3 primaries scanned" in static_text(app, "#keys-footer")


async def test_closing_the_change_stream_after_a_burst_it_did_not_read_ends_every_listener(cluster, nodes, tmp_path):
    """Each primary's listener feeds one bounded queue; a burst the reader has not taken fills it.
    Closing the stream then (a pane closed, a rescan) must end every listener, and drop every
    subscription, before the close returns: not later, and not never."""
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
        assert await cache.enable_live_updates()
        before = asyncio.all_tasks()
        subscribed = asyncio.Event()
        events = cache.key_changes(subscribed.set)
        first = asyncio.ensure_future(anext(events))
        await asyncio.wait_for(subscribed.wait(), 10)
        client = SyncCluster.from_url(cluster.url)
        try:
            client.set("ir_cache:first_00000000", entry_value())
            assert (await asyncio.wait_for(first, 10)).key.cache_key == "first_00000000"
            pipe = client.pipeline()
            for i in range(12_000):  # more events than the queue holds, none of them read
                pipe.set(f"ir_cache:burst-{i % 50:02d}_{i:08x}", entry_value())
            pipe.execute()
            await asyncio.sleep(1.0)  # the listeners fill the queue and wait on it
            await asyncio.wait_for(events.aclose(), 10)
            left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
            assert left == [], f"still running after the close: {left}"
            assert [c.pubsub_numpat() for c in nodes] == [0, 0, 0]  # every primary's subscription went
        finally:
            client.close()
