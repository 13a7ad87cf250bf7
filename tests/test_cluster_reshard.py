"""Redis Cluster resharding: slots moved between primaries while a flush walks them.

Its own 3-primary cluster (tests/support/redis_cluster.py), because the tests
move slots. A slot is moved the way `redis-cli --cluster reshard` moves it:
`CLUSTER SETSLOT <slot> IMPORTING` on the target, `MIGRATING` on the source,
`CLUSTER GETKEYSINSLOT` + `MIGRATE ... KEYS` in small batches, then
`SETSLOT <slot> NODE <target>` on every primary.

While a slot is migrating its keys live on two nodes, and a key the target
holds answers only to a client that says ASKING; a key carried from a node the
flush has not walked yet to one it has already walked is behind the cursor.
The flush must delete every IR key it can reach (rerouting what a node no
longer serves through the cluster client), walk again once the resharding is
over, and say so in one line when it is still under way; never touch a
foreign key (MIGRATE moves those too: every one must still exist somewhere).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster as SyncCluster
from redis.crc import key_slot

from ircache_tui import IRCache
from ircache_tui.cache.redis import cluster as cluster_nodes
from ircache_tui.cache.redis import walk
from ircache_tui.cache.errors import FlushIncomplete
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.results import FlushResult
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import fill_cluster

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster resharding (MIGRATE, ASK, MOVED)

PREFIX = "ir_cache"
KEYSPACE = KeySpace(PREFIX)


def layout(n_ir: int, n_foreign: int) -> tuple[list[bytes], list[bytes]]:
    ir = [f"{PREFIX}:spec-{i % 31:02d}_{i:08x}".encode() for i in range(n_ir)]
    foreign = [
        (f"{PREFIX}:spec-01_{i:08x}:lock", f"{PREFIX}:spec-01_{i:07x}", f"other:spec-01_{i:08x}")[i % 3].encode()
        for i in range(n_foreign)
    ]
    return ir, foreign


def fill(cluster, ir: list[bytes], foreign: list[bytes]) -> None:
    fill_cluster(cluster.url, ir, foreign)


def all_keys(nodes) -> list[bytes]:
    """Every key on every node (a key mid-migration may briefly be on two: a list, not a set)."""
    return [k for n in nodes for k in n.scan_iter(count=1000)]


class Mover:
    """Moves slots between primaries as redis-cli --cluster reshard does."""

    def __init__(self, ports: list[int], nodes) -> None:
        """`nodes[i]`: a client of the node on `ports[i]` (primaries only, or every node)."""
        self.nodes = nodes
        self.ports = ports
        self.ids = [n.execute_command("CLUSTER", "MYID") for n in nodes]
        self.ids = [i.decode() if isinstance(i, bytes) else i for i in self.ids]

    def owner(self, slot: int) -> int:
        for start, end, primary, *_ in self.nodes[0].execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                return self.ports.index(int(primary[1]))
        raise AssertionError(f"slot {slot} has no owner")

    def begin(self, slot: int, src: int, dst: int) -> None:
        self.nodes[dst].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[src])
        self.nodes[src].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[dst])

    def carry(self, slot: int, src: int, dst: int, limit: int | None = None, batch: int = 5,
              pause: float = 0.0) -> int:
        """MIGRATE up to `limit` keys of `slot` from src to dst, `batch` at a time; how many."""
        moved = 0
        while limit is None or moved < limit:
            n = batch if limit is None else min(batch, limit - moved)
            keys = self.nodes[src].execute_command("CLUSTER", "GETKEYSINSLOT", slot, n)
            if not keys:
                break
            self.nodes[src].execute_command("MIGRATE", "127.0.0.1", self.ports[dst], "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if pause:
                time.sleep(pause)
        return moved

    def finish(self, slot: int, dst: int) -> None:
        for n in (self.nodes[dst], *(n for i, n in enumerate(self.nodes) if i != dst)):
            n.execute_command("CLUSTER", "SETSLOT", slot, "NODE", self.ids[dst])

    def complete(self, slots: list[int], src: int, dst: int) -> None:
        """Carry what is left of each slot's keys and give it to dst: the migration ends."""
        for slot in slots:
            self.carry(slot, src, dst)
            self.finish(slot, dst)

    def leave_half_carried(self, slots: list[int], src: int, dst: int) -> None:
        """Begin moving each slot and carry half its keys (at least one): a migration under way."""
        for slot in slots:
            self.begin(slot, src, dst)
            held = self.nodes[src].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            assert self.carry(slot, src, dst, limit=max(1, held // 2)) >= 1

    def move(self, slot: int, src: int, dst: int, pause: float = 0.0) -> None:
        self.begin(slot, src, dst)
        self.carry(slot, src, dst, pause=pause)
        self.finish(slot, dst)


def busiest_slots(keys: list[bytes], mover: Mover, node: int, n: int) -> list[int]:
    """The `n` slots of `node` that hold the most of `keys`."""
    counts: dict[int, int] = {}
    for k in keys:
        counts[key_slot(k)] = counts.get(key_slot(k), 0) + 1
    mine = [s for s in sorted(counts, key=counts.get, reverse=True) if mover.owner(s) == node]
    return mine[:n]


@pytest.mark.e2e
@pytest.mark.slow
async def test_flush_during_a_migration_that_does_not_end(cluster, nodes, tmp_path, monkeypatch):
    """Three slots half carried from one primary to another, and left so. Every IR key still goes
    (the ones the target holds need ASKING: rerouted through the cluster client), the flush says in
    one line that a resharding is under way, and once it is over a second flush finds nothing."""
    monkeypatch.setattr(cluster_nodes, "RESHARD_WAIT", 1.0)
    ir, foreign = layout(6000, 900)
    fill(cluster, ir, foreign)
    mover = Mover(cluster.ports, nodes)
    src, dst = 0, 1
    slots = busiest_slots(ir, mover, src, 3)
    mover.leave_half_carried(slots, src, dst)
    on_target = [k for k in nodes[dst].scan_iter(count=1000) if key_slot(k) in slots and KEYSPACE.belongs(k)]
    assert on_target, "the target node holds some IR keys of the migrating slots"

    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        assert cache.redis.cluster
        with pytest.raises(FlushIncomplete) as stopped:
            await cache.clear_cache(filesystem=False)
    message = str(stopped.value)
    assert "a resharding is under way" in message and "run it again when it is done" in message, message
    assert f"from 127.0.0.1:{cluster.ports[src]}" in message, message
    for slot in slots:
        assert str(slot) in message, message
    assert "\n" not in message
    assert stopped.value.done == {"redis": len(ir)}  # each went exactly once, and was counted once
    left = all_keys(nodes)
    assert not [k for k in left if KEYSPACE.belongs(k)]
    assert sorted(set(left)) == sorted(foreign)  # every foreign key, on one node or another

    # the CLI says the same in one line, exit 1 (after the default RESHARD_WAIT: it is another process)
    fill(cluster, ir[:50], [])
    done = run_cli("flush", "--yes", env=cli_env(cluster.url, tmp_path / "cli"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "a resharding is under way" in done.stderr, done.stderr
    assert not [k for k in all_keys(nodes) if KEYSPACE.belongs(k)]

    mover.complete(slots, src, dst)  # the resharding ends: then a flush completes, and has nothing left to do
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        assert await cache.clear_cache(filesystem=False) == FlushResult(redis=0)
    assert sorted(set(all_keys(nodes))) == sorted(foreign)


@pytest.mark.slow
async def test_flush_follows_a_resharding_that_runs_through_it(cluster, nodes, tmp_path, caplog):
    """Slots move one after another, keys a few at a time, from before the flush starts until after
    its first walk ends. The flush sees it, walks again once the resharding is over, and completes:
    every IR key went, counted once; every foreign key is still somewhere."""
    ir, foreign = layout(20_000, 2000)
    fill(cluster, ir, foreign)
    mover = Mover(cluster.ports, nodes)
    src, dst = 2, 0
    slots = busiest_slots(ir + foreign, mover, src, 120)
    started, failures = threading.Event(), []

    def reshard() -> None:
        try:
            for i, slot in enumerate(slots):
                mover.move(slot, src, dst, pause=0.002)
                started.set()
        except Exception as exc:  # noqa: BLE001  (reported by the test below)
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=reshard)
    thread.start()
    try:
        assert started.wait(30)
        caplog.set_level(logging.INFO, logger="ircache")
        async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
            walk_started = time.monotonic()
            result = await cache.clear_cache(filesystem=False)
            first_walks_done = time.monotonic() - walk_started
    finally:
        thread.join(60)
    assert not failures, failures
    assert thread.is_alive() is False
    assert "Slots changed hands during the flush (a resharding or a failover): walking every primary again" in caplog.text
    assert result == FlushResult(redis=len(ir)), (result, first_walks_done)
    left = all_keys(nodes)
    assert not [k for k in left if KEYSPACE.belongs(k)]
    assert sorted(set(left)) == sorted(foreign)
    for slot in slots:
        assert mover.owner(slot) == dst


@pytest.mark.slow
async def test_a_key_the_node_no_longer_serves_is_rerouted(cluster, nodes, tmp_path):
    """The per-node delete of keys whose slot moved after the node's SCAN returned them: the node
    refuses them (MOVED), and they go through the cluster client instead, counted once."""
    src, dst = 1, 2
    stale, slot = moved_after_scan(cluster, nodes, src, dst)

    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        tier = cache.redis
        node = next(c for c in await tier.nodes.primaries(refresh=True)
                    if c.connection_pool.connection_kwargs["port"] == cluster.ports[src])
        deleted = await walk.unlink_keys(node, stale, reroute=tier.nodes.reroute)
    assert deleted == len(stale)
    assert not [k for k in all_keys(nodes) if k in set(stale)]
    with redis.Redis(port=cluster.ports[dst]) as target:
        assert not [k for k in target.scan_iter(count=1000) if key_slot(k) == slot and KEYSPACE.belongs(k)]


def readme_cluster_user() -> list[str]:
    """The README's read-write cluster user, rule for rule (its `ACL SETUSER ircache-rw` line
    under "Least privilege on a cluster")."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("ACL SETUSER ircache-rw ") and "+cluster|slots" in ln)
    return line.split()[3:]


def moved_after_scan(cluster, nodes, src: int, dst: int) -> tuple[list[bytes], int]:
    """3,000 IR keys; src's IR keys as its SCAN returns them now, then its busiest slot moved to
    dst: (those keys, now partly served elsewhere; the slot)."""
    ir, _ = layout(3000, 0)
    fill(cluster, ir, [])
    mover = Mover(cluster.ports, nodes)
    slot = busiest_slots(ir, mover, src, 1)[0]
    stale = [k for k in nodes[src].scan_iter(count=1000) if KEYSPACE.belongs(k)]
    assert any(key_slot(k) == slot for k in stale)
    mover.move(slot, src, dst)  # the slot (and its keys) now lives on dst
    return stale, slot


@dataclass
class Migration:
    ir: list[bytes]
    foreign: list[bytes]
    slots: list[int]
    src: int
    dst: int


@contextlib.contextmanager
def migration_left_half_done(cluster, nodes, src: int = 1, dst: int = 0) -> Iterator[Migration]:
    """3,000 IR keys and 300 foreign ones; src's two busiest slots half carried to dst, and left so
    until the block ends (then the migration completes)."""
    ir, foreign = layout(3000, 300)
    fill(cluster, ir, foreign)
    mover = Mover(cluster.ports, nodes)
    slots = busiest_slots(ir, mover, src, 2)
    mover.leave_half_carried(slots, src, dst)
    try:
        yield Migration(ir, foreign, slots, src, dst)
    finally:
        mover.complete(slots, src, dst)


@contextlib.contextmanager
def acl_user(nodes, name: str, password: str, rules: list[str]) -> Iterator[str]:
    """`name` with these rules (`>PASSWORD` becomes `password`) on every node (ACLs are per node);
    yields the user's URL part (`name:password`), and deletes the user after."""
    rules = [">" + password if r == ">PASSWORD" else r for r in rules]
    for n in nodes:
        n.execute_command("ACL", "SETUSER", name, "reset", *rules)
    try:
        yield f"{name}:{password}"
    finally:
        for n in nodes:
            n.acl_deluser(name)


@pytest.mark.parametrize("may_see_migrations", [True, False], ids=["readme-user", "without-cluster-nodes"])
@pytest.mark.slow
async def test_least_privilege_user_during_a_migration(cluster, nodes, tmp_path, monkeypatch, may_see_migrations):
    """The README's cluster user deletes the keys a migrating slot holds on both primaries (the
    reroute follows ASK) and sees the migration; without +cluster|nodes the flush cannot see a
    migration still under way, and completes, as the README says."""
    monkeypatch.setattr(cluster_nodes, "RESHARD_WAIT", 0.5)
    rules = readme_cluster_user()
    assert rules[0] == "on" and rules[1] == ">PASSWORD" and "+cluster|nodes" in rules
    if not may_see_migrations:
        rules.remove("+cluster|nodes")
    with acl_user(nodes, "ircache-rw", "Re-shard-pw-7Kq", rules) as user, \
            migration_left_half_done(cluster, nodes) as moving:
        async with IRCache(redis_url=f"redis://{user}@127.0.0.1:{cluster.ports[2]}/0", cache_dir=tmp_path / "c") as cache:
            assert cache.redis.cluster
            if may_see_migrations:
                with pytest.raises(FlushIncomplete, match="a resharding is under way") as stopped:
                    await cache.clear_cache(filesystem=False)
                deleted = stopped.value.done["redis"]
            else:
                deleted = (await cache.clear_cache(filesystem=False)).redis
    assert deleted == len(moving.ir)
    left = all_keys(nodes)
    assert not [k for k in left if KEYSPACE.belongs(k)]
    assert sorted(set(left)) == sorted(moving.foreign)


async def test_without_scripts_a_moved_key_is_rerouted_too(cluster, nodes, tmp_path):
    """A user without script rights deletes one UNLINK per slot: the slot that moved answers MOVED,
    and its keys go through the cluster client; the others are deleted where they are."""
    rules = [r for r in readme_cluster_user() if r not in ("+evalsha", "+script|load")]
    src = 0
    stale, _ = moved_after_scan(cluster, nodes, src, 2)
    with acl_user(nodes, "ircache-noscripts", "No-scr1pts-pw", rules) as user:
        async with IRCache(redis_url=f"redis://{user}@127.0.0.1:{cluster.ports[1]}/0",
                           cache_dir=tmp_path / "c") as cache:
            tier = cache.redis
            node = next(c for c in await tier.nodes.primaries(refresh=True)
                        if c.connection_pool.connection_kwargs["port"] == cluster.ports[src])
            deleted = await walk.unlink_keys(node, stale, reroute=tier.nodes.reroute)
            assert walk._SCRIPTS[node]["unlink_each"] is False  # refused (NOPERM): the per-slot pipeline
    assert deleted == len(stale)
    assert not set(stale) & set(all_keys(nodes))


async def first_primary_filled(cluster, nodes, tier) -> tuple[object, int, list[bytes]]:
    """2,000 IR keys over the cluster; the tier's client of its first primary, that primary's port,
    and the IR keys it holds."""
    fill(cluster, layout(2000, 0)[0], [])
    node = (await tier.nodes.primaries(refresh=True))[0]
    port = node.connection_pool.connection_kwargs["port"]
    return node, port, [k for k in nodes[cluster.ports.index(port)].scan_iter(count=1000) if KEYSPACE.belongs(k)]


async def test_a_node_that_lost_its_scripts_loads_them_again(cluster, nodes, tmp_path):
    """SCRIPT FLUSH (a restart, a promoted replica) between two batches: NOSCRIPT, the script is
    loaded again, and the node keeps deleting with it rather than falling back for good."""
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        tier = cache.redis
        node, _, mine = await first_primary_filled(cluster, nodes, tier)
        first, rest = mine[:100], mine[100:]
        assert await walk.unlink_keys(node, first, reroute=tier.nodes.reroute) == len(first)
        sha = walk._SCRIPTS[node]["unlink_each"]
        assert isinstance(sha, str)
        await node.script_flush()
        assert await walk.unlink_keys(node, rest, reroute=tier.nodes.reroute) == len(rest)
        assert walk._SCRIPTS[node]["unlink_each"] == sha  # loaded again, not given up on
    assert not set(mine) & set(all_keys(nodes))


# a script that keeps its node busy for `ARGV[1]` microseconds (TIME is allowed: effects replication)
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
    t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start > tonumber(ARGV[1])
return 1
"""


@contextlib.contextmanager
def busy_for_a_while(admin, port: int) -> Iterator[None]:
    """The node runs another client's script for 1.5 s and answers BUSY meanwhile (past 20 ms): the
    block starts once it does."""
    old_limit = admin.config_get("lua-time-limit")["lua-time-limit"]
    admin.config_set("lua-time-limit", 20)
    busy_client = redis.Redis(port=port)
    busy = threading.Thread(target=busy_client.eval, args=(BUSY_SCRIPT, 0, 1_500_000))
    busy.start()
    try:
        with redis.Redis(port=port) as probe:  # until the node says so (the thread may start late)
            deadline = time.monotonic() + 5
            while True:
                try:
                    probe.ping()
                except redis.exceptions.ResponseError as exc:
                    if str(exc).startswith("BUSY"):
                        break
                    raise
                assert time.monotonic() < deadline, "the node never got busy"
                time.sleep(0.01)
        yield
    finally:
        busy.join()
        busy_client.close()
        admin.config_set("lua-time-limit", old_limit)


@pytest.mark.slow
async def test_a_node_busy_with_another_script_is_not_taken_for_one_that_refuses_scripts(cluster, nodes, tmp_path):
    """Another client's long script makes a node answer BUSY, to the script's load and to its call.
    The delete fails in one line each time, and the next one, once the node is free, deletes with
    the script again (BUSY says nothing of whether scripts are allowed)."""
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        tier = cache.redis
        node, port, mine = await first_primary_filled(cluster, nodes, tier)
        admin = nodes[cluster.ports.index(port)]
        walk._SCRIPTS.get(node, {}).pop("unlink_each", None)  # not loaded yet: the load meets BUSY first
        with busy_for_a_while(admin, port):
            with pytest.raises(redis.exceptions.ResponseError, match="^BUSY"):
                await walk.unlink_keys(node, mine[:100], reroute=tier.nodes.reroute)
        assert walk._SCRIPTS.get(node, {}).get("unlink_each") is None  # not taken for a refusal
        assert await walk.unlink_keys(node, mine[:100], reroute=tier.nodes.reroute) == 100
        sha = walk._SCRIPTS[node]["unlink_each"]
        assert isinstance(sha, str)

        with busy_for_a_while(admin, port):  # loaded now: the call meets BUSY
            with pytest.raises(redis.exceptions.ResponseError, match="^BUSY"):
                await walk.unlink_keys(node, mine[100:200], reroute=tier.nodes.reroute)
        assert walk._SCRIPTS[node]["unlink_each"] == sha
        admin.config_resetstat()
        assert await walk.unlink_keys(node, mine[100:], reroute=tier.nodes.reroute) == len(mine) - 100
        assert admin.info("commandstats")["cmdstat_evalsha"]["calls"] == 1  # the script, not per-slot UNLINKs
    assert not set(mine) & set(all_keys(nodes))


async def test_single_key_commands_follow_a_slot_that_moved_since_the_last_walk(cluster, nodes, tmp_path):
    """The dashboard's per-key commands (exists, details, hit counts, delete) go pipelined per node
    from the slot map the cache last asked. A slot moved since: its commands answer MOVED on the old
    owner, and go again through the cluster client instead of failing the page or the delete."""
    ir, _ = layout(600, 0)
    fill(cluster, ir, [])
    mover = Mover(cluster.ports, nodes)
    src, dst = 0, 1
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        assert await cache.count_keys() == len(ir)  # the topology, as it is before the move
        slot = busiest_slots(ir, mover, src, 1)[0]
        moved = sorted(k.decode().split(":", 1)[1] for k in ir if key_slot(k) == slot)
        others = sorted(k.decode().split(":", 1)[1] for k in ir if key_slot(k) != slot)[:20]
        mover.move(slot, src, dst)

        assert await cache.in_redis_many(moved + others) == [True] * (len(moved) + len(others))
        counts = await cache.hit_counts(moved)
        assert [c.redis for c in counts] == [0] * len(moved)
        page = await cache.key_browser(page_size=1000).first()
        assert {row.cache_key for row in page.rows} >= set(moved)
        assert all(row.ttl > 0 and row.memory for row in page.rows if row.cache_key in moved)
        assert await cache.delete_entry(moved[0], "redis") is True
    assert not [k for k in all_keys(nodes) if k == f"{PREFIX}:{moved[0]}".encode()]
    assert len([k for k in all_keys(nodes) if KEYSPACE.belongs(k)]) == len(ir) - 1


@pytest.mark.slow
async def test_a_user_who_may_not_follow_ask_deletes_the_rest_and_says_what_it_left(cluster, nodes, tmp_path):
    """Without +asking the keys a migrating slot already carried to its target cannot be deleted.
    The flush deletes every other IR key, then says in one line how many it left, the rule that
    would delete them, and exactly how many went."""
    # (without +cluster|nodes too: else the migration left under way is said as well, as above)
    rules = [r for r in readme_cluster_user() if r not in ("+asking", "+cluster|nodes")]
    with acl_user(nodes, "ircache-rw", "No-asking-pw-3Jd", rules) as user, \
            migration_left_half_done(cluster, nodes) as moving:
        carried = sorted(k for k in nodes[moving.dst].scan_iter(count=1000)
                         if KEYSPACE.belongs(k) and key_slot(k) in moving.slots)
        assert carried
        async with IRCache(redis_url=f"redis://{user}@127.0.0.1:{cluster.ports[2]}/0", cache_dir=tmp_path / "c") as cache:
            with pytest.raises(FlushIncomplete) as stopped:
                await cache.clear_cache(filesystem=False)
        left = sorted(k for k in all_keys(nodes) if KEYSPACE.belongs(k))
        others = sorted(set(k for k in all_keys(nodes) if not KEYSPACE.belongs(k)))
    said = str(stopped.value)
    assert "\n" not in said, said
    assert said.startswith(f"{len(carried)} key{'s' if len(carried) > 1 else ''} in slots being migrated "), said
    assert "add +asking to its ACL" in said, said
    assert left == carried  # only what the rule would have deleted
    assert stopped.value.done["redis"] == len(moving.ir) - len(left), said
    assert others == sorted(moving.foreign)


@pytest.mark.slow
async def test_keys_left_for_want_of_asking_are_deleted_once_the_migration_ends(cluster, nodes, tmp_path, caplog):
    """The same user, when the migration ends while the flush waits for it: the walk after it finds
    the carried keys on their new owner (no ASK needed) and deletes them. Nothing is left, so
    nothing is said to be: the flush completes with the whole count."""
    caplog.set_level(logging.INFO, logger="ircache")
    rules = [r for r in readme_cluster_user() if r != "+asking"]  # +cluster|nodes: it sees the migration
    with acl_user(nodes, "ircache-rw", "No-asking-pw-8Lm", rules) as user, \
            migration_left_half_done(cluster, nodes) as moving:
        mover = Mover(cluster.ports, nodes)
        ends = threading.Timer(1.5, mover.complete, args=(moving.slots, moving.src, moving.dst))
        ends.start()  # well after the first walk met the carried keys and left them
        try:
            async with IRCache(redis_url=f"redis://{user}@127.0.0.1:{cluster.ports[2]}/0",
                               cache_dir=tmp_path / "c") as cache:
                result = await cache.clear_cache(filesystem=False)
        finally:
            ends.join()
    assert result == FlushResult(redis=len(moving.ir))
    assert "walking every primary again" in caplog.text  # the walk after the migration ended
    left = all_keys(nodes)
    assert not [k for k in left if KEYSPACE.belongs(k)]
    assert sorted(set(left)) == sorted(moving.foreign)
