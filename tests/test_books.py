"""The books stay true: usage that is garbage is unknown (never priced, summed or shown negative or
infinite), every --json output is strict JSON, a stored total that is garbage is said once and never
a crash, a hit flush that timed out is not added twice, and a late flush never brings back the
counts of an entry deleted after those hits were made."""

from __future__ import annotations

import asyncio
import json
import math
import signal

import pytest
import redis

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key, spec_hash
from ircache_tui.cache.metrics import CacheMetrics
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.ir.usage import Usage
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.messages_api import MessagesAPI, message
from tests.support.redis_server import RedisServer

KEY = cache_key(SPEC, "shop.md")
API_KEY = "the-loopback-key"
IR = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}


def strict_json(text: str) -> object:
    """Parse as strict JSON: NaN and Infinity are not JSON, whatever Python's parser allows."""
    def refuse(name: str) -> float:
        raise AssertionError(f"not strict JSON: {name} in {text[:200]!r}")
    return json.loads(text, parse_constant=refuse)


def no_bad_figures(value: object) -> None:
    """No negative or non-finite number anywhere in a JSON document."""
    if isinstance(value, dict):
        for item in value.values():
            no_bad_figures(item)
    elif isinstance(value, list):
        for item in value:
            no_bad_figures(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        assert math.isfinite(value) and value >= 0, value


@pytest.mark.parametrize("usage", [
    {"input_tokens": -900_000_000, "output_tokens": 800},
    {"input_tokens": 1200, "output_tokens": 10**12},  # absurd: more than any answer holds
])
@pytest.mark.e2e
async def test_garbage_usage_from_the_api_is_unknown_never_priced(redis_url, cache_dir, tmp_path, usage):
    """The Messages API (through the real SDK) answers with impossible token counts: the field is
    unknown, so the generation has no cost, and nothing says it saved or cost a negative amount."""
    with MessagesAPI(api_key=API_KEY) as api:
        api.script(message(json.dumps(IR), **usage))
        gen = AnthropicGenerator(model="claude-sonnet-4-6", api_key=API_KEY, base_url=api.base_url)
        metrics = CacheMetrics()
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
            detach = metrics.attach(cache)
            first = await cache.lookup(SPEC, "shop.md")
            for _ in range(3):
                await cache.lookup(SPEC, "shop.md")
            detach()
    got = first.entry.usage
    bad = "input_tokens" if usage["input_tokens"] < 0 else "output_tokens"
    assert getattr(got, bad) is None and got.cost_usd is None
    cost = metrics.registry.get_sample_value("ircache_generation_cost_usd_total")
    assert cost == 0  # nothing priced: not +Inf, not negative
    env = cli_env(redis_url, cache_dir)
    stats = run_cli("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    no_bad_figures(strict_json(stats.stdout))
    text = run_cli("stats", env=env).stdout + run_cli("get", str(_spec_file(tmp_path)), env=env).stdout
    assert "$-" not in text and "inf" not in text.lower()


def _spec_file(tmp_path):
    path = tmp_path / "shop.md"
    path.write_text(SPEC)
    return path


def planted(usage: dict) -> bytes:
    """An entry for SPEC whose usage says `usage`, as a careless writer could leave it."""
    entry = StoredEntry.create(parse_spec(SPEC, "shop"), spec_name="shop", spec_hash=spec_hash(SPEC),
                               spec_path="shop.md", generator="anthropic", model="claude-sonnet-4-6")
    data = entry.to_dict()
    data["usage"] = usage
    raw = json.dumps(data, separators=(",", ":"))
    return raw.replace('"__INF__"', "Infinity").encode()


@pytest.mark.parametrize("usage", [
    {"input_tokens": 1000, "output_tokens": 2000, "cost_usd": 1e308, "duration_s": 3.0},
    {"input_tokens": -5, "output_tokens": 2.5, "cost_usd": -2700.0, "duration_s": "__INF__"},
    {"input_tokens": "12", "output_tokens": None, "cost_usd": "__INF__", "duration_s": -1},
])
@pytest.mark.e2e
async def test_a_planted_entry_with_garbage_usage_breaks_nothing(redis_url, sync_redis, cache_dir, tmp_path, usage):
    """Such an entry is still served (its bookkeeping is not its IR); its garbage figures are unknown,
    so hits on it save nothing, and `stats` keeps working for every client of the prefix."""
    raw = planted(usage)
    sync_redis.set(f"ir_cache:{KEY}", raw)
    cache_dir.mkdir(parents=True)
    (cache_dir / f"{KEY}.json").write_bytes(raw)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        for _ in range(20):
            found = await cache.lookup(SPEC, "shop.md")
            assert found.tier == "redis"
    assert found.entry.usage is not None and found.entry.usage.cost_usd is None
    env = cli_env(redis_url, cache_dir)
    for _ in range(2):  # a second round: the counts written by the first are read back
        stats = run_cli("stats", "--json", env=env)
        assert stats.returncode == 0, stats.stderr
        info = strict_json(stats.stdout)
        no_bad_figures(info)
        assert info["saved"]["usd"] == 0 and info["hits"]["redis"] >= 20
        shown = run_cli("get", str(_spec_file(tmp_path)), "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        no_bad_figures(strict_json(shown.stdout))


@pytest.mark.e2e
async def test_a_garbage_total_in_redis_is_said_once_and_started_again(redis_url, sync_redis, cache_dir):
    """Another writer left the shared totals unreadable: stats say so once and go on (JSON strict);
    the next hit flush starts those fields again, and counts from there."""
    stats_key = "ir_cache:stats:hits"
    sync_redis.hset(stats_key, mapping={"redis": "abc", "filesystem": "-7", "saved_usd": "inf",
                                        "saved_seconds": "1e308", "generator": "3", "since": "\x1b]52;c;aGk=\x07"})
    env = cli_env(redis_url, cache_dir)
    out = run_cli("stats", "--json", env=env)
    assert out.returncode == 0, out.stderr
    info = strict_json(out.stdout)
    no_bad_figures(info)
    assert info["hits"]["generator"] == 3 and info["hits"]["redis"] == 0 and info["saved"]["usd"] == 0
    assert info["hits"]["since"] is None  # not a time
    warnings = [line for line in out.stderr.splitlines() if "not a count" in line]
    assert len(warnings) == 4, out.stderr  # one per garbage field, once
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        for _ in range(6):
            await cache.lookup(SPEC, "shop.md")  # 1 generated, 5 Redis hits, flushed at close
    stored = {k.decode(): v.decode() for k, v in sync_redis.hgetall(stats_key).items()}
    assert (stored["redis"], stored["filesystem"], stored["generator"]) == ("5", "0", "4")
    # the offline generator costs nothing but its seconds (a few ms a hit): sane figures again
    assert float(stored["saved_usd"]) == 0 and 0 <= float(stored["saved_seconds"]) < 60
    assert stored["since"].startswith("20")  # a time again
    out = run_cli("stats", "--json", env=env)
    assert strict_json(out.stdout)["hits"]["redis"] == 5
    assert "not a count" not in out.stderr


async def test_a_hit_flush_that_timed_out_is_not_added_twice(tmp_path):
    """Redis stalls (SIGSTOP) while a hit flush is on its way: the flush times out, and the batch is
    kept; Redis resumes and applies it; the batch is sent again and Redis does not add it twice."""
    with RedisServer() as server:
        admin = redis.Redis(unix_socket_path=server.socket_path)
        async with IRCache(redis_url=server.unix_url, cache_dir=tmp_path / "cache", generator=CountingGenerator(),
                           hit_flush_interval=3600) as cache:
            await cache.hits.flush()  # (nothing yet: loads nothing) ...
            cache.hits.record("generator", KEY, None)
            assert await cache.hits.flush()  # ... the first batch, which loads the script
            for _ in range(1000):
                cache.hits.record("generator", KEY, None)
            server.process.send_signal(signal.SIGSTOP)
            try:
                assert await cache.hits.flush() is False  # timed out: Redis may or may not take it
            finally:
                server.process.send_signal(signal.SIGCONT)
            for _ in range(200):  # the stalled batch runs once Redis does
                if admin.hget("ir_cache:stats:hits", "generator") == b"1001":
                    break
                await asyncio.sleep(0.05)
            assert admin.hget("ir_cache:stats:hits", "generator") == b"1001"
            cache.hits.record("generator", KEY, None)
            for _ in range(200):  # Redis was marked down for a moment: flush until it is taken
                if await cache.hits.flush():
                    break
                await asyncio.sleep(0.05)
            assert cache.hits.unacked is None
        assert admin.hget("ir_cache:stats:hits", "generator") == b"1002"  # not 2002
        assert not [f for f in admin.hkeys("ir_cache:stats:hits") if f.startswith(b"~w:")]  # marks cleared


@pytest.mark.e2e
async def test_a_late_flush_never_brings_back_a_deleted_entrys_counts(redis_url, sync_redis, tmp_path):
    """A holds 50 unflushed hits; B flushes the entry from both tiers; A closes. The entry's hit
    key stays gone (the totals keep the hits: they happened), and when the entry is made again
    before A's flush, the new entry is not said to have been hit 50 times."""
    hkey = f"ir_cache:{KEY}:hits"
    for regenerate in (False, True):
        sync_redis.flushall()
        a = IRCache(redis_url=redis_url, cache_dir=tmp_path / f"a{regenerate}", generator=CountingGenerator(),
                    hit_flush_interval=3600)
        b_dir = tmp_path / f"b{regenerate}"
        await a.open()
        try:
            await a.lookup(SPEC, "shop.md")
            for _ in range(50):
                assert (await a.lookup(SPEC, "shop.md")).tier == "redis"
            async with IRCache(redis_url=redis_url, cache_dir=b_dir, generator=CountingGenerator()) as b:
                await asyncio.sleep(0.002)  # the regenerated entry is born later than the first
                await b.clear_cache()
                if regenerate:
                    assert (await b.lookup(SPEC, "shop.md")).tier == "generator"
        finally:
            await a.close()  # its last flush, late
        assert int(sync_redis.hget("ir_cache:stats:hits", "redis") or 0) == 50  # history
        if not regenerate:
            assert not sync_redis.exists(hkey)
            continue
        out = run_cli("get", str(_spec_file(tmp_path)), "--json", env=cli_env(redis_url, b_dir))
        assert out.returncode == 0, out.stderr
        assert strict_json(out.stdout)["hits"] == {"redis": 1, "filesystem": 0}  # this lookup only


def test_usage_reads_garbage_as_unknown():
    """The rule itself, for every field: negative, fractional, absurd, infinite, NaN, text, bool."""
    garbage = [-1, 2.5, 10**8, float("inf"), float("nan"), "12", True]
    for value in garbage:
        usage = Usage(input_tokens=value, output_tokens=value, cache_read_input_tokens=value,
                      cache_creation_input_tokens=value, duration_s=value if value != 2.5 else -2.5,
                      cost_usd=value if value != 2.5 else 1e9)
        assert usage == Usage(), value
    assert Usage(input_tokens=10, output_tokens=0, duration_s=0.5, cost_usd=0.25).cost_usd == 0.25
