"""The dashboard over a Redis that restarts empty: it reconnects by itself, its Specs tab's
watcher re-warms every spec from the filesystem, and the key pane shows them again."""

from __future__ import annotations

import redis

from ircache_tui import IRCache
from ircache_tui.specs import discover_specs
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services
from tests.support.generators import CountingGenerator
from tests.support.redis_server import RedisServer
from tests.support.tui import until


async def test_redis_restarted_empty_under_the_dashboard_is_rewarmed(tmp_path, specs):
    cache_dir = tmp_path / "ir"
    found = discover_specs([specs])
    keys = {f"ir_cache:{s.cache_key}" for s in found}
    with RedisServer() as server:
        gen = CountingGenerator()
        cache = IRCache(redis_url=server.url, cache_dir=cache_dir, ttl=3600, generator=gen,
                        max_connections=DASHBOARD_CONNECTIONS)
        app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], health_interval=0.5, poll_interval=0.3, live="poll"))
        client = redis.Redis.from_url(server.url)
        try:
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: {k.decode() for k in client.keys("ir_cache:*")} == keys, what="generated")
                generated = gen.calls
                server.stop()
                await until(pilot, lambda: app.redis_up is False, what="down")
                server.start()  # back on the same port, empty
                await until(pilot, lambda: {k.decode() for k in client.keys("ir_cache:*")} == keys, timeout=30,
                            what="every spec back in Redis")
                await until(pilot, lambda: app.redis_up and len(app.keys_pane.rows) == len(keys), what="key pane")
                assert gen.calls == generated  # warmed from the filesystem, not generated again
        finally:
            client.close()
