"""IR_AUDIT_REDIS=1: the audit trail in a capped Redis stream too, so every machine reads one trail.

Two "machines" are two cache dirs over one real redis-server; the commands run as real processes.
"""

from __future__ import annotations

import json
import logging

import pytest
import redis

from ircache_tui import IRCache
from ircache_tui.cache.audit import read_trail
from ircache_tui.cache.redis.audit_stream import STREAM_MAXLEN
from ircache_tui.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_server import free_port

pytestmark = pytest.mark.server

STREAM = "ir_cache:audit"


@pytest.fixture
def machines(redis_url, tmp_path):
    """Machine A's and machine B's environments (each its own cache dir), the stream on; A has a spec."""
    spec = tmp_path / "specs" / "shop.md"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    return {name: cli_env(redis_url, tmp_path / name, IR_AUDIT_REDIS="1") for name in ("a", "b")}, spec


def test_every_machine_reads_the_actions_of_every_other(machines, sync_redis, tmp_path):
    (env, spec) = machines
    assert run_cli("warm", str(spec.parent), env=env["a"]).returncode == 0
    flushed = run_cli("flush", "shop", "--yes", env=env["a"])
    assert flushed.returncode == 0, flushed.stderr
    shown = run_cli("audit", "--json", env=env["b"])  # machine B: nothing of its own
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [(r["from"], r["action"]) for r in records] == [("cli warm", "warm"), ("cli warm", "warm"),
                                                          ("cli flush", "flush")]
    assert records == read_trail(tmp_path / "a")[0]  # the very records machine A's file has
    assert read_trail(tmp_path / "b") == ([], 0)
    assert sync_redis.xlen(STREAM) == 3
    text = run_cli("audit", "--since", "2999-01-01T00:00:00", env=env["b"])
    assert text.stdout.strip() == f"no actions recorded in the Redis stream {STREAM} since 2999-01-01T00:00:00+00:00"
    assert run_cli("audit", "--since", "1h", "--json", env=env["b"]).stdout == shown.stdout


async def test_records_reach_the_stream_in_order_and_the_stream_keeps_its_cap(redis_url, sync_redis, cache_dir):
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, audit_redis=True)
    async with IRCache(settings=settings, generator=CountingGenerator()) as cache:
        for i in range(200):  # a burst: written at once, sent in the background
            cache.audit.write("ttl", key=f"shop_{i:08x}", touched={"redis": 1})
    keys = [json.loads(fields[b"record"])["key"] for _, fields in sync_redis.xrange(STREAM)]
    assert keys == [f"shop_{i:08x}" for i in range(200)]  # all of them, in the order written, by close
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(STREAM_MAXLEN + 50 - 200):
        pipe.xadd(STREAM, {"record": b"{}"})
    pipe.execute()
    async with IRCache(settings=settings, generator=CountingGenerator()) as cache:
        cache.audit.write("ttl", key="shop_ffffffff")
    assert sync_redis.xlen(STREAM) == STREAM_MAXLEN  # trimmed exactly, the oldest first
    last = sync_redis.xrevrange(STREAM, count=1)[0][1][b"record"]
    assert json.loads(last)["key"] == "shop_ffffffff"


async def test_a_stream_the_server_refuses_costs_one_line_and_no_record(redis_url, sync_redis, cache_dir,
                                                                      ircache_logs):
    """Another tool's hash where the stream would be: never written over; every action still recorded in
    the file; said once; and `audit` reads this machine's file instead, saying why."""
    sync_redis.hset(STREAM, "owner", "teamb")
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, audit_redis=True)
    async with IRCache(settings=settings, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "specs/shop.md")
        await cache.reset_ttl("shop_" + (await cache.list_files())[0].hash8, 600)
        await cache.clear_cache(spec_name="shop")
    said = [r.getMessage() for r in ircache_logs.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and said[0].startswith(f"Cannot add to the audit stream {STREAM} ("), said
    assert [r["action"] for r in read_trail(cache_dir)[0]] == ["ttl", "flush"]
    assert sync_redis.hgetall(STREAM) == {b"owner": b"teamb"}
    shown = run_cli("audit", env=cli_env(redis_url, cache_dir, IR_AUDIT_REDIS="1"))
    assert shown.returncode == 0
    (why,) = shown.stderr.splitlines()
    assert why.startswith("ircache-tui audit: cannot read the audit stream in Redis (") and why.endswith(
        f"showing this machine's trail, {cache_dir / 'audit.jsonl'}")
    assert len(shown.stdout.splitlines()) == 2


def test_a_redis_that_is_down_shows_this_machines_trail_and_says_so(redis_url, cache_dir):
    assert run_cli("flush", "--yes", env=cli_env(redis_url, cache_dir)).returncode == 0  # one record, in the file
    down = cli_env(f"redis://127.0.0.1:{free_port()}/0", cache_dir, IR_AUDIT_REDIS="1")
    shown = run_cli("audit", "--json", env=down)
    assert shown.returncode == 0, shown.stderr
    assert [r["action"] for r in json.loads(shown.stdout)] == ["flush"]
    assert "cannot read the audit stream in Redis" in shown.stderr and len(shown.stderr.splitlines()) == 1


def test_a_bad_setting_is_one_line_and_exit_2(redis_url, cache_dir):
    bad = run_cli("audit", env=cli_env(redis_url, cache_dir, IR_AUDIT_REDIS="maybe"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "IR_AUDIT_REDIS must be 1 or 0" in bad.stderr


def test_without_the_setting_nothing_goes_to_redis(redis_url, cache_dir):
    assert run_cli("flush", "--yes", env=cli_env(redis_url, cache_dir)).returncode == 0
    assert redis.Redis.from_url(redis_url).exists(STREAM) == 0
