"""The dashboard's own writes come back as keyspace notifications: the watcher knows its echo.

A spec saved while the dashboard watches is warmed into Redis by the watcher (a SET by this process);
the notification of that SET reaches the keys pane, which has the Specs tab look at that spec again.
That look must not read and hash the spec file again. Another client's change to the same key still
gets a full look. A real Redis with keyspace notifications, real files, real watchfiles, Pilot.
"""

from __future__ import annotations

import pytest

from ircache_tui import IRCache, OfflineGenerator, StoredEntry, cache_key
from ircache_tui.cache.events import CacheEvent
from ircache_tui.cache.keys import spec_hash
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import Services
from ircache_tui.watch import SpecState
from ircache_tui.watch.echoes import OwnWrites
from tests.support.generators import SPEC, CountingGenerator
from tests.support.tui import table_keys, until

@pytest.mark.server  # keyspace notifications
async def test_the_echo_of_a_warm_does_not_reread_the_spec(redis_url, sync_redis, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "shop.md").write_text(SPEC)
    saved = specs / "orders.md"
    text = SPEC.replace("# Shop API", "# Orders API")
    key = cache_key(text, str(saved))
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, str(specs / "shop.md"))
        # the IR of the spec about to be saved is on disk only (an earlier run): the watcher warms Redis
        ir = await OfflineGenerator().generate(text, "orders")
        entry = StoredEntry.create(ir, spec_name="orders", spec_hash=spec_hash(text), spec_path=str(saved),
                                   generator="offline")
        await cache.fs.write_raw(key, entry.to_json_bytes())

        app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=True))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.first_page_shown and app.specs_pane.watcher is not None
                        and app.specs_pane.watcher.idle
                        and [s.state.value for s in app.specs_pane.watcher.statuses.values()] == ["in redis"],
                        what="the dashboard watching, shop in Redis")
            watcher = app.specs_pane.watcher
            # the keys pane listens (its psubscribe is the only one on this server)
            await until(pilot, lambda: sync_redis.execute_command("PUBSUB", "NUMPAT") >= 1, what="listening")

            saved.write_text(text)
            path = saved.resolve()
            await until(pilot, lambda: watcher.statuses.get(path) is not None
                        and watcher.statuses[path].state is SpecState.IN_REDIS, what="orders warmed")
            assert watcher.stats.warmed == 1 and sync_redis.exists(f"ir_cache:{key}")
            await until(pilot, lambda: key in table_keys(app, "keys"), what="the SET's notification")
            # the Specs tab followed that notification: the watcher took it for the echo it is
            await until(pilot, lambda: watcher.stats.echoes + watcher.stats.observed[path] >= 1,
                        what="the look the notification asked for")
            assert watcher.stats.observed[path] == 0, "the spec file was read again for our own SET"
            assert watcher.stats.echoes >= 1

            # another client's change to that key is news: looked at in full
            sync_redis.delete(f"ir_cache:{key}")
            await watcher.refresh(path)
            assert watcher.stats.observed[path] >= 1
            assert watcher.statuses[path].state is SpecState.FILESYSTEM_ONLY


def test_own_writes_are_short_lived_bounded_and_forgotten_when_deleted():
    now = [0.0]
    own = OwnWrites(window=30.0, limit=3, clock=lambda: now[0])
    own.on_event(CacheEvent("warmed", "a", "a_00000001", "redis"))
    own.on_event(CacheEvent("generated", "b", "b_00000002", "generator"))
    own.on_event(CacheEvent("hit", "c", "c_00000003", "redis"))  # a read: no write
    assert own.recent("a_00000001") and own.recent("b_00000002") and not own.recent("c_00000003")
    own.on_event(CacheEvent("deleted", "a", "a_00000001", "redis"))
    assert not own.recent("a_00000001")
    for n in range(4, 8):  # bounded: the oldest go first
        own.note(f"d_0000000{n}")
    assert len(own) == 3 and not own.recent("b_00000002") and own.recent("d_00000007")
    own.on_event(CacheEvent("flushed", "d", "", "redis"))
    assert len(own) == 0
    own.note("e_00000008")
    now[0] = 31.0
    assert not own.recent("e_00000008") and len(own) == 0
