"""`r` with a paid generator asks first, with what the spec's last generation cost; the offline
generator regenerates without asking (tests/test_tui.py). Pilot tests over a real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.services import Services
from tests.support.generators import PaidGenerator
from tests.support.tui import until


@pytest.fixture
async def cache(redis_url, cache_dir, specs):
    gen = PaidGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as c:
        for path in sorted(specs.glob("*.md")):
            await c.get_application_ir(path.read_text(), str(path))
        yield c


def petstore_key(specs: Path) -> str:
    path = specs / "petstore-spec.md"
    return cache_key(path.read_text(), str(path))


def priced(sync_redis, key: str, output_tokens: int, cost_usd: float) -> None:
    """Give the stored entry the usage of a paid generation (as the Anthropic generator records it)."""
    entry = json.loads(sync_redis.get(f"ir_cache:{key}"))
    entry["usage"] = {"input_tokens": 1200, "output_tokens": output_tokens, "cost_usd": cost_usd, "mode": "full"}
    sync_redis.set(f"ir_cache:{key}", json.dumps(entry, separators=(",", ":")), keepttl=True)


async def ask(pilot, app: IRCacheApp, key: str) -> ConfirmScreen:
    await until(pilot, lambda: app.first_page_shown and key in app.keys_pane.rows, what="first page")
    table = app.query_one("#keys-table")
    table.move_cursor(row=table.get_row_index(key))
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
    assert isinstance(app.screen, ConfirmScreen)
    return app.screen


async def test_r_with_a_paid_generator_asks_and_n_regenerates_nothing(cache, specs, sync_redis):
    key = petstore_key(specs)
    priced(sync_redis, key, 5000, 0.0821)
    before = sync_redis.get(f"ir_cache:{key}")
    calls = cache.generator.calls
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(140, 40)) as pilot:
        dialog = await ask(pilot, app, key)
        assert dialog.question == ("Regenerate petstore-spec with paid (paid-model-1)? "
                                   "Its last generation cost $0.0821 (5,000 output tokens).")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the dialog closed")
        await pilot.pause()
        # a start would have said so at once, and left a worker of its group running or a generation done
        assert not any("Regenerating" in n.message for n in app._notifications)
        assert not any(w.group == "generate" for w in app.workers)
    assert cache.generator.calls == calls
    assert sync_redis.get(f"ir_cache:{key}") == before


async def test_r_with_a_paid_generator_and_y_regenerates(cache, specs, sync_redis):
    key = petstore_key(specs)
    before = json.loads(sync_redis.get(f"ir_cache:{key}"))["generated_at"]
    calls = cache.generator.calls
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(140, 40)) as pilot:
        dialog = await ask(pilot, app, key)
        # made by this test generator, which reports no tokens: nothing to estimate from
        assert dialog.question.endswith("Cost unknown: no paid generation of it is cached.")
        await pilot.press("y")
        await until(pilot, lambda: cache.generator.calls == calls + 1, what="generation")
        assert any("Regenerating petstore-spec" in n.message for n in app._notifications)
        await until(pilot, lambda: json.loads(sync_redis.get(f"ir_cache:{key}"))["generated_at"] != before)
