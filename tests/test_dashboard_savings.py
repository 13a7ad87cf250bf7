"""The dashboard shows what entries cost, how often every process hit them, and what that saved."""

from __future__ import annotations

from datetime import datetime, timezone

from ircache_tui import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.usage import Usage
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services
from tests.support.generators import CountingGenerator
from tests.support.tui import cell, static_text, until

SPECS = {"cheap": ("# Cheap\n", 0.0125, 1), "dear": ("# Dear\n", 0.063, 3), "unknown": ("# Unknown\n", None, 0)}


async def seed(redis_url, sync_redis, cache_dir) -> None:
    """Three entries of known, known and unknown cost, hit 1, 3 and 0 times by another process."""
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=3600) as other:
        for name, (text, cost, _) in SPECS.items():
            entry = (await other.lookup(text, f"{name}.md")).entry
            if cost is not None:
                entry = entry.model_copy(update={"usage": Usage(input_tokens=1000, output_tokens=2000,
                                                                  duration_s=30.0, cost_usd=cost)})
            else:
                entry = entry.model_copy(update={"usage": None})  # cached before usage was recorded
            sync_redis.set(f"ir_cache:{cache_key(text, f'{name}.md')}", entry.to_json_bytes())
        other.decoded.clear()
        for name, (text, _, hits) in SPECS.items():
            for _ in range(hits):
                assert (await other.lookup(text, f"{name}.md")).tier == "redis"


async def test_cost_hits_and_savings_are_shown_and_sortable(redis_url, sync_redis, cache_dir):
    await seed(redis_url, sync_redis, cache_dir)
    frozen = datetime.now(timezone.utc)
    cache = IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator(),
                    max_connections=DASHBOARD_CONNECTIONS)
    app = IRCacheApp(Services(cache=cache, watch=False, clock=lambda: frozen))
    async with app.run_test(size=(180, 40)) as pilot:
        await until(pilot, lambda: app.first_page_shown and len(app.keys_pane.rows) == 3, what="first page")
        key = {name: cache_key(text, f"{name}.md") for name, (text, _, _) in SPECS.items()}
        assert cell(app, "keys", key["dear"], "cost") == "$0.0630"
        assert cell(app, "keys", key["dear"], "hits") == "3"
        assert cell(app, "keys", key["cheap"], "hits") == "1"
        assert cell(app, "keys", key["unknown"], "cost") == "—"
        assert cell(app, "keys", key["unknown"], "last_hit") == "never"
        assert cell(app, "keys", key["dear"], "last_hit").endswith("s")  # seconds ago, by the frozen clock
        # 3 × $0.063 + 1 × $0.0125, over every process's 4 hits
        await until(pilot, lambda: "saved $0.2015 over 4 hits" in static_text(app, "#status"), what="savings")
        keys = app.keys_pane
        while keys.sort_by != "hits":
            await pilot.press("s")
        order = [row.value for row in keys.table.rows]
        shown = [keys.table.get_row_index(k) for k in (key["dear"], key["cheap"], key["unknown"])]
        assert shown == sorted(shown), order  # most hit first
        await pilot.press("s", "s")  # hits → last_hit → generated; back to cost with the cycle
        while keys.sort_by != "cost":
            await pilot.press("s")
        assert keys.table.get_row_index(key["dear"]) < keys.table.get_row_index(key["cheap"])


async def test_the_status_line_says_what_each_lever_saved(redis_url, sync_redis, cache_dir):
    """Entries made in a batch and with prompt-cache reads (their usage on disk, as a generation
    writes it): the status line's tooltip gives the savings by lever, as stats --json's saved.by."""
    await seed(redis_url, sync_redis, cache_dir)
    for path in cache_dir.glob("*.json"):  # the generations' own figures, as warm --batch records them
        entry = StoredEntry.model_validate_json(path.read_bytes())
        usage = Usage(input_tokens=1000, output_tokens=2000, cost_usd=0.02, service_tier="batch",
                      batch_saved_usd=0.02, prompt_cache_saved_usd=0.0015)
        path.write_bytes(entry.model_copy(update={"usage": usage}).to_json_bytes())
    cache = IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator(),
                    max_connections=DASHBOARD_CONNECTIONS)
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(180, 40)) as pilot:
        await until(pilot, lambda: app.status_bar.tooltip is not None and "by lever" in str(app.status_bar.tooltip),
                    what="the savings by lever")
        detail = str(app.status_bar.tooltip)
        # hits: 3 × $0.063 + 1 × $0.0125 (Redis's counts); three entries on disk, each $0.02 and $0.0015
        assert "saved by lever: hits $0.2015, batch $0.0600, prompt cache $0.0045, incremental $0" in detail, detail
        assert "(total $0.2660)" in detail
