import time

import pytest

from ircache_tui.cache.errors import RedisUnavailable
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.redis import RedisTier
from tests.support.foreign import entry_value, plant_foreign
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.server  # the tier's commands (SCAN, UNLINK, MEMORY USAGE, the lock) as this server answers them

#: what `cache_ir` takes: an entry as a dict (StoredEntry.to_dict()); only its first key matters here
ENTRY = {"schema_version": 1, "a": 1}


@pytest.fixture
async def tier(redis_url):
    t = RedisTier(redis_url, KeySpace("ir_cache"), ttl=3600)
    yield t
    await t.aclose()


async def test_cache_ir_sets_value_with_ttl(tier, sync_redis):
    assert await tier.cache_ir("petstore_0a1b2c3d", ENTRY) is True
    assert await tier.get_cached_ir("petstore_0a1b2c3d") == ENTRY
    assert 3590 <= sync_redis.ttl("ir_cache:petstore_0a1b2c3d") <= 3600
    assert await tier.cache_ir("petstore_0a1b2c3e", {**ENTRY, "a": 2}, ttl=60) is True
    assert 50 <= sync_redis.ttl("ir_cache:petstore_0a1b2c3e") <= 60


async def test_ttl_zero_writes_nothing(tier, sync_redis):
    assert await tier.cache_ir("petstore_0a1b2c3d", ENTRY, ttl=0) is False
    assert sync_redis.dbsize() == 0


async def test_get_cached_ir_miss_is_none(tier):
    assert await tier.get_cached_ir("nothing_0a1b2c3d") is None


SURVIVORS = [
    "ir_cache:ecommerce_v2_0a1b2c3d",
    "ir_cache:ecommerce-api_0a1b2c3d",
    "ir_cache:ecommerce",
    "ir_cache:ecommerce_0a1b2c3d:lock",
    "ir_cache:ecommerce_XYZ",
    "ir_cache:ecommerce_0A1B2C3D",
    "other:ecommerce_0a1b2c3d",
    "ir_cache_other:ecommerce_0a1b2c3d",
    "ecommerce_0a1b2c3d",
    "ir_cache:eco[m]merce_0a1b2c3d",
    "ir_cache:e*_0a1b2c3d",
]


async def test_selective_flush_is_exact(tier, sync_redis):
    mine = ["ir_cache:ecommerce_0a1b2c3d", "ir_cache:ecommerce_ffffffff"]
    for k in mine + SURVIVORS:
        sync_redis.set(k, entry_value())
    assert await tier.clear_ir_cache("ecommerce") == 2
    left = sorted(k.decode() for k in sync_redis.keys("*"))
    assert left == sorted(SURVIVORS)


async def test_glob_characters_are_escaped(tier, sync_redis):
    for k in ["ir_cache:e*_0a1b2c3d", "ir_cache:ex_0a1b2c3d", "ir_cache:e[x]_0a1b2c3d", "ir_cache:a\\b_0a1b2c3d", "ir_cache:ab_0a1b2c3d"]:
        sync_redis.set(k, entry_value())
    assert await tier.clear_ir_cache("e*") == 1
    assert not sync_redis.exists("ir_cache:e*_0a1b2c3d")
    assert sync_redis.exists("ir_cache:ex_0a1b2c3d")
    assert await tier.clear_ir_cache("e[x]") == 1
    assert sync_redis.exists("ir_cache:ex_0a1b2c3d")
    assert await tier.clear_ir_cache("e?") == 0
    assert sync_redis.exists("ir_cache:ex_0a1b2c3d")


async def test_full_flush_touches_only_ir_keys(tier, sync_redis, ircache_logs):
    mine = [f"ir_cache:spec{i}_{i:08x}" for i in range(2500)]
    others = ["ir_cache:not-an-ir", "ir_cache:x_12345678:lock", "session:1", "ir_cacheX:y_12345678"]
    pipe = sync_redis.pipeline()
    for k in mine + others:
        pipe.set(k, entry_value())
    pipe.execute()
    progress = []
    deleted = await tier.clear_ir_cache(on_progress=progress.append)
    assert deleted == 2500
    assert progress and progress[-1] == 2500
    assert sorted(k.decode() for k in sync_redis.keys("*")) == sorted(others)
    assert "Cleared IR cache from Redis {'pattern': 'ir_cache:*_" in ircache_logs.text
    assert "'deleted': 2500}" in ircache_logs.text


async def test_flush_never_uses_keys_or_flushdb(tier, sync_redis, redis_server):
    for i in range(50):
        sync_redis.set(f"ir_cache:s_{i:08x}", entry_value())
    sync_redis.config_resetstat()
    await tier.clear_ir_cache()
    await tier.get_ir_cache_stats()
    stats = sync_redis.info("commandstats")
    assert "cmdstat_keys" not in stats and "cmdstat_flushdb" not in stats and "cmdstat_flushall" not in stats
    assert "cmdstat_del" not in stats
    assert stats["cmdstat_unlink"]["calls"] >= 1
    assert stats["cmdstat_scan"]["calls"] >= 1


async def test_stats_pipelined_memory_usage(tier, sync_redis):
    sync_redis.set("ir_cache:a_00000001", entry_value(1000))
    sync_redis.set("ir_cache:a_00000002", entry_value(1000))
    sync_redis.set("ir_cache:b_00000001", entry_value(5000))
    plant_foreign(sync_redis, 3, 2)  # another tool's keys under our names: counted apart
    sync_redis.set("ir_cache:junk", "z" * 100000)
    sync_redis.set("unrelated", "z" * 100000)
    stats = await tier.get_ir_cache_stats()
    assert stats["total_keys"] == 3 and stats["foreign_keys"] == 5
    assert stats["specs"] == ["a", "b"]
    expected = sum(sync_redis.memory_usage(k, samples=0) for k in ["ir_cache:a_00000001", "ir_cache:a_00000002", "ir_cache:b_00000001"])
    assert stats["total_size_bytes"] == expected


async def test_password_tcp_url_and_unix_url():
    with RedisServer(password="s3cret") as server:
        for url in (server.url, server.unix_url):
            t = RedisTier(url, KeySpace(), ttl=60)
            try:
                assert await t.cache_ir("p_0a1b2c3d", ENTRY)
                assert await t.get_cached_ir("p_0a1b2c3d") == ENTRY
                assert "s3cret" not in t.display_url
            finally:
                await t.aclose()
        wrong = RedisTier(server.url.replace("s3cret", "wrong"), KeySpace(), ttl=60)
        try:
            with pytest.raises(RedisUnavailable):
                await wrong.get_raw("p_0a1b2c3d")
        finally:
            await wrong.aclose()


async def test_unreachable_redis_is_logged_once(ircache_logs, tmp_path):
    t = RedisTier(f"redis://127.0.0.1:{free_port()}/0", KeySpace(), ttl=60)
    try:
        for _ in range(20):
            assert await t.get_cached_ir("p_0a1b2c3d") is None
            assert await t.cache_ir("p_0a1b2c3d", ENTRY) is False
        with pytest.raises(RedisUnavailable):
            await t.clear_ir_cache()
        downs = [r for r in ircache_logs.records if "Redis unavailable" in r.getMessage()]
        assert len(downs) == 1
    finally:
        await t.aclose()


async def test_while_redis_is_down_calls_skip_it_without_connecting(redis_url, sync_redis):
    """What keeps a down Redis cheap (it once cost a connect and its retries per call): once a call
    found it down, the calls after it fail at once. Counted by the server that turns away every
    connection this tier opens (as a user it does not have: down, as a dead one is)."""
    t = RedisTier(f"{redis_url}?username=nobody-here&password=not-this", KeySpace(), ttl=60)
    before = sync_redis.info("stats")["total_connections_received"]
    try:
        for _ in range(20):
            assert await t.get_cached_ir("p_0a1b2c3d") is None
            assert await t.cache_ir("p_0a1b2c3d", ENTRY) is False
        with pytest.raises(RedisUnavailable, match="password"):
            await t.clear_ir_cache()
    finally:
        await t.aclose()
    opened = sync_redis.info("stats")["total_connections_received"] - before
    # one call found it down (a connection, and one quick retry); asking every call: 41 and more
    assert 1 <= opened <= 4, f"{opened} connections for 41 calls"


async def test_unreachable_unix_socket(tmp_path):
    t = RedisTier(f"unix://{tmp_path}/nothing.sock", KeySpace(), ttl=60)
    try:
        with pytest.raises(RedisUnavailable, match="nothing.sock"):
            await t.ping()
    finally:
        await t.aclose()


async def test_lock_is_released_only_by_its_holder(tier, sync_redis):
    assert await tier.locks.acquire("s_0a1b2c3d", "tok1", 5000)
    assert not await tier.locks.acquire("s_0a1b2c3d", "tok2", 5000)
    assert not await tier.locks.release("s_0a1b2c3d", "tok2")
    assert sync_redis.get("ir_cache:s_0a1b2c3d:lock") == b"tok1"
    assert await tier.locks.extend("s_0a1b2c3d", "tok1", 9000)
    assert sync_redis.pttl("ir_cache:s_0a1b2c3d:lock") > 5000
    assert await tier.locks.release("s_0a1b2c3d", "tok1")
    assert not await tier.locks.held("s_0a1b2c3d")
