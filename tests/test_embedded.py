import subprocess
import sys
import textwrap

import redis

from ircache_tui import IRCache
from ircache_tui.cache.embedded import EmbeddedRedis
from tests.support.generators import SPEC, CountingGenerator


def test_start_reuse_stop_and_persist(tmp_path):
    cache_dir = tmp_path / "ir"
    first = EmbeddedRedis(cache_dir)
    url = first.start()
    assert first.owner and first.running()
    assert url == f"unix://{cache_dir.resolve()}/.redis/redis.sock"
    client = redis.Redis.from_url(url)
    # no keyspace notifications until a dashboard asks: every delete would pay for them
    assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    client.set("ir_cache:x_0a1b2c3d", "v")

    second = EmbeddedRedis(cache_dir)
    assert second.start() == url
    assert not second.owner  # reused, not restarted
    second.stop()
    assert first.running()  # a non-owner's stop leaves it alone

    first.stop()
    assert not first.running()
    assert (cache_dir / ".redis" / "dump.rdb").exists()

    third = EmbeddedRedis(cache_dir)
    third.start()
    try:
        assert redis.Redis.from_url(url).get("ir_cache:x_0a1b2c3d") == b"v"  # kept in the RDB
    finally:
        third.stop()


def test_long_cache_dir_uses_short_socket(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    assert len(server.socket_path) < 104
    with server:
        assert server.running()


def test_second_process_reuses_running_server(tmp_path):
    cache_dir = tmp_path / "ir"
    script = textwrap.dedent(
        f"""
        from ircache_tui.cache.embedded import EmbeddedRedis
        s = EmbeddedRedis({str(cache_dir)!r})
        s.start()
        print("owner" if s.owner else "reused")
        s.stop()
        """
    )
    with EmbeddedRedis(cache_dir) as server:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "reused", out.stderr
        assert server.running()


async def test_ircache_without_url_uses_embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    cache_dir = tmp_path / "ir"
    async with IRCache(redis_url=None, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        assert cache.embedded is not None and cache.embedded.owner
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
        assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
    assert not EmbeddedRedis(cache_dir).running()
