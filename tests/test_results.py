"""The cache's public methods return frozen, typed results, and each one's `to_json()` is exactly
what the matching command prints with --json (run here as a real `ircache-tui` process over the
suite's redis-server): the library and the CLI say the same thing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ircache_tui import (CacheInfo, DeleteResult, FlushResult, GenerationTotals, HitCount, HitTotals, IRCache,
                         Savings, WarmResult, cache_key)
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import plant_foreign
from tests.support.generators import SPEC, CountingGenerator

pytestmark = pytest.mark.server

OTHER = "# Other\n\nA second spec.\n"
KEY = cache_key(SPEC, "shop.md")
BROKEN = "broken_0a1b2c3d"  # an entry file that is not an entry: warm reports it as failed


async def _fill(redis_url: str, cache_dir: Path) -> None:
    """Two specs in both tiers, hit a few times (the counts flushed to Redis at close)."""
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        for _ in range(3):
            await cache.lookup(SPEC, "shop.md")
        await cache.lookup(OTHER, "other.md")


def _json(*args: str, env: dict[str, str], code: int = 0) -> dict:
    out = run_cli(*args, "--json", env=env)
    assert out.returncode == code, out.stderr
    return json.loads(out.stdout)


def _frozen(value: object) -> None:
    field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


async def test_every_public_result_is_a_frozen_typed_value(redis_url, sync_redis, cache_dir):
    await _fill(redis_url, cache_dir)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        info = await cache.get_cache_info()
        totals = await cache.hit_totals()
        (counts,) = await cache.hit_counts([KEY])
        generation = await cache.generation_totals()
        sync_redis.delete(f"ir_cache:{cache_key(OTHER, 'other.md')}")
        warmed = await cache.warm_redis()
        deleted = await cache.delete_entries([KEY], [])
        flushed = await cache.clear_cache()
    results = [(info, CacheInfo), (totals, HitTotals), (counts, HitCount), (generation, GenerationTotals),
               (warmed, WarmResult), (deleted, DeleteResult), (flushed, FlushResult)]
    for value, kind in results:
        assert type(value) is kind, (value, kind)
        _frozen(value)
    with pytest.raises(TypeError):  # its sections are read-only too
        info.redis["total_keys"] = 0  # type: ignore[index]
    assert isinstance(warmed.failures, tuple)
    assert (totals.redis, counts.redis, generation.entries) == (2, 2, 2)
    assert (warmed.warmed, warmed.already_in_redis, warmed.failed) == (1, 1, 0)
    assert deleted == DeleteResult(redis=1, filesystem=0)
    assert flushed == FlushResult(redis=1, filesystem=2, foreign_kept=0)


@pytest.mark.e2e
@pytest.mark.parametrize("tiers", [(), ("--filesystem",), ("--no-redis", "--filesystem")],
                         ids=["redis", "both", "filesystem"])
async def test_flush_result_is_what_flush_json_prints(redis_url, sync_redis, cache_dir, tiers):
    env = cli_env(redis_url, cache_dir)

    async def world() -> None:  # both specs in both tiers, and another tool's keys named like entries
        sync_redis.flushall()
        await _fill(redis_url, cache_dir)
        plant_foreign(sync_redis, 2, 1)  # kept, and counted as kept

    await world()
    printed = _json("flush", "--yes", *tiers, env=env)
    await world()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir) as cache:
        result = await cache.clear_cache(redis="--no-redis" not in tiers, filesystem="--filesystem" in tiers)
    assert result.to_json() == printed
    assert printed.get("foreign_kept", 3) == 3 and printed.get("redis", 2) == 2  # (a flush that did something)


@pytest.mark.e2e
async def test_warm_result_is_what_warm_json_prints(redis_url, sync_redis, cache_dir):
    env = cli_env(redis_url, cache_dir)
    await _fill(redis_url, cache_dir)

    def emptied() -> None:  # Redis without its entries, a corrupt file on disk
        sync_redis.flushall()
        (cache_dir / f"{BROKEN}.json").write_text("not an entry")

    emptied()
    printed = _json("warm", env=env, code=1)  # exit 1: an entry failed
    emptied()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir) as cache:
        result = await cache.warm_redis()
    assert result.to_json() == {k: printed[k] for k in result.to_json()}
    assert (result.warmed, result.failed) == (2, 1) and result.failures[0].startswith(f"{BROKEN}: ")


@pytest.mark.e2e
async def test_stats_and_hits_results_are_what_stats_and_get_json_print(redis_url, sync_redis, cache_dir, tmp_path):
    env = cli_env(redis_url, cache_dir)
    await _fill(redis_url, cache_dir)
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC)
    got = _json("get", str(spec), env=env)  # a hit, counted (and flushed when it exits)
    stats = _json("stats", env=env)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, count_hits=False) as cache:
        info = (await cache.get_cache_info(outdated=True)).to_json()  # as stats asks it
        totals = await cache.hit_totals()
        generation = await cache.generation_totals()
        (counts,) = await cache.hit_counts([KEY])
    assert {k: v for k, v in stats["redis"].items() if k != "url"} == info["redis"]
    assert stats["filesystem"] == info["filesystem"]
    assert stats["generation"] == generation.to_json()
    by = stats["saved"].pop("by")
    assert {"hits": stats["hits"], "saved": stats["saved"]} == totals.to_json()
    assert by == Savings.of(totals, generation).to_json()
    assert got["hits"] == counts.to_json() == {"redis": 3, "filesystem": 0}
