"""Savings by lever: hits, the batch discount, prompt caching (reads less the write premium) and
incremental (none yet), on each entry, summed by `stats --json` and counted by Prometheus."""

from __future__ import annotations

import json

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.metrics import CacheMetrics
from ircache_tui.cache.results import Savings
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from tests.support.cli import cli_env, run_cli
from tests.support.messages_api import MessagesAPI, message

KEY = "the-loopback-key"
IR = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}
# claude-sonnet-4-6: $3 / $15 per million, reads $0.30, 5-minute writes $3.75
WRITE = {"service_tier": "standard", "cache_creation_input_tokens": 1_300,
         "cache_creation": {"ephemeral_5m_input_tokens": 1_300, "ephemeral_1h_input_tokens": 0}}
READ_IN_BATCH = {"service_tier": "batch", "cache_read_input_tokens": 1_300, "cache_creation_input_tokens": 0}
COST_A = 0.084375  # 4,500 + 75,000 + 4,875 micro-dollars
COST_B = 0.039945  # (4,500 + 75,000 + 390) / 2


def value(metrics: CacheMetrics, lever: str) -> float:
    return metrics.registry.get_sample_value("ircache_saved_usd_total", {"lever": lever}) or 0.0


async def test_each_lever_is_recorded_summed_and_counted(redis_url, cache_dir, tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("# Shop A\n\nEntities: Product.\n")
    b.write_text("# Shop B\n\nEntities: Order.\n")
    metrics = CacheMetrics()
    with MessagesAPI(api_key=KEY) as api:
        api.script(message(json.dumps(IR), input_tokens=1_500, output_tokens=5_000, usage=WRITE),
                   message(json.dumps(IR), input_tokens=1_500, output_tokens=5_000, usage=READ_IN_BATCH))
        gen = AnthropicGenerator(model="claude-sonnet-4-6", api_key=KEY, base_url=api.base_url)
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
            metrics.attach(cache)
            made_a = (await cache.lookup(a.read_text(), str(a))).entry.usage
            made_b = (await cache.lookup(b.read_text(), str(b))).entry.usage
            for _ in range(2):
                assert (await cache.lookup(a.read_text(), str(a))).tier == "redis"
            savings = Savings.of(await cache.hit_totals(), await cache.generation_totals())
    # on each entry: the write premium is a small loss, the batch read a saving at the batch tier
    assert (made_a.cost_usd, made_a.batch_saved_usd, made_a.prompt_cache_saved_usd) == (COST_A, None, -0.000975)
    assert (made_b.cost_usd, made_b.batch_saved_usd, made_b.prompt_cache_saved_usd) == (COST_B, COST_B, 0.001755)
    assert savings == Savings(hits=2 * COST_A, batch=COST_B, prompt_cache=0.00078, incremental=0.0)
    assert savings.total == pytest.approx(2 * COST_A + COST_B + 0.00078, abs=1e-9)
    # Prometheus: a counter only grows, so the unrepaid write premium is not subtracted
    assert value(metrics, "hits") == pytest.approx(2 * COST_A)
    assert value(metrics, "batch") == pytest.approx(COST_B)
    assert value(metrics, "prompt_cache") == pytest.approx(0.001755)
    assert value(metrics, "incremental") == 0
    # stats --json, from another process: the hits flushed to Redis, the generations on disk
    env = cli_env(redis_url, cache_dir)
    done = run_cli("stats", "--json", env=env)
    assert done.returncode == 0, done.stderr
    by = json.loads(done.stdout)["saved"]["by"]
    assert by == {"hits": 2 * COST_A, "batch": COST_B, "prompt_cache": 0.00078, "incremental": 0.0}
    text = run_cli("stats", env=env).stdout
    assert "by lever  hits $0.1688, batch $0.0399, prompt cache $0.0008, incremental $0" in text
