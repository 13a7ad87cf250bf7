import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from ircache_tui import ApplicationIR, GenerationError, IRCache, cache_key
from ircache_tui.cache.results import FlushResult, WarmResult
from ircache_tui.ir import SCHEMA_VERSION
from tests.support.foreign import plant_foreign
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.server  # the tiers and the generation lock over this server

KEY = cache_key(SPEC, "specs/shop.md")


@pytest.fixture
async def gen():
    return CountingGenerator()


@pytest.fixture
async def cache(redis_url, cache_dir, gen):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as c:
        yield c


async def test_miss_generates_and_saves_both_tiers(cache, gen, sync_redis, cache_dir, ircache_logs):
    ir = await cache.get_application_ir(SPEC, "specs/shop.md")
    assert isinstance(ir, ApplicationIR) and ir.name == "Shop API"
    assert gen.calls == 1
    stored = json.loads(sync_redis.get(f"ir_cache:{KEY}"))
    on_disk = json.loads((cache_dir / f"{KEY}.json").read_bytes())
    assert stored == on_disk
    assert stored["schema_version"] == SCHEMA_VERSION
    assert stored["spec_name"] == "shop" and stored["spec_path"] == "specs/shop.md"
    assert stored["generator"] == {"name": "counting", "model": None, "fingerprint": CountingGenerator().fingerprint}
    assert stored["application_ir"]["name"] == "Shop API"
    assert 3590 <= sync_redis.ttl(f"ir_cache:{KEY}") <= 3600
    # the seed's line; an offline generator says so instead of claiming an LLM
    assert "IR cache MISS for shop, generating with the counting generator (no LLM)" in ircache_logs.text


async def test_redis_hit(cache, gen, ircache_logs):
    first = await cache.lookup(SPEC, "shop.md")
    second = await cache.lookup(SPEC, "shop.md")
    assert (first.tier, second.tier) == ("generator", "redis")
    assert second.ir == first.ir and gen.calls == 1
    assert "IR cache HIT (Redis) for shop" in ircache_logs.text
    assert cache.events.counters.redis_hits == 1 and cache.events.counters.misses == 1


async def test_a_lookup_checks_its_key_once(cache, gen, sync_redis, monkeypatch):
    """The key is made and checked once per lookup (CacheKey.for_spec), then passed as a value: no
    tier parses it again, on a miss, a Redis hit or a filesystem hit that warms Redis."""
    from ircache_tui.cache import keys

    def parsed_again(text):
        raise AssertionError(f"{text!r} parsed again")

    monkeypatch.setattr(keys, "parse_cache_key", parsed_again)
    tiers = [(await cache.lookup(SPEC, "shop.md")).tier, (await cache.lookup(SPEC, "shop.md")).tier]
    sync_redis.delete(f"ir_cache:{KEY}")
    cache.decoded.clear()
    tiers.append((await cache.lookup(SPEC, "shop.md")).tier)
    assert tiers == ["generator", "redis", "filesystem"] and sync_redis.exists(f"ir_cache:{KEY}")
    with pytest.raises(AssertionError, match="parsed again"):  # text is still checked where it arrives
        await cache.reset_ttl(KEY)


async def test_filesystem_hit_warms_redis(cache, gen, sync_redis, ircache_logs):
    await cache.get_application_ir(SPEC, "shop.md")
    sync_redis.delete(f"ir_cache:{KEY}")
    hit = await cache.lookup(SPEC, "shop.md")
    assert hit.tier == "filesystem" and gen.calls == 1
    assert "IR cache HIT (filesystem) for shop, warming Redis" in ircache_logs.text
    assert sync_redis.exists(f"ir_cache:{KEY}")
    assert sync_redis.ttl(f"ir_cache:{KEY}") > 3500
    assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"


async def test_force_refresh_skips_reads_and_overwrites(cache, gen, sync_redis, cache_dir):
    await cache.get_application_ir(SPEC, "shop.md")
    before = json.loads(sync_redis.get(f"ir_cache:{KEY}"))["generated_at"]
    await asyncio.sleep(0.01)
    result = await cache.lookup(SPEC, "shop.md", force_refresh=True)
    assert result.tier == "generator" and gen.calls == 2
    after_redis = json.loads(sync_redis.get(f"ir_cache:{KEY}"))["generated_at"]
    after_disk = json.loads((cache_dir / f"{KEY}.json").read_bytes())["generated_at"]
    assert after_redis == after_disk != before


async def test_ttl_zero_disables_caching(redis_url, cache_dir, sync_redis):
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=0, generator=gen) as cache:
        for _ in range(3):
            assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
    assert gen.calls == 3
    assert sync_redis.dbsize() == 0
    assert not cache_dir.exists() or not list(cache_dir.glob("*.json"))


async def test_ttl_from_environment(redis_url, cache_dir, sync_redis, monkeypatch):
    monkeypatch.setenv("IR_CACHE_TTL", "120")
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        assert cache.ttl == 120
        await cache.get_application_ir(SPEC, "shop.md")
    assert 110 <= sync_redis.ttl(f"ir_cache:{KEY}") <= 120
    monkeypatch.setenv("IR_CACHE_TTL", "0")
    assert not IRCache(redis_url=redis_url, cache_dir=cache_dir).enabled
    monkeypatch.setenv("IR_CACHE_TTL", "soon")
    with pytest.raises(ValueError, match="IR_CACHE_TTL"):
        IRCache(redis_url=redis_url, cache_dir=cache_dir)
    monkeypatch.delenv("IR_CACHE_TTL")
    assert IRCache(redis_url=redis_url, cache_dir=cache_dir).ttl == 604800


async def test_corrupt_redis_value_is_deleted_and_regenerated(cache, gen, sync_redis, ircache_logs):
    sync_redis.set(f"ir_cache:{KEY}", b'{"schema_version":1,"spec_name":"sh')  # ours, cut short
    result = await cache.lookup(SPEC, "shop.md")
    assert result.tier == "generator" and gen.calls == 1
    assert json.loads(sync_redis.get(f"ir_cache:{KEY}"))["schema_version"] == SCHEMA_VERSION
    assert "Corrupt IR entry in Redis for shop" in ircache_logs.text


@pytest.mark.parametrize("plant", ["string", "hash"])
async def test_another_tools_value_under_our_key_is_left_alone(cache, gen, sync_redis, cache_dir, ircache_logs,
                                                                plant):
    """A value under our exact key that is not an entry is another tool's: a miss, said once, never
    deleted or overwritten; the IR is generated once and served from the filesystem after that."""
    rkey = f"ir_cache:{KEY}"
    if plant == "string":
        sync_redis.set(rkey, b"\x00not json")
    else:
        sync_redis.hset(rkey, "owner", "team-b")
    before = sync_redis.dump(rkey)
    first = await cache.lookup(SPEC, "shop.md")
    assert first.tier == "generator" and gen.calls == 1
    second = await cache.lookup(SPEC, "shop.md")
    assert second.tier == "filesystem" and gen.calls == 1  # the filesystem answers; Redis is not warmed
    assert sync_redis.dump(rkey) == before  # untouched
    assert (cache_dir / f"{KEY}.json").exists()
    assert ircache_logs.text.count("not an IR entry (another tool's key?): left as it is") == 1
    assert "Corrupt IR entry" not in ircache_logs.text
    assert not await cache.in_redis(KEY)


async def test_corrupt_file_is_quarantined_and_regenerated(cache, gen, cache_dir, ircache_logs):
    cache_dir.mkdir(parents=True)
    (cache_dir / f"{KEY}.json").write_text('{"schema_version": 1, "trunc')
    result = await cache.lookup(SPEC, "shop.md")
    assert result.tier == "generator" and gen.calls == 1
    quarantined = list((cache_dir / ".quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_text().endswith("trunc")
    assert json.loads((cache_dir / f"{KEY}.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert "moving it to quarantine" in ircache_logs.text


async def test_wrong_schema_version_is_a_miss(cache, gen, sync_redis, cache_dir):
    await cache.get_application_ir(SPEC, "shop.md")
    old = json.loads(sync_redis.get(f"ir_cache:{KEY}"))
    old["schema_version"] = 0
    sync_redis.set(f"ir_cache:{KEY}", json.dumps(old, separators=(",", ":")))  # as the cache writes it
    (cache_dir / f"{KEY}.json").write_text(json.dumps(old))
    result = await cache.lookup(SPEC, "shop.md")
    assert result.tier == "generator" and gen.calls == 2
    assert json.loads(sync_redis.get(f"ir_cache:{KEY}"))["schema_version"] == SCHEMA_VERSION


async def test_50_concurrent_calls_generate_once(redis_url, cache_dir):
    gen = CountingGenerator(delay=0.2)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        results = await asyncio.gather(*(cache.get_application_ir(SPEC, "shop.md") for _ in range(50)))
    assert gen.calls == 1
    assert all(r == results[0] for r in results)


async def test_cancelled_caller_does_not_cancel_the_others(redis_url, cache_dir):
    gen = CountingGenerator(delay=0.3)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        impatient = asyncio.create_task(cache.get_application_ir(SPEC, "shop.md"))
        patient = asyncio.create_task(cache.get_application_ir(SPEC, "shop.md"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        assert (await patient).name == "Shop API"
    assert gen.calls == 1


PROCESS_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from ircache_tui import IRCache
    from tests.support.generators import SPEC, CountingGenerator

    async def main():
        gen = CountingGenerator(delay=1.0, log_path={log!r})
        async with IRCache(redis_url={url!r}, cache_dir={cache_dir!r}, generator=gen) as cache:
            result = await cache.lookup(SPEC, "shop.md")
            print(result.tier, result.ir.name)

    asyncio.run(main())
    """
)


@pytest.mark.e2e
async def test_two_processes_generate_once(redis_url, cache_dir, tmp_path):
    import pathlib

    log = tmp_path / "generations.log"
    script = PROCESS_SCRIPT.format(root=str(pathlib.Path(__file__).parent.parent), log=str(log), url=redis_url, cache_dir=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode() for o in outs]
    assert len(log.read_text().splitlines()) == 1
    tiers = sorted(o[0].decode().split()[0] for o in outs)
    assert tiers == ["generator", "redis"]


async def test_generation_error_caches_nothing(redis_url, cache_dir, sync_redis):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(fail=True)) as cache:
        with pytest.raises(GenerationError, match="told to fail"):
            await cache.get_application_ir(SPEC, "shop.md")
        assert cache.events.counters.errors == 1
    assert sync_redis.dbsize() == 0
    assert not list(cache_dir.glob("*.json"))


async def test_redis_stopped_mid_run_and_started_again(cache_dir, ircache_logs):
    server = RedisServer().start()
    gen = CountingGenerator()
    try:
        async with IRCache(redis_url=server.url, cache_dir=cache_dir, generator=gen) as cache:
            assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
            server.stop()
            tiers = [(await cache.lookup(SPEC, "shop.md")).tier for _ in range(10)]
            assert tiers == ["filesystem"] * 10  # (that they skip Redis while it is down: test_redis_tier)
            other = SPEC + "\nmore\n"
            assert (await cache.lookup(other, "shop.md")).tier == "generator"  # generates without Redis
            downs = [r for r in ircache_logs.records if "Redis unavailable" in r.getMessage()]
            assert len(downs) == 1

            server.start()  # same port, empty data
            deadline = time.monotonic() + 10
            while (await cache.lookup(SPEC, "shop.md")).tier != "redis":
                assert time.monotonic() < deadline, "Redis was not used again after it came back"
                await asyncio.sleep(0.2)
            assert "Redis reachable again" in ircache_logs.text
    finally:
        server.stop()
    assert gen.calls == 2


async def test_clear_cache_and_info(cache, sync_redis, cache_dir):
    await cache.get_application_ir(SPEC, "shop.md")
    await cache.get_application_ir("# Other\n", "other.md")
    sync_redis.set("unrelated", "keep")
    foreign = plant_foreign(sync_redis, 3, 2, spec="shop")  # another tool's keys named like shop's entries
    info = await cache.get_cache_info()
    assert info.redis["reachable"] is True
    assert info.redis["total_keys"] == 2 and info.redis["specs"] == ["other", "shop"]
    assert info.redis["foreign_keys"] == 5
    assert info.redis["total_size_bytes"] > 0
    assert info.filesystem["file_count"] == 2 and info.filesystem["directory"] == str(cache_dir)
    assert await cache.clear_cache(filesystem=False, spec_name="shop") == FlushResult(redis=1)
    assert await cache.clear_cache(redis=False) == FlushResult(filesystem=2)
    assert await cache.clear_cache() == FlushResult(redis=1, filesystem=0, foreign_kept=5)
    assert sync_redis.get("unrelated") == b"keep"
    assert sync_redis.exists(*foreign) == len(foreign)


async def test_warm_redis_from_filesystem(cache, sync_redis, cache_dir):
    await cache.get_application_ir(SPEC, "shop.md")
    await cache.get_application_ir("# Other\n", "other.md")
    sync_redis.flushall()
    (cache_dir / "broken_0a1b2c3d.json").write_text("nope")
    result = await cache.warm_redis()
    # the corrupt file is quarantined and reported as not warmed, not passed over in silence
    assert (result.warmed, result.already_in_redis, result.failed, result.left) == (2, 0, 1, 0)
    assert [f.split(":")[0] for f in result.failures] == ["broken_0a1b2c3d"]
    assert sync_redis.dbsize() == 2
    assert (cache_dir / ".quarantine").exists()
    assert await cache.warm_redis() == WarmResult(warmed=0, already_in_redis=2, left=0, failures=(), error=None)


async def test_unwritable_cache_dir_still_answers(redis_url, tmp_path, sync_redis, ircache_logs):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    async with IRCache(redis_url=redis_url, cache_dir=blocker / "ir", generator=CountingGenerator()) as cache:
        result = await cache.lookup(SPEC, "shop.md")
    assert result.tier == "generator"
    assert sync_redis.exists(f"ir_cache:{KEY}")
    assert "Cannot write cache file" in ircache_logs.text


async def test_hostile_spec_path_stays_inside(cache, cache_dir, sync_redis, tmp_path):
    await cache.get_application_ir(SPEC, "../../../../tmp/evil.md")
    assert [p.name for p in cache_dir.glob("*.json")] == [f"{cache_key(SPEC, 'evil.md')}.json"]
    assert [k.decode() for k in sync_redis.keys("*")] == [f"ir_cache:{cache_key(SPEC, 'evil.md')}"]


async def test_a_fifo_planted_as_an_entry_is_replaced_not_waited_on(cache, gen, cache_dir, ircache_logs):
    cache_dir.mkdir(parents=True)
    os.mkfifo(cache_dir / f"{KEY}.json")
    result = await asyncio.wait_for(cache.lookup(SPEC, "shop.md"), timeout=10)
    assert result.tier == "generator" and gen.calls == 1
    assert "Corrupt IR entry on disk" in ircache_logs.text and "a FIFO, not a regular file" in ircache_logs.text
    assert json.loads((cache_dir / f"{KEY}.json").read_bytes())["spec_name"] == "shop"  # a file again
    assert [p.name.split(".")[0] for p in (cache_dir / ".quarantine").iterdir()] == [KEY]  # moved aside, not read
