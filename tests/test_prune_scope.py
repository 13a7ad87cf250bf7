"""Prune on a shared prefix: only stale entries of my specs go; other pipelines' entries stay.

A real Redis holding thousands of IR keys of spec names that are not under
my directory (another team's pipeline shares `ir_cache:`), non-IR keys under
the prefix and outside it, and a cache dir with another spec's entry file.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from ircache_tui import IRCache, cache_key
from ircache_tui.cache.results import DeleteResult
from ircache_tui.specs import discover_specs, find_stale, prune
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.prune import PruneScreen
from ircache_tui.tui.services import Services
from tests.support.cli import cli_env, run_cli
from tests.support.generators import CountingGenerator
from tests.support.tui import static_text, table_keys, until

FOREIGN = 3_000
NOT_IR = ["ir_cache:foo", "ir_cache:team-b-spec_0a1b2c3d:lock", "other:petstore-spec_0a1b2c3d", "ir_cache_other:x_0a1b2c3d"]


def foreign_keys() -> list[str]:
    return [f"ir_cache:team-b-spec-{n}_{n:08x}" for n in range(FOREIGN)]


@pytest.fixture
async def shared(redis_url, sync_redis, cache_dir, specs):
    """My two specs cached, an older hash of petstore left stale, and another team's entries beside them."""
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        petstore = specs / "petstore-spec.md"
        old_text = petstore.read_text()
        await cache.lookup(old_text, str(petstore))
        petstore.write_text(old_text + "\n- GET /pets/{id}/photos - Photos\n")
        for path in sorted(specs.glob("*.md")):
            await cache.lookup(path.read_text(), str(path))
        # another team's entry file in the same cache dir (a copy of one of ours, renamed)
        theirs = cache_dir / "team-b-spec-0_00000000.json"
        theirs.write_bytes((cache_dir / f"{cache_key(old_text, str(petstore))}.json").read_bytes())
    pipe = sync_redis.pipeline(transaction=False)
    for key in foreign_keys():
        pipe.set(key, json.dumps({"schema_version": 1, "spec_name": key}))
    for key in NOT_IR:
        pipe.set(key, "x")
    pipe.execute()
    return {"old": cache_key(old_text, str(petstore)), "foreign_file": theirs.stem}


def survivors_ok(sync_redis, cache_dir, shared, *, foreign: bool) -> None:
    assert all(sync_redis.exists(k) for k in NOT_IR), "a non-IR key was deleted"
    left = sum(sync_redis.exists(*chunk) for chunk in (foreign_keys()[i:i + 500] for i in range(0, FOREIGN, 500)))
    assert left == (FOREIGN if foreign else 0)
    assert (cache_dir / f"{shared['foreign_file']}.json").exists() is foreign


async def test_prune_keeps_entries_of_specs_not_under_my_dirs(redis_url, sync_redis, cache_dir, specs, shared):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        report = await find_stale(cache, discover_specs([specs]))
        assert report.redis_stale == [shared["old"]] and report.files_stale == [shared["old"]]
        assert len(report.redis_orphaned) == FOREIGN and report.files_orphaned == [shared["foreign_file"]]
        # found, listed, but not what a prune removes
        assert report.redis_keys == [shared["old"]] and report.files == [shared["old"]]
        assert report.kept == FOREIGN + 1
        assert await prune(cache, report) == DeleteResult(1, 1)
    assert not sync_redis.exists(f"ir_cache:{shared['old']}")
    survivors_ok(sync_redis, cache_dir, shared, foreign=True)
    assert len([k for k in sync_redis.scan_iter("ir_cache:*_*") if b":lock" not in k]) == FOREIGN + 2


async def test_orphans_go_only_when_asked(redis_url, sync_redis, cache_dir, specs, shared):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        report = await find_stale(cache, discover_specs([specs]), orphans=True)
        assert report.kept == 0 and len(report.redis_keys) == FOREIGN + 1
        assert await prune(cache, report) == DeleteResult(FOREIGN + 1, 2)
    survivors_ok(sync_redis, cache_dir, shared, foreign=False)
    mine = {cache_key(p.read_text(), str(p)) for p in specs.glob("*.md")}
    assert {k.decode().split(":", 1)[1] for k in sync_redis.scan_iter("ir_cache:*_????????")} == mine


@pytest.mark.e2e
def test_cli_dry_run_lists_them_as_kept(redis_url, sync_redis, cache_dir, specs, shared):
    env = cli_env(redis_url, cache_dir)
    dry = run_cli("prune", str(specs), "--dry-run", "-v", env=env)  # (-v: every name, not the first few)
    assert dry.returncode == 0, dry.stderr
    assert f"stale in Redis: {shared['old']}" in dry.stdout
    assert f"not under {specs} (kept) in Redis: team-b-spec-17_00000011" in dry.stdout
    assert f"kept {FOREIGN + 1} entries of specs not under {specs}" in dry.stdout
    out = run_cli("prune", str(specs), "--yes", "--json", env=env)
    data = json.loads(out.stdout)
    assert data["removed"] == {"redis": 1, "filesystem": 1} and data["orphans"] == "kept"
    assert len(data["found"]["redis"]["orphaned"]) == FOREIGN
    survivors_ok(sync_redis, cache_dir, shared, foreign=True)


@pytest.mark.parametrize("tick", [False, True], ids=["orphans kept", "orphans ticked"])
@pytest.mark.slow
async def test_dashboard_confirmation_shows_both_groups_orphans_unticked(redis_url, sync_redis, cache_dir, specs,
                                                                         shared, tick):
    cache = IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator())
    app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=False, generate_on_watch=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="first page")
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune confirmation")
        assert "1 stale entry (1 Redis key, 1 file). These go." in static_text(app, "#prune-stale")
        assert f"{FOREIGN:,} Redis keys, 1 file" in static_text(app, "#prune-orphans")
        box = app.screen.query_one("#orphans")
        assert box.value is False
        if tick:
            await pilot.click("#orphans")
            await until(pilot, lambda: box.value is True, what="box ticked")
        await pilot.click("#confirm")
        await until(pilot, lambda: any(n.message.startswith("Pruned ") for n in app._notifications),
                    what="prune finished")
        expected = f"Pruned {FOREIGN + 1:,} Redis keys, 2 files" if tick else "Pruned 1 Redis key, 1 file"
        assert any(n.message == expected for n in app._notifications)
        await until(pilot, lambda: shared["old"] not in table_keys(app, "keys"), what="pane refreshed")
    survivors_ok(sync_redis, cache_dir, shared, foreign=not tick)


def test_prune_report_with_orphans_is_a_copy():
    from ircache_tui.specs.stale import StaleReport

    report = StaleReport(["a_00000000"], ["b_00000000"], [], ["c_00000000"])
    both = report.with_orphans(True)
    assert report.redis_keys == ["a_00000000"] and report.files == [] and report.kept == 2
    assert both.redis_keys == ["a_00000000", "b_00000000"] and both.files == ["c_00000000"] and both.kept == 0
    assert dataclasses.asdict(report)["include_orphans"] is False
