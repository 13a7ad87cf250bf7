"""The dashboard as an operator uses it on a busy, shared Redis: bursts, restarts, flushes, and the keys of ops tools.

Real redis-server processes, the real App under Textual's pilot. Each test
builds the dashboard's cache the way the command line does (a pool of
DASHBOARD_CONNECTIONS connections).
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import redis

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.fmt import duration_seconds
from ircache_tui.tui.screens.ttl import TtlScreen, parse_duration
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services
from tests.support.foreign import entry_value
from tests.support.generators import CountingGenerator
from tests.support.redis_server import RedisServer
from tests.support.tui import cell, static_text, table_keys, until


def dashboard_cache(url: str, cache_dir, **options) -> IRCache:
    return IRCache(redis_url=url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator(),
                   max_connections=DASHBOARD_CONNECTIONS, **options)


def make_app(cache: IRCache, **options) -> IRCacheApp:
    options.setdefault("watch", False)
    return IRCacheApp(Services(cache=cache, **options))


async def loaded(pilot, app, n: int | None = None) -> None:
    await until(pilot, lambda: app.first_page_shown and (n is None or len(app.keys_pane.rows) == n), what="first page")


def entry(spec: str, hash8: str, size: int = 0) -> bytes:
    """A value that looks like a stored entry in its first KiB (what the key pane reads), spelled
    as the cache writes it (compact, schema_version first)."""
    return json.dumps({"schema_version": 1, "spec_name": spec, "spec_hash": (hash8 * 64)[:64],
                       "generated_at": "2026-11-30T09:00:00+00:00", "generator": {"name": "offline", "model": None},
                       "application_ir": {}, "pad": "x" * size}, separators=(",", ":")).encode()


def shown(app) -> list[str]:
    """The key pane's row keys in display order (DataTable.rows is insertion order)."""
    return [row.key.value for row in app.keys_pane.table.ordered_rows]


def footer_descriptions(screen, width: int) -> list[str]:
    """What the footer shows, left to right, as far as it fits in `width` columns."""
    from textual.widgets._footer import FooterKey

    keys = sorted(screen.query(FooterKey), key=lambda k: k.region.x)
    return [k.description for k in keys if k.region.width and k.region.right <= width]


def ours(client: redis.Redis) -> list[dict]:
    return [c for c in client.client_list() if c.get("name") == "ircache-tui"]


# -- under load ------------------------------------------------------------------------------
async def test_a_burst_of_5000_writes_uses_a_few_connections_and_ends_right(redis_url, sync_redis, cache_dir):
    app = make_app(dashboard_cache(redis_url, cache_dir), stats_interval=3600)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        probe = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            samples.append(len(ours(probe)))
            stop.wait(0.02)
        probe.close()

    def burst() -> None:
        writer = redis.Redis.from_url(redis_url)
        for p in range(50):
            pipe = writer.pipeline(transaction=False)
            for i in range(100):
                pipe.set(f"ir_cache:burst-{p:02d}_{i:08x}", entry(f"burst-{p:02d}", f"{i:08x}"[:1]))
            pipe.execute()
        writer.close()

    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 0)
        await until(pilot, lambda: app.keys_pane.live_mode == "notifications", what="listening")
        await pilot.pause(0.3)
        sampler = threading.Thread(target=sample)
        sampler.start()
        downs = []
        try:
            await asyncio.to_thread(burst)
            await until(pilot, lambda: len(app.keys_pane.rows) == 100, what="a full page of the new keys")
            app.action_refresh()
            await until(pilot, lambda: app.status_bar.status.ir_keys == 5000, what="the final count", timeout=30)
            downs = [line.text for line in app.log_pane.lines if "Redis is down" in line.text]
        finally:
            stop.set()
            sampler.join()
        assert app.redis_up is True and not downs
        assert "● up" in static_text(app, "#status")
        assert "~5,000 IR keys" in static_text(app, "#keys-footer")
    assert samples and max(samples) <= DASHBOARD_CONNECTIONS, max(samples)


async def test_our_flush_of_20000_keys_does_not_refresh_them_one_by_one(redis_url, sync_redis, cache_dir):
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"ir_cache:bulk_{i:08x}", entry_value())
    pipe.execute()
    app = make_app(dashboard_cache(redis_url, cache_dir), stats_interval=3600)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 100)
        await until(pilot, lambda: app.keys_pane.live_mode == "notifications", what="listening")
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush modal")
        sync_redis.config_resetstat()
        await pilot.press("y")
        await until(pilot, lambda: not app.flush_bar.running and sync_redis.dbsize() == 0, what="flushed", timeout=60)
        await until(pilot, lambda: app.keys_pane.has_class("-empty"), what="the pane reloaded empty")
        await pilot.pause(0.5)
        # Each key a pane refreshes costs a TTL (and a GETRANGE, which the flush's own script runs
        # too, to tell entries from other keys); our own flush's 20,000 del events cost none
        stats = sync_redis.info("commandstats")
        assert stats.get("cmdstat_ttl", {}).get("calls", 0) == 0, stats.get("cmdstat_ttl")
        assert any("Flushed all IR entries: 20,000 keys from Redis" in n.message for n in app._notifications)


# -- what is on screen is true ------------------------------------------------------------------
async def test_redis_restarted_empty_while_on_page_3_leaves_no_stale_row(tmp_path):
    server = RedisServer("--notify-keyspace-events", "KEA").start()
    try:
        client = redis.Redis.from_url(server.url)
        for i in range(10):
            client.set(f"ir_cache:paged_{i:08x}", entry("paged", f"{i:08x}"[:1]))
        app = make_app(dashboard_cache(server.url, tmp_path / "ir"), page_size=3, health_interval=0.2)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 3)
            for page in (2, 3):
                await pilot.press("n")
                await until(pilot, lambda: app.keys_pane._page.number == page, what=f"page {page}")
            assert len(app.keys_pane.rows) == 3
            server.stop()
            await until(pilot, lambda: app.redis_up is False, what="down")
            assert "Redis is down since" in static_text(app, "#keys-footer")
            server.start()  # empty
            redis.Redis.from_url(server.url).set("ir_cache:after_0a1b2c3d", entry("after", "0"))
            await until(pilot, lambda: app.redis_up is True, what="back", timeout=15)
            await until(pilot, lambda: table_keys(app, "keys") == ["after_0a1b2c3d"], what="rescanned from page 1")
            assert "page 1 " in static_text(app, "#keys-footer")
            app.action_refresh()
            await pilot.pause(0.3)
            assert table_keys(app, "keys") == ["after_0a1b2c3d"]
    finally:
        server.stop()


async def test_specs_tab_follows_flush_delete_and_expiry(redis_url, sync_redis, cache_dir, specs):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as seeding:
        for path in sorted(specs.glob("*.md")):
            await seeding.get_application_ir(path.read_text(), str(path))
    keys = {p.stem: cache_key(p.read_text(), str(p)) for p in specs.glob("*.md")}
    app = make_app(dashboard_cache(redis_url, cache_dir), spec_dirs=[specs], watch=True)

    def state(spec: str) -> str:
        return next((s.state.value for s in app.specs_pane.statuses.values() if s.spec_name == spec), "")

    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot, app, 2)
        await until(pilot, lambda: {state(s) for s in keys} == {"in redis"}, what="in redis")
        table = app.keys_pane.table
        table.move_cursor(row=table.get_row_index(keys["petstore-spec"]))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: state("petstore-spec") == "filesystem only", what="followed a delete")
        sync_redis.pexpire(f"ir_cache:{keys['ecommerce-api-spec-human']}", 100)
        await until(pilot, lambda: state("ecommerce-api-spec-human") == "filesystem only", what="followed an expiry")
        app.action_show_tab("tab-specs")
        await pilot.pause(0.2)
        column = app.specs_pane.table.columns["state"]
        assert column.get_render_width(app.specs_pane.table) >= len("filesystem only") + 2  # it fits, padding too
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen))
        app.screen.query_one("#tier-fs").value = True
        await pilot.press("y")
        await until(pilot, lambda: state(app.specs_pane.selected().spec_name) == "missing", what="followed a flush")


async def test_bad_entries_are_marked_in_their_row(redis_url, sync_redis, cache_dir):
    sync_redis.hset("ir_cache:hashed_0a1b2c3d", "a", "b")
    sync_redis.set("ir_cache:junk_0a1b2c3d", b"\x00\x01 not json")
    sync_redis.set("ir_cache:moved_0a1b2c3d", entry("moved", "f"))  # spec_hash ffff… under 0a1b2c3d
    sync_redis.set("ir_cache:ancient_0a1b2c3d", entry("ancient", "0").replace(b'"schema_version":1', b'"schema_version":0'))
    # made by the dashboard's own generator (counting), and by another one (offline): served, outdated
    sync_redis.set("ir_cache:fine_0a1b2c3d", entry("fine", "0a1b2c3d").replace(b'"offline"', b'"counting"'))
    sync_redis.set("ir_cache:older_0a1b2c3d", entry("older", "0a1b2c3d"))
    sync_redis.set("ir_cache:partial_0a1b2c3d", b'{"schema_version":1,"spec_name":"partial"}')  # ours, not whole
    app = make_app(dashboard_cache(redis_url, cache_dir))
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot, app, 7)
        states = {k: cell(app, "keys", k, "state") for k in table_keys(app, "keys")}
    # another tool's hash or string under our names is foreign; ours, broken, say how
    assert states == {"hashed_0a1b2c3d": "foreign", "junk_0a1b2c3d": "foreign", "moved_0a1b2c3d": "hash ≠ key",
                      "ancient_0a1b2c3d": "old schema", "fine_0a1b2c3d": "", "partial_0a1b2c3d": "corrupt",
                      "older_0a1b2c3d": "outdated"}


# -- Redis down is a state -----------------------------------------------------------------------
async def test_redis_down_offers_the_filesystem_alone(tmp_path, specs):
    server = RedisServer().start()
    try:
        cache = dashboard_cache(server.url, tmp_path / "ir")
        async with cache:
            for path in sorted(specs.glob("*.md")):
                await cache.get_application_ir(path.read_text(), str(path))
        app = make_app(dashboard_cache(server.url, tmp_path / "ir"), health_interval=5, live="poll", poll_interval=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 2)
            # the page's "Redis answered" reaches the health controller by a few message hops: the
            # footer can only say when Redis last answered once it has heard so
            await until(pilot, lambda: app.last_answered is not None, what="an answer noted")
            server.stop()
            await until(pilot, lambda: app.redis_up is False, what="down")
            footer = static_text(app, "#keys-footer")
            assert "Redis is down since" in footer and "last answered" in footer
            await pilot.press("F")
            await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush modal while down")
            assert "Redis: unavailable" in static_text(app, "#flush-counts") and "filesystem: 2 files" in static_text(
                app, "#flush-counts")
            assert app.screen.query_one("#tier-redis").disabled and app.screen.query_one("#tier-fs").value
            await pilot.press("y")
            await until(pilot, lambda: not list((tmp_path / "ir").glob("*.json")), what="files flushed")
            await until(pilot, lambda: any("2 files from the filesystem" in n.message for n in app._notifications))
    finally:
        server.stop()


# -- what ops tools do -----------------------------------------------------------------------------
@pytest.mark.server  # largest first: this server's MEMORY USAGE
@pytest.mark.slow
async def test_sort_views_marks_copy_and_ttl(redis_url, sync_redis, cache_dir):
    for i in range(12):
        sync_redis.set(f"ir_cache:s{i:02d}_{i:08x}", entry(f"s{i:02d}", f"{i:08x}"[:1], size=100 * i), ex=1000 + 60 * i)
    sync_redis.set("ir_cache:biggest_0000000f", entry("biggest", "0", size=50_000), ex=5000)
    # (totals asked once an hour: after a delete they follow from what it says it deleted)
    app = make_app(dashboard_cache(redis_url, cache_dir), page_size=5, stats_interval=3600)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot, app, 5)
        await until(pilot, lambda: app.status_bar.status.ir_keys == 13, what="the totals")
        keys = app.keys_pane
        await pilot.press("s", "s")  # spec → ttl → memory
        assert keys.sort_by == "memory"
        sizes = [keys.rows[k].memory for k in shown(app)]
        assert sizes == sorted(sizes, reverse=True)
        await pilot.press("o")  # largest first over the whole prefix, not this page
        await until(pilot, lambda: keys.view == "largest" and shown(app)[:1] == ["biggest_0000000f"],
                    what="largest first")
        assert "largest first over the whole prefix" in static_text(app, "#keys-footer")
        await pilot.press("o")  # expiring first
        await until(pilot, lambda: shown(app)[:1] == ["s00_00000000"], what="expiring first")
        await pilot.press("o")
        await until(pilot, lambda: keys.view == "scan" and "page 1 " in static_text(app, "#keys-footer"))
        await loaded(pilot, app, 5)

        first = keys.selected_key()
        await pilot.press("c")
        assert app.clipboard == f"ir_cache:{first}"
        keys.table.move_cursor(row=0)
        await pilot.press("space", "space")  # marks two rows (the cursor moves down after each)
        marked = sorted(keys.marked)
        assert len(marked) == 2 and "2 marked" in static_text(app, "#keys-footer")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="asks first")
        assert "Delete 2 keys from Redis?" in static_text(app.screen, "Label")
        await pilot.press("y")
        await until(pilot, lambda: not any(sync_redis.exists(f"ir_cache:{k}") for k in marked), what="marked deleted")
        assert sync_redis.dbsize() == 11
        await until(pilot, lambda: app.status_bar.status.ir_keys == 11, what="the totals follow the delete")

        target = keys.selected_key()
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, TtlScreen))
        await pilot.press(*"90m", "enter")
        await until(pilot, lambda: 5390 <= sync_redis.ttl(f"ir_cache:{target}") <= 5400, what="TTL set")
        await until(pilot, lambda: cell(app, "keys", target, "ttl") in ("1h 30m", "1h 29m"), what="row updated")


def test_parse_duration():
    assert [parse_duration(t) for t in ("3600", "90m", "12h", "7d", " 5 S ")] == [3600, 5400, 43200, 604800, 5]
    for bad in ("", "0", "-5", "1w", "1.5h", "99999d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    # audit --since takes the same words, but a bare number is no time ago (seconds? a year?)
    assert duration_seconds("90m", bare_is_seconds=False) == 5400
    assert duration_seconds("30", bare_is_seconds=False) is None



@pytest.mark.slow
async def test_tab_keys_modal_footers_and_80x24(redis_url, sync_redis, cache_dir, specs):
    app = make_app(dashboard_cache(redis_url, cache_dir), spec_dirs=[specs])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app, 0)
        for key, tab in (("2", "tab-files"), ("3", "tab-specs"), ("1", "tab-keys"), ("]", "tab-files"),
                         ("[", "tab-keys"), ("[", "tab-specs")):
            await pilot.press(key)
            await until(pilot, lambda: app.tabs.active == tab, what=f"{key} → {tab}")
        footer = footer_descriptions(app.screen, 80)
        assert "Help" in footer and "Quit" in footer, footer
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen))
        await pilot.pause(0.2)
        modal_footer = footer_descriptions(app.screen, 80)
        assert "Cancel" in modal_footer and "Flush spec" not in modal_footer, modal_footer
