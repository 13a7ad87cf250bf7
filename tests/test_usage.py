"""Usage on every entry: the tokens the Messages API reports, the measured seconds, and dollars
estimated from the price table (None for a model it does not know, never a guess)."""

from __future__ import annotations

import json

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.prices import Price, estimate_cost, price_for
from ircache_tui.settings import Settings, SettingsError
from tests.support.generators import SPEC
from tests.support.messages_api import MessagesAPI, message

KEY = "the-loopback-key"
IR = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}


def test_price_table_matches_dated_model_ids_by_prefix():
    assert price_for("claude-sonnet-4-5-20250929") == Price.of(3.0, 15.0)
    assert price_for("claude-opus-4-1") == Price.of(15.0, 75.0)
    assert price_for("claude-opus-4-5") == Price.of(5.0, 25.0)  # not claude-opus-4's price
    assert price_for("claude-unknown-9") is None and price_for(None) is None
    assert estimate_cost(Price.of(3.0, 15.0), 1_000, 2_000) == 0.033
    assert estimate_cost(Price.of(3.0, 15.0), 1_000, 2_000, cache_read_input_tokens=10_000) == 0.036
    assert estimate_cost(None, 1_000, 2_000) is None and estimate_cost(Price.of(1, 1), None, 5) is None


@pytest.mark.parametrize(
    "model, env, cost",
    [
        ("claude-sonnet-4-6", {}, (1000 * 3.0 + 2000 * 15.0) / 1e6),  # (4-5 is past its end of life)
        ("claude-mystery-1", {}, None),  # unknown model: no cost rather than a guess
        ("claude-mystery-1", {"IR_PRICE_INPUT_PER_MTOK": "1", "IR_PRICE_OUTPUT_PER_MTOK": "2"}, (1000 + 4000) / 1e6),
    ],
)
async def test_a_generated_entry_records_tokens_seconds_and_cost(model, env, cost, redis_url, cache_dir):
    settings = Settings.from_env({"IR_CACHE_DIR": str(cache_dir), **env})
    with MessagesAPI(api_key=KEY) as api:
        api.script(message(json.dumps(IR), input_tokens=1000, output_tokens=2000, delay=0.2))
        gen = AnthropicGenerator(model=model, api_key=KEY, base_url=api.base_url)
        async with IRCache(redis_url=redis_url, settings=settings, generator=gen) as cache:
            first = await cache.lookup(SPEC, "shop.md")
            again = await cache.lookup(SPEC, "shop.md")
    usage = first.entry.usage
    assert (usage.input_tokens, usage.output_tokens) == (1000, 2000)
    assert usage.duration_s >= 0.2
    assert usage.cost_usd == (pytest.approx(cost) if cost is not None else None)
    assert again.tier == "redis" and again.entry.usage == usage  # stored, and read back


async def test_a_repair_turn_counts_both_requests(redis_url, cache_dir):
    with MessagesAPI(api_key=KEY) as api:
        api.script(message("not json", input_tokens=500, output_tokens=10),
                   message(json.dumps(IR), input_tokens=700, output_tokens=900))
        gen = AnthropicGenerator(model="claude-haiku-4-5", api_key=KEY, base_url=api.base_url)
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
            usage = (await cache.lookup(SPEC, "shop.md")).entry.usage
    assert (usage.input_tokens, usage.output_tokens) == (1200, 910)
    assert usage.cost_usd == pytest.approx((1200 * 1.0 + 910 * 5.0) / 1e6)


async def test_the_offline_generator_costs_time_only(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        usage = (await cache.lookup(SPEC, "shop.md")).entry.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (0, 0, 0.0)
    assert usage.duration_s is not None and usage.duration_s >= 0


@pytest.mark.parametrize(
    "env, words",
    [
        ({"IR_PRICE_INPUT_PER_MTOK": "3"}, "go together"),
        ({"IR_PRICE_INPUT_PER_MTOK": "x", "IR_PRICE_OUTPUT_PER_MTOK": "1"}, "US dollars per million tokens"),
        ({"IR_PRICE_INPUT_PER_MTOK": "-1", "IR_PRICE_OUTPUT_PER_MTOK": "1"}, "0 or more"),
    ],
)
def test_price_overrides_are_checked(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


async def test_an_entry_written_before_usage_was_recorded_still_hits_in_both_tiers(redis_url, sync_redis, cache_dir):
    """An upgrade must not send a regeneration bill: the old shape (no `usage`) is a hit, usage unknown."""
    from ircache_tui.cache.keys import cache_key
    from tests.support.generators import CountingGenerator

    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        await cache.lookup(SPEC, "shop.md")
    key = cache_key(SPEC, "shop.md")
    old = json.loads(sync_redis.get(f"ir_cache:{key}"))
    del old["usage"]  # as every entry was written before this change
    old_bytes = json.dumps(old).encode()
    sync_redis.set(f"ir_cache:{key}", old_bytes)
    (cache_dir / f"{key}.json").write_bytes(old_bytes)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        hit = await cache.lookup(SPEC, "shop.md")
        assert hit.tier == "redis" and hit.entry.usage is None
        sync_redis.delete(f"ir_cache:{key}")
        hit = await cache.lookup(SPEC, "shop.md")
        assert hit.tier == "filesystem" and hit.entry.usage is None
    assert gen.calls == 1  # generated once, before the "upgrade"
