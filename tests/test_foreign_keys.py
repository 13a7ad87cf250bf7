"""Only entries are touched: a key of our grammar (`{prefix}:{spec}_{hash8}`) that holds something
other than an entry (another team's string or hash under the shared prefix) is another tool's. It is
never counted as an entry (stats, the status bar, confirmations, metrics), never flushed, pruned,
deleted, expired or overwritten; it is shown in the keys pane as foreign and counted apart.

300 foreign strings and 300 foreign hashes under the prefix, beside real entries, through `F`, `d`,
`t`, `flush`, `prune`, `stats`, the metrics and the status bar.
"""

from __future__ import annotations

import json

import pytest

from ircache_tui import ForeignKey, IRCache
from ircache_tui.cache.metrics import CacheMetrics
from ircache_tui.cache.results import DeleteResult
from ircache_tui.fmt import plural
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import plant_foreign
from tests.support.generators import CountingGenerator
from tests.support.tui import cell, static_text, table_keys, until

pytestmark = [pytest.mark.server, pytest.mark.e2e]  # entries told from foreign keys server-side, in the walk

STRINGS = HASHES = 300


@pytest.fixture
def shared(redis_url, sync_redis, specs, tmp_path):
    """Every example spec cached by a run of ours, and another team's 600 keys named like entries
    (some named like entries of our own specs: `petstore-spec_…`)."""
    env = cli_env(redis_url, tmp_path / "cache")
    warm = run_cli("warm", str(specs), env=env)
    assert warm.returncode == 0, warm.stderr
    foreign = plant_foreign(sync_redis, STRINGS, HASHES, spec="teamb")
    namesakes = [f"ir_cache:petstore-spec_{0xf0000000 + i:08x}".encode() for i in range(10)]  # named like ours
    for i, key in enumerate(namesakes):
        sync_redis.set(key, b"not an entry") if i % 2 else sync_redis.hset(key, "owner", "team-b")
    foreign += namesakes
    entries = [k for k in sync_redis.scan_iter("ir_cache:*") if k not in set(foreign) and b":hits" not in k
               and b":stats:" not in k]
    assert len(entries) == len(list(specs.glob("*.md")))
    return env, foreign, entries


def test_stats_flush_and_prune_count_and_keep_them_apart(shared, sync_redis, specs):
    env, foreign, entries = shared
    stats = run_cli("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    redis_info = json.loads(stats.stdout)["redis"]
    assert (redis_info["total_keys"], redis_info["foreign_keys"]) == (len(entries), len(foreign))
    assert "teamb" not in " ".join(redis_info["specs"])
    text = run_cli("stats", env=env).stdout
    assert f"IR keys   {len(entries)}" in text and "610 keys under the prefix that are not IR entries" in text

    # prune, even of every spec not under the dir: another tool's keys are not entries of any spec
    dry = run_cli("prune", str(specs), "--orphans", "--dry-run", "--json", env=env)
    found = json.loads(dry.stdout)["found"]["redis"]
    assert found == {"stale": [], "orphaned": []}, found
    assert run_cli("prune", str(specs), "--orphans", "--yes", env=env).returncode == 0

    one = run_cli("flush", "petstore-spec", "--yes", "--json", env=env)
    assert json.loads(one.stdout) == {"redis": 1, "foreign_kept": 10}
    every = run_cli("flush", "--yes", env=env)
    assert every.returncode == 0, every.stderr
    assert f"flushed ALL IR entries: {plural(len(entries) - 1, 'Redis key')}" in every.stdout
    assert "kept 610 keys under the prefix that are not IR entries (another tool's values)" in every.stdout
    assert sync_redis.exists(*foreign) == len(foreign)  # every one of them, untouched
    assert sync_redis.type(foreign[STRINGS]) == b"hash" and sync_redis.hget(foreign[STRINGS], "owner") == b"team-b"


async def test_the_library_refuses_to_delete_expire_or_overwrite_one(shared, sync_redis, redis_url, tmp_path):
    _, foreign, entries = shared
    string_key = foreign[0].decode()[len("ir_cache:"):]
    hash_key = foreign[STRINGS].decode()[len("ir_cache:"):]
    before = {k: (sync_redis.dump(k), sync_redis.ttl(k)) for k in foreign[:1] + foreign[STRINGS:STRINGS + 1]}
    metrics = CacheMetrics()
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "cache") as cache:
        for key in (string_key, hash_key):
            with pytest.raises(ForeignKey):
                await cache.delete_entry(key, "redis")
            with pytest.raises(ForeignKey):
                await cache.reset_ttl(key, 60)
            assert await cache.in_redis(key) is False
            with pytest.raises(ForeignKey):
                await cache.read_entry(key)
        assert await cache.delete_entries([string_key, hash_key], []) == DeleteResult(0, 0)
        await metrics.refresh(cache)
    assert metrics.registry.get_sample_value("ircache_entries", {"tier": "redis"}) == len(entries)
    assert {k: (sync_redis.dump(k), sync_redis.ttl(k)) for k in before} == before


async def test_the_dashboard_shows_them_foreign_counts_them_apart_and_F_keeps_them(shared, sync_redis, redis_url,
                                                                                    tmp_path):
    _, foreign, entries = shared
    cache = IRCache(redis_url=redis_url, cache_dir=tmp_path / "cache", ttl=3600, generator=CountingGenerator(),
                    max_connections=DASHBOARD_CONNECTIONS)
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: f"{len(entries)} IR keys" in static_text(app, "#status"), what="stats")
        assert "(+610 not ours)" in static_text(app, "#status")

        # a page of the keys pane: another tool's keys are rows marked foreign, entries are not
        await until(pilot, lambda: app.first_page_shown, what="first page")
        rows = table_keys(app, "keys")
        names = {k.decode()[len("ir_cache:"):] for k in foreign}
        shown_foreign = [k for k in rows if k in names]
        assert shown_foreign and all(cell(app, "keys", k, "state") == "foreign" for k in shown_foreign)
        assert all(cell(app, "keys", k, "state") != "foreign" for k in rows if k not in names)

        # `d` on a foreign row: asked, then refused in one line; the key stays
        victim = shown_foreign[0]
        # by its row on screen: `rows` is the order the rows came in (SCAN's, which differs from
        # server to server), not the order they are shown in
        app.keys_pane.table.move_cursor(row=app.keys_pane.table.get_row_index(victim))
        assert app.keys_pane.selected_key() == victim
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the delete question")
        await pilot.press("y")
        try:
            await until(pilot, lambda: any("not an IR entry" in str(n.message) for n in app._notifications),
                        what="the refusal")
        except AssertionError:
            raise AssertionError([str(n.message) for n in app._notifications])
        assert sync_redis.exists(f"ir_cache:{victim}")

        # F: the confirmation says how many entries go and how many keys are kept
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="the flush question")
        counts = static_text(app, "#flush-counts")
        assert f"Redis: {len(entries)} keys" in counts and "610 keys under the prefix" in counts, counts
        await pilot.press("y")
        await until(pilot, lambda: any("Flushed all IR entries" in str(n.message) for n in app._notifications),
                    what="the flush")
        done = next(str(n.message) for n in app._notifications if "Flushed all IR entries" in str(n.message))
        assert f"{len(entries)} keys from Redis" in done and "kept 610 keys under the prefix" in done, done
        await until(pilot, lambda: "0 IR keys" in static_text(app, "#status"), what="the totals after the flush")
    assert sync_redis.exists(*foreign) == len(foreign)


def test_warm_and_get_never_overwrite_one_at_an_entrys_own_key(shared, sync_redis, specs):
    """Another tool's value at the very key of one of our specs: `warm` lists it as not copied
    (exit 1), `get` is answered by the filesystem, and the value stays as it was."""
    env, _, entries = shared
    run_cli("flush", "--yes", env=env)
    target = next(k for k in entries if k.startswith(b"ir_cache:petstore-spec_"))
    sync_redis.hset(target, mapping={"owner": "team-b"})
    before = sync_redis.dump(target)
    warm = run_cli("warm", str(specs), "--json", env=env)
    result = json.loads(warm.stdout)
    assert warm.returncode == 1 and result["failed"] == 1 == len(result["failures"]), warm.stdout
    assert "not an IR entry (another tool's key?)" in result["failures"][0]
    assert result["warmed"] == len(entries) - 1
    got = run_cli("get", str(specs / "petstore-spec.md"), "--json", env=env)
    assert got.returncode == 0 and json.loads(got.stdout)["tier"] == "filesystem", got.stderr
    assert sync_redis.dump(target) == before
