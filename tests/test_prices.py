"""Exact prices: each usage shape priced to the micro-dollar (batch halves everything, 5-minute cache
writes 1.25x input, 1-hour writes 2x, reads at the model's read price), and the usage an answer reports
(tiers, cache writes by TTL, thinking tokens) recorded on the entry, shown by `get --json`, and priced."""

from __future__ import annotations

import json

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.prices import Price, cost_of, price_for, standard_cost_of
from ircache_tui.ir.usage import Usage
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC
from tests.support.messages_api import MessagesAPI, message

KEY = "the-loopback-key"
IR = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}
SONNET = Price.of(3.0, 15.0)  # $/MTok: input 3, output 15, read 0.30, 5 min write 3.75, 1 h write 6
NEW_SONNET = Price.of(2.0, 10.0, 0.05)  # read 0.10, writes 2.50 / 4

# (price, usage, dollars worked out by hand from the per-million prices)
SHAPES = [
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000), 0.0045 + 0.075),
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, service_tier="standard"), 0.0795),
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, service_tier="batch"), 0.03975),
    # a first request: the 1,300-token prefix written to the 5-minute cache
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_creation_input_tokens=1_300,
                   cache_creation_5m_input_tokens=1_300, cache_creation_1h_input_tokens=0), 0.0795 + 0.004875),
    # the total alone, no split: a 5-minute write
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_creation_input_tokens=1_300), 0.084375),
    # written to the 1-hour cache: 2x input
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_creation_input_tokens=1_300,
                   cache_creation_5m_input_tokens=0, cache_creation_1h_input_tokens=1_300), 0.0795 + 0.0078),
    # the later requests: read from the cache at a tenth of the input price
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_read_input_tokens=1_300), 0.0795 + 0.00039),
    # a batch request reading the cache: the discount stacks on the read price
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_read_input_tokens=1_300,
                   service_tier="batch"), (0.0795 + 0.00039) / 2),
    # a batch request writing the 1-hour cache
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, cache_creation_1h_input_tokens=1_300,
                   cache_creation_5m_input_tokens=0, cache_creation_input_tokens=1_300, service_tier="batch"),
     (0.0795 + 0.0078) / 2),
    # thinking tokens are already in output_tokens: not billed twice
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, thinking_tokens=2_000), 0.0795),
    # a model whose reads are 0.05x input, one odd token of each kind, batched: no float drift
    (NEW_SONNET, Usage(input_tokens=1, output_tokens=1, cache_read_input_tokens=1, cache_creation_5m_input_tokens=1,
                       cache_creation_1h_input_tokens=1, service_tier="batch"),
     (2.0 + 10.0 + 0.1 + 2.5 + 4.0) / 2 / 1e6),
    # Priority Tier is billed by commitment: unknown, never a guess; so are answers of several tiers
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, service_tier="priority"), None),
    (SONNET, Usage(input_tokens=1_500, output_tokens=5_000, service_tier="mixed"), None),
]


@pytest.mark.parametrize("price, usage, dollars", SHAPES)
def test_each_usage_shape_priced_to_the_micro_dollar(price, usage, dollars):
    cost = cost_of(price, usage)
    if dollars is None:
        assert cost is None
    else:
        assert round(cost * 1e6) == round(dollars * 1e6), (cost, dollars)
        assert abs(cost - dollars) < 1e-9


def test_a_batch_costs_exactly_half_over_many_generations():
    batch = [Usage(input_tokens=1_500 + i, output_tokens=5_000 + 7 * i, cache_read_input_tokens=1_301,
                   service_tier="batch") for i in range(100)]
    paid = sum(cost_of(SONNET, u) for u in batch)
    standard = sum(standard_cost_of(SONNET, u) for u in batch)
    assert round(paid * 1e6) * 2 == round(standard * 1e6)


def test_garbage_tiers_and_modes_read_as_unknown():
    usage = Usage.model_validate({"input_tokens": 1, "output_tokens": 1, "service_tier": "[red]free[/]",
                                  "mode": "\x1b]52;c;x\x07", "cache_creation_1h_input_tokens": -5})
    assert (usage.service_tier, usage.mode, usage.cache_creation_1h_input_tokens) == (None, None, None)


async def test_the_answers_usage_is_recorded_priced_and_shown(redis_url, cache_dir, tmp_path):
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC)
    reported = {"cache_read_input_tokens": 0, "cache_creation_input_tokens": 1_300, "service_tier": "standard",
                "cache_creation": {"ephemeral_5m_input_tokens": 1_300, "ephemeral_1h_input_tokens": 0},
                "output_tokens_details": {"thinking_tokens": 1_200}}
    with MessagesAPI(api_key=KEY) as api:
        api.script(message(json.dumps(IR), input_tokens=1_500, output_tokens=5_000, usage=reported))
        gen = AnthropicGenerator(model="claude-sonnet-4-6", api_key=KEY, base_url=api.base_url)
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
            made = await cache.lookup(SPEC, str(spec))
    usage = made.entry.usage
    assert (usage.cache_creation_5m_input_tokens, usage.cache_creation_1h_input_tokens) == (1_300, 0)
    assert (usage.thinking_tokens, usage.service_tier, usage.mode) == (1_200, "standard", "full")
    assert usage.cost_usd == pytest.approx(0.084375, abs=1e-9)
    # get --json shows the new fields, read back from Redis
    done = run_cli("get", str(spec), "--json", env=cli_env(redis_url, cache_dir, IR_GENERATOR="offline"))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["usage"]
    assert shown["cache_creation_5m_input_tokens"] == 1_300 and shown["thinking_tokens"] == 1_200
    assert (shown["service_tier"], shown["mode"], shown["cost_usd"]) == ("standard", "full", 0.084375)
    assert json.loads(done.stdout)["tier"] == "redis"


def test_the_table_is_dated_and_says_where_it_came_from():
    from ircache_tui.ir import prices

    assert prices.PRICES_AS_OF and prices.PRICES_SOURCE.startswith("https://")
    assert price_for("claude-sonnet-4-6-20260101") == SONNET
    assert price_for("claude-3-haiku-20240307") is None  # its cache prices follow no multiplier


async def test_a_prefix_too_short_to_cache_is_said_once(ircache_logs):
    nothing_cached = {"cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    with MessagesAPI(api_key=KEY) as api:
        api.script(*(message(json.dumps(IR), usage=nothing_cached) for _ in range(2)),
                   message(json.dumps(IR), usage={"cache_read_input_tokens": 1_300}))
        gen = AnthropicGenerator(model="claude-haiku-4-5", api_key=KEY, base_url=api.base_url)
        for name in ("a", "b", "c"):
            await gen.generate_with_usage(SPEC, name)
    said = [r.getMessage() for r in ircache_logs.records if "Prompt caching" in r.getMessage()]
    assert len(said) == 1 and "claude-haiku-4-5 cached none" in said[0], said
