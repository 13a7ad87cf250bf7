"""Batch claims: a Message Batch in flight on one machine is seen by every machine sharing the Redis.

Two "machines" are two cache dirs over one real redis-server (a batch record lives in a cache dir,
so the second machine cannot see the first one's): `warm --batch` and `get` run as real processes
of the installed entry point, through the real SDK against the loopback Batches API.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal

import pytest
import redis

from ircache_tui.cache.batch_claims import BatchClaims
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import CacheKey
from ircache_tui.ir.generators import OfflineGenerator
from tests.support.cli import reap, run_cli, start_cli
from tests.support.generators import CountingGenerator
from tests.support.messages_batches import AnsweringAPI, offline_responder
from tests.test_batch_warm import KEY, cache_over, start_warm, stored, warm_env, write_specs

CLAIMED = re.compile(r"is being generated in a Message Batch that pid \d+ on \S+ collects")


def claim_keys(sync_redis) -> list[bytes]:
    return sorted(sync_redis.scan_iter(match="ir_cache:*:batch"))


def test_another_machine_leaves_a_claimed_spec_to_the_batch_and_waits_for_it(redis_url, sync_redis, tmp_path):
    specs = tmp_path / "specs"
    paths = write_specs(specs, 2)
    here, there = tmp_path / "machine-a", tmp_path / "machine-b"
    with AnsweringAPI(KEY, responder=offline_responder(), batch_delay=None) as api:  # ends when told
        env_a, env_b = warm_env(api, redis_url, here), warm_env(api, redis_url, there)
        warm = start_warm(api, env_a, specs, "--json")
        waiting = None
        try:
            (batch_id,) = api.batch_creates
            assert len(claim_keys(sync_redis)) == 2  # one claim a spec, while it is in flight

            refused = run_cli("get", str(paths[0]), "--no-wait", env=env_b)
            assert refused.returncode == 1 and refused.stdout == ""
            (line,) = refused.stderr.splitlines()
            assert CLAIMED.search(line) and line.endswith("; try again later"), line

            second = run_cli("warm", str(specs), "--batch", "--json", env=env_b)  # the other machine's warm
            assert second.returncode == 0, second.stderr
            assert json.loads(second.stdout)["batch"]["busy"] == 2
            assert api.batch_creates == [batch_id]  # it submitted nothing

            waiting = start_cli("get", str(paths[1]), env=env_b)
            assert waiting.stderr is not None
            said = waiting.stderr.readline()  # the NOTICE that it waits (shown by default)
            assert CLAIMED.search(said) and "waiting for it" in said, said
            api.end_batches()
            out, err = waiting.communicate(timeout=60)
            warm_out, warm_err = warm.communicate(timeout=60)
        finally:
            reap(warm, waiting)
    assert waiting.returncode == 0, err
    assert "made in a batch with" in out
    assert warm.returncode == 0, warm_err
    assert api.requests == [] and api.batch_creates == [batch_id]  # nobody paid for a spec twice
    assert json.loads(warm_out)["batch"]["succeeded"] == 2
    assert claim_keys(sync_redis) == []  # let go once stored
    assert [stored(sync_redis, here, p)[0].usage.service_tier for p in paths] == ["batch"] * 2


def test_a_stopped_warm_lets_go_and_a_waiting_machine_generates_directly(redis_url, sync_redis, tmp_path):
    specs = tmp_path / "specs"
    paths = write_specs(specs, 2)
    here, there = tmp_path / "machine-a", tmp_path / "machine-b"
    with AnsweringAPI(KEY, responder=offline_responder(), batch_delay=None) as api:
        env_a, env_b = warm_env(api, redis_url, here), warm_env(api, redis_url, there)
        warm = start_warm(api, env_a, specs)
        waiting = None
        try:
            waiting = start_cli("get", str(paths[0]), env=env_b)
            assert waiting.stderr is not None
            assert CLAIMED.search(waiting.stderr.readline())
            warm.send_signal(signal.SIGTERM)  # its batch stays recorded on machine A, for A's next warm
            warm.communicate(timeout=30)
            out, err = waiting.communicate(timeout=60)
        finally:
            reap(warm, waiting)
    assert warm.returncode == 143
    assert waiting.returncode == 0, err
    assert "ended with no entry: generating it directly" in err
    assert len(api.requests) == 1  # the one it had to make
    assert claim_keys(sync_redis) == []


async def test_a_claim_whose_collector_died_lapses_and_the_spec_is_generated(redis_url, sync_redis, cache_dir,
                                                                           tmp_path, ircache_logs):
    spec = (tmp_path / "petstore.md")
    spec.write_text("# Petstore\n\n## Endpoints\n- GET /pets - List pets\n")
    key, _ = CacheKey.for_spec(spec.read_text(), str(spec))
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "dead", generator=OfflineGenerator()) as dead:
        claims = BatchClaims(dead.redis.batch_claims, ttl_ms=400)
        assert await claims.claim([key]) == {}  # claimed, then never renewed: its process "died"
    generator = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=generator) as cache:
        result = await cache.lookup(spec.read_text(), str(spec))
    assert result.tier == "generator" and generator.calls == 1
    text = ircache_logs.text
    assert "waiting for it" in text and "ended with no entry: generating it directly" in text


async def test_claims_are_renewed_while_kept_released_after_and_never_taken_from_another(redis_url, sync_redis,
                                                                                       tmp_path, ircache_logs):
    keys = [CacheKey.parse(f"spec-{i}_{i:08x}") for i in range(40)]
    # another tool's values where our claims of spec-1 and spec-2 would go: never overwritten nor deleted,
    # never taken for a claim (nobody waits on them), and the other 38 claims are all taken
    sync_redis.set("ir_cache:spec-1_00000001:batch", b"teamb's value")
    sync_redis.hset("ir_cache:spec-2_00000002:batch", "owner", "teamb")
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "c", generator=OfflineGenerator()) as cache:
        claims = BatchClaims(cache.redis.batch_claims, ttl_ms=1500)  # renewed every 0.5 s
        async with claims.kept():
            assert await claims.claim(keys) == {}  # nothing another batch claims
            assert claims.held == 38
            await asyncio.sleep(4.6)  # three TTLs: alive only because renewed (a stall of 1 s is no lapse)
            assert claims.held == 38
            assert all(sync_redis.pttl(f"ir_cache:{k}:batch") > 0 for k in keys[3:])
            other = BatchClaims(cache.redis.batch_claims)
            assert set(await other.claim(keys[:4])) == {"spec-0_00000000", "spec-3_00000003"}  # ours, to another
    assert sync_redis.get("ir_cache:spec-1_00000001:batch") == b"teamb's value"
    assert sync_redis.hgetall("ir_cache:spec-2_00000002:batch") == {b"owner": b"teamb"}
    assert claim_keys(sync_redis) == [b"ir_cache:spec-1_00000001:batch", b"ir_cache:spec-2_00000002:batch"]


async def test_a_lookup_never_waits_on_another_tools_value_at_a_claim_key(redis_url, sync_redis, cache_dir, tmp_path):
    spec = tmp_path / "petstore.md"
    spec.write_text("# Petstore\n\n## Endpoints\n- GET /pets - List pets\n")
    key, _ = CacheKey.for_spec(spec.read_text(), str(spec))
    sync_redis.set(f"ir_cache:{key}:batch", b"pid 1 on elsewhere but not a claim")  # no TTL, not our token's shape
    generator = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=generator) as cache:
        assert (await cache.lookup(spec.read_text(), str(spec), wait_for_batch=False)).tier == "generator"
    assert generator.calls == 1
    assert sync_redis.get(f"ir_cache:{key}:batch") == b"pid 1 on elsewhere but not a claim"


@pytest.mark.server
async def test_a_user_without_compare_and_delete_warms_without_claims_and_says_so(redis_server, redis_url, tmp_path,
                                                                                ircache_logs):
    """The README's read-write user less its script rights (and no WATCH/MULTI/EXEC, no DELIFEQ/DELEX):
    a claim could not be let go of safely, so none is taken; said once, and the warm goes on."""
    admin = redis.Redis.from_url(redis_url)
    rules = ["+ping", "+get", "+set", "+exists", "+getrange", "+scan", "+unlink", "+memory|usage"]
    admin.execute_command("ACL", "SETUSER", "noclaims", "on", ">pw", "resetkeys", "-@all", *rules, "~ir_cache:*")
    try:
        paths = write_specs(tmp_path / "specs", 2)
        url = f"redis://noclaims:pw@127.0.0.1:{redis_server.port}/0"
        with AnsweringAPI(KEY, responder=offline_responder()) as api:
            async with cache_over(api, url, tmp_path / "cache") as cache:
                result = await cache.warm_batch([(p.read_text(), str(p)) for p in paths])
        assert (result.submitted, result.succeeded, result.failures) == (2, 2, ())
        said = [r.getMessage() for r in ircache_logs.records if "batch claims" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("Cannot take this warm's batch claims in Redis ("), said
        assert claim_keys(admin) == []
    finally:
        admin.acl_deluser("noclaims")
        admin.close()
