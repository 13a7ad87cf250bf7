"""Every dashboard binding over a local 3-primary cluster, with REDIS_URL of one node."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster as SyncCluster

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.screens.detail import DetailScreen
from ircache_tui.tui.screens.diff import DiffScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.warm import WarmScreen
from ircache_tui.tui.services import Services
from tests.support.generators import CountingGenerator
from tests.support.tui import every_page, static_text, table_keys, until

pytestmark = [pytest.mark.server, pytest.mark.cluster]  # cluster


@pytest.mark.slow
# Fifteen steps, each bounded by its own wait (20-30 s): 8-17 s in all here, idle or beside four
# busy loops, but the suite's 120 s cap for one test was overrun once in CI under two busy loops
# and every test before it. A step that hangs still fails at its own bound.
@pytest.mark.timeout(360)
async def test_every_binding_on_the_cluster(cluster, tmp_path, specs):
    cluster.flushall()
    client = SyncCluster.from_url(cluster.url)
    for i in range(250):  # other specs' entries over every slot range, and foreign keys
        client.set(f"ir_cache:other-{i:03d}_{i:08x}", b'{"schema_version": 1}')
        client.set(f"ir_cache:team:{i}", b"keep")
    cache_dir = tmp_path / "ir"
    gen = CountingGenerator()
    async with IRCache(redis_url=cluster.url, cache_dir=cache_dir, generator=gen) as seeding:
        for path in sorted(specs.glob("*.md")):
            await seeding.lookup(path.read_text(), str(path))
    pet = specs / "petstore-spec.md"
    old_key = cache_key(pet.read_text(), str(pet))
    pet.write_text(pet.read_text() + "\n### Toy\n- id: uuid (primary key)\n- name: str (required)\n")
    async with IRCache(redis_url=cluster.url, cache_dir=cache_dir, generator=gen) as seeding:
        await seeding.lookup(pet.read_text(), str(pet))  # the new version; the old one is stale
    new_key = cache_key(pet.read_text(), str(pet))
    shop = cache_key((specs / "ecommerce-api-spec-human.md").read_text(), str(specs / "ecommerce-api-spec-human.md"))

    cache = IRCache(redis_url=cluster.url, cache_dir=cache_dir, generator=gen, max_connections=4)
    # whole pages even on a busy machine: the binding steps below need both petstore keys on one
    app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=False, page_size=100, poll_interval=0.3,
                              page_time_budget=60))
    try:
        async with app.run_test(size=(170, 45)) as pilot:
            pane = app.keys_pane
            await until(pilot, lambda: app.first_page_shown and len(pane.rows) > 0, what="first page")

            # n / p page over every primary, each key once
            seen = await every_page(pilot, app)
            assert {old_key, new_key, shop} <= set(seen) and len(seen) == 253
            await pilot.press("p")

            # / filter to one spec, s sort, o largest first
            await pilot.press("slash", *"=petstore-spec", "enter")
            await until(pilot, lambda: set(table_keys(app, "keys")) == {old_key, new_key}, what="filtered")
            await pilot.press("s")
            assert pane.sort_by != "spec"
            await pilot.press("o")
            await until(pilot, lambda: pane.view == "largest" and table_keys(app, "keys")[:1], what="largest")
            await pilot.press("o", "o")
            await until(pilot, lambda: pane.view == "scan", what="back to scan")
            await until(pilot, lambda: set(table_keys(app, "keys")) == {old_key, new_key}, what="filtered again")

            # enter: detail; D: the diff of the new version against the stale one
            table = pane.table
            table.move_cursor(row=table.get_row_index(new_key))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DetailScreen), what="detail closed")
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="diff")
            await pilot.press("escape")

            # t resets the TTL; d deletes the stale key (asks first)
            client.expire(f"ir_cache:{new_key}", 100)
            table.move_cursor(row=table.get_row_index(new_key))
            await pilot.press("t")
            await until(pilot, lambda: client.ttl(f"ir_cache:{new_key}") > 1000, what="ttl reset")
            table.move_cursor(row=table.get_row_index(old_key))
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="delete asks")
            await pilot.press("y")
            await until(pilot, lambda: not client.exists(f"ir_cache:{old_key}"), what="deleted")

            # r regenerates the selected spec
            calls = gen.calls
            table.move_cursor(row=table.get_row_index(new_key))
            await pilot.press("r")
            await until(pilot, lambda: gen.calls == calls + 1, what="regenerated")

            # f flushes exactly that spec on every node; w warms it back from disk
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush asks")
            await pilot.press("y")
            await until(pilot, lambda: not client.exists(f"ir_cache:{new_key}") and not app.flush_bar.running,
                        what="spec flushed")
            assert client.exists(f"ir_cache:{shop}")
            await pilot.press("w")
            await until(pilot, lambda: isinstance(app.screen, WarmScreen), what="warm asks")
            await pilot.press("y")
            await until(pilot, lambda: client.exists(f"ir_cache:{new_key}"), what="warmed")

            # F flushes every IR key on every primary, and nothing else
            await pilot.press("escape")
            await pilot.press("F")
            await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush all asks")
            await pilot.press("y")
            await until(pilot, lambda: not app.flush_bar.running and not [
                k for k in client.scan_iter("ir_cache:*", count=1000, target_nodes=SyncCluster.PRIMARIES)
                if not k.endswith(b":hits") and b":team:" not in k and k != b"ir_cache:stats:hits"], what="all flushed")
            assert len(list(client.scan_iter("ir_cache:team:*", count=1000, target_nodes=SyncCluster.PRIMARIES))) == 250
            assert "cluster, 3 primaries" in static_text(app, "#status") or "(cluster" in static_text(app, "#status")
    finally:
        client.close()


async def test_live_updates_come_from_every_primary(cluster, tmp_path):
    """Notifications on, listened to on each primary: keys written on any node show up without a poll."""
    cluster.flushall()
    cache = IRCache(redis_url=cluster.url, cache_dir=tmp_path / "ir", generator=CountingGenerator(), max_connections=4)
    app = IRCacheApp(Services(cache=cache, watch=False, poll_interval=3600, stats_interval=3600))
    client = SyncCluster.from_url(cluster.url)
    try:
        async with app.run_test(size=(150, 40)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="first page")
            await until(pilot, lambda: app.keys_pane.live_mode == "notifications", what="listening on every primary")
            keys = [f"live-{i:02d}_{i:08x}" for i in range(30)]  # 30 names: every node gets some
            for key in keys:
                client.set(f"ir_cache:{key}", b'{"schema_version": 1}')
            await until(pilot, lambda: set(keys) <= set(table_keys(app, "keys")), what="every new key shown")
            assert len({client.keyslot(f"ir_cache:{k}") // 5462 for k in keys}) == 3  # they span the three nodes
            client.delete(f"ir_cache:{keys[0]}")
            await until(pilot, lambda: keys[0] not in table_keys(app, "keys"), what="a delete on any node")
    finally:
        client.close()
