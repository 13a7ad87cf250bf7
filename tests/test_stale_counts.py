"""One count of stale entries: the watcher's log, the Specs tab, `P` and `prune` say the same number.

Real spec files in two directories, a real Redis, entries in both tiers for several specs with older
versions; then a spec file is deleted and another edited. A stale entry is a `{spec}_{hash8}` of a spec
under the directories whose files no longer have that hash, counted once whether Redis, the disk or
both hold it; a deleted spec's entries are "not under DIR (kept)", as the README says.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.prune import PruneScreen
from ircache_tui.tui.services import Services
from tests.support.cli import cli_env, run_cli
from tests.support.generators import CountingGenerator
from tests.support.tui import static_text, until

TOTAL = re.compile(r"\((\d+) in all; prune removes them\)")


def text(name: str, where: str, version: int) -> str:
    return (f"# {name.title()} API\n\nKept in {where}.\n\n## Entities\n\n### Thing\n- id: uuid (primary key)\n\n"
            f"## Endpoints\n- GET /things - List things\n\nVersion {version}.\n")


def in_both_tiers(sync_redis, cache_dir, key: str) -> tuple[bool, bool]:
    return bool(sync_redis.exists(f"ir_cache:{key}")), (cache_dir / f"{key}.json").exists()


@pytest.mark.slow
async def test_watcher_specs_tab_and_prune_count_stale_entries_alike(redis_url, sync_redis, cache_dir, tmp_path,
                                                                    ircache_logs):
    mine, also = tmp_path / "mine", tmp_path / "also"
    mine.mkdir()
    also.mkdir()
    alpha, bravo, charlie = (mine / f"{n}.md" for n in ("alpha", "bravo", "charlie"))
    twin = also / "alpha.md"  # the same spec name in a second directory, with a text of its own
    keys: dict[str, list[str]] = {}
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for path in (alpha, bravo, charlie, twin):  # versions 1 and 2 cached, both tiers: each version 1 is stale
            for version in (1, 2):
                path.write_text(text(path.stem, path.parent.name, version))
                await cache.lookup(path.read_text(), str(path))
                keys.setdefault(str(path), []).append(cache_key(path.read_text(), str(path)))

        app = IRCacheApp(Services(cache=cache, spec_dirs=[mine, also], watch=True))
        async with app.run_test(size=(160, 40)) as pilot:
            watcher = None

            def settled() -> bool:
                return watcher is not None and watcher.idle

            await until(pilot, lambda: app.first_page_shown and len(app.specs_pane.statuses) == 4
                        and {s.state.value for s in app.specs_pane.statuses.values()} == {"in redis"},
                        what="the four specs in Redis")
            watcher = app.specs_pane.watcher
            await until(pilot, lambda: "4 stale (P prunes)" in static_text(app, "#specs-footer"),
                        what="4 stale in the Specs tab (alpha's two version 1s, bravo's, charlie's)")

            bravo.unlink()  # its entries are no longer stale: not under the dirs, kept
            await until(pilot, lambda: any(s.path.name == "bravo.md" and s.state.value == "deleted"
                                           for s in watcher.statuses.values()), what="bravo deleted")
            await until(pilot, settled, what="the watcher idle")
            charlie.write_text(text("charlie", "mine", 3))  # version 2 joins version 1 as stale
            keys[str(charlie)].append(cache_key(charlie.read_text(), str(charlie)))
            await until(pilot, lambda: any(s.cache_key == keys[str(charlie)][-1] and s.state.value == "in redis"
                                           and s.stale == 2 for s in watcher.statuses.values()), what="charlie v3")
            await until(pilot, settled, what="the watcher idle")
            stale = sorted([keys[str(alpha)][0], keys[str(twin)][0], *keys[str(charlie)][:2]])

            # the Specs tab
            await until(pilot, lambda: "4 stale (P prunes)" in static_text(app, "#specs-footer"),
                        what="the Specs tab's count")
            # the watcher's log: the last count it said is the same number
            said = [m.group(1) for r in ircache_logs.records if (m := TOTAL.search(r.getMessage()))]
            assert said and said[-1] == "4", said
            # the dashboard's P
            await pilot.press("P")
            await until(pilot, lambda: isinstance(app.screen, PruneScreen), what="the prune confirmation")
            assert "4 stale entries (4 Redis keys, 4 files)" in static_text(app, "#prune-stale")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, PruneScreen), what="the confirmation closed")

            # prune from another process: the same number, and exactly those entries go
            env = cli_env(redis_url, cache_dir)
            dry = await asyncio.to_thread(run_cli, "prune", str(mine), str(also), "--dry-run", env=env)
            assert dry.returncode == 0, dry.stderr
            assert "4 stale entries (4 Redis keys, 4 files)" in dry.stdout
            out = await asyncio.to_thread(run_cli, "prune", str(mine), str(also), "--yes", "--json", env=env)
            assert out.returncode == 0, out.stderr
            data = json.loads(out.stdout)
            assert data["stale_entries"] == 4
            assert sorted(data["found"]["redis"]["stale"]) == stale == sorted(data["found"]["filesystem"]["stale"])
            assert data["removed"] == {"redis": 4, "filesystem": 4}
            assert all(in_both_tiers(sync_redis, cache_dir, k) == (False, False) for k in stale)
            kept = [k for ks in keys.values() for k in ks if k not in stale]  # current ones, and bravo's
            assert len(kept) == 5 and all(in_both_tiers(sync_redis, cache_dir, k) == (True, True) for k in kept)

            # and the dashboard sees it go
            await until(pilot, lambda: "stale" not in static_text(app, "#specs-footer")
                        and all(s.stale == 0 for s in watcher.statuses.values()), what="nothing stale")


@pytest.mark.slow
async def test_without_file_watching_the_specs_tab_follows_our_flush(redis_url, sync_redis, cache_dir, tmp_path):
    """`--no-watch`: our own `f` (Redis only) moves the spec to "filesystem only" and its stale count
    to what the cache dir still holds, without ctrl+r; another spec's count stays."""
    from ircache_tui.tui.screens.flush import FlushScreen

    specs = tmp_path / "specs"
    specs.mkdir()
    alpha, bravo = specs / "alpha.md", specs / "bravo.md"
    keys: dict[str, list[str]] = {}
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for path in (alpha, bravo):
            for version in (1, 2):
                path.write_text(text(path.stem, "specs", version))
                await cache.lookup(path.read_text(), str(path))
                keys.setdefault(path.stem, []).append(cache_key(path.read_text(), str(path)))
    (cache_dir / f"{keys['alpha'][0]}.json").unlink()  # alpha's stale version: in Redis only
    sync_redis.delete(f"ir_cache:{keys['bravo'][0]}")  # bravo's: on disk only

    cache = IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator())
    app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=False))
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.first_page_shown and "2 stale (P prunes)" in static_text(app, "#specs-footer"),
                    what="alpha's and bravo's stale versions")
        statuses = app.specs_pane.statuses
        app.action_show_tab("tab-specs")
        table = app.specs_pane.table
        table.move_cursor(row=table.get_row_index(str(alpha)))
        await until(pilot, lambda: app.picked() is not None and app.picked().spec_name == "alpha", what="alpha picked")
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="the flush dialog")
        await pilot.press("y")  # Redis only (the default)
        await until(pilot, lambda: statuses[str(alpha)].state.value == "filesystem only" and statuses[str(alpha)].stale == 0
                    and "1 stale (P prunes)" in static_text(app, "#specs-footer"), what="the Specs tab follows")
        assert (statuses[str(bravo)].state.value, statuses[str(bravo)].stale) == ("in redis", 1)
        assert not sync_redis.keys("ir_cache:alpha_*") and (cache_dir / f"{keys['alpha'][1]}.json").exists()
