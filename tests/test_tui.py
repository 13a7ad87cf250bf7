"""Pilot tests of the dashboard's bindings, over a real Redis and real files."""

import dataclasses
import json
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.screens.detail import DetailScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.help import HelpScreen
from ircache_tui.tui.screens.warm import WarmScreen
from ircache_tui.tui.services import Services
from ircache_tui.tui.widgets.log_pane import MAX_LINES, LogPane
from tests.support.foreign import entry_value
from tests.support.generators import CountingGenerator
from tests.support.redis_server import RedisServer
from tests.support.tui import every_page, cell, static_text, table_keys, until

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


@pytest.fixture
async def cache(redis_url, cache_dir, specs):
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as c:
        for path in sorted(specs.glob("*.md")):
            await c.get_application_ir(path.read_text(), str(path))
        yield c


def keys_of(specs):
    return {p.stem: cache_key(p.read_text(), str(p)) for p in specs.glob("*.md")}


def make_app(cache, *, read_only: bool = False, **options) -> IRCacheApp:
    """The app over `cache`; read_only=True gives it a read-only twin of the cache (same Redis and
    dir), which the app opens and closes itself, as the command line's app does."""
    options.setdefault("watch", False)
    if read_only:
        cache = IRCache(settings=dataclasses.replace(cache.settings, read_only=True), generator=cache.generator)
    return IRCacheApp(Services(cache=cache, **options))


async def loaded(pilot, app, n: int | None = None) -> None:
    await until(pilot, lambda: app.first_page_shown and (n is None or len(app.keys_pane.rows) == n),
                what="first page")


async def test_dashboard_shows_keys_files_and_status(cache, specs):
    app = make_app(cache)
    keys = keys_of(specs)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        assert sorted(table_keys(app, "keys")) == sorted(keys.values())
        key = keys["petstore-spec"]
        assert cell(app, "keys", key, "spec") == "petstore-spec"
        assert cell(app, "keys", key, "ttl") in ("1h 00m", "59m 59s")
        assert cell(app, "keys", key, "generator") == "counting"
        assert cell(app, "keys", key, "memory").endswith("KiB")
        await until(pilot, lambda: len(app.query_one("#files").entries) == 2, what="files")
        assert cell(app, "files", key, "redis") == "warm"
        await until(pilot, lambda: "2 IR keys" in static_text(app, "#status"), what="stats")
        status = static_text(app, "#status")
        assert "● up" in status and "TTL 1h 00m" in status and "gen counting" in status
        assert "live: notifications" in status
        assert "scan complete" in static_text(app, "#keys-footer")


async def test_flush_selected_spec_redis_only(cache, specs, sync_redis, cache_dir):
    app = make_app(cache)
    keys = keys_of(specs)
    sync_redis.set("ir_cache:petstore-spec_v2_0a1b2c3d", entry_value())
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 3)
        table = app.query_one("#keys-table")
        table.move_cursor(row=table.get_row_index(keys["petstore-spec"]))
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush modal")
        assert "Redis: 1 key · filesystem: 1 file" in static_text(app, "#flush-counts")
        await pilot.press("y")
        await until(pilot, lambda: keys["petstore-spec"] not in table_keys(app, "keys"), what="row removed")
    assert not sync_redis.exists(f"ir_cache:{keys['petstore-spec']}")
    assert sync_redis.exists(f"ir_cache:{keys['ecommerce-api-spec-human']}", "ir_cache:petstore-spec_v2_0a1b2c3d") == 2
    assert (cache_dir / f"{keys['petstore-spec']}.json").exists()  # Redis only by default


async def test_flush_all_both_tiers_keeps_other_keys(cache, specs, sync_redis, cache_dir):
    app = make_app(cache)
    sync_redis.set("session:1", "keep")
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush modal")
        assert "ALL" in static_text(app, "#flush-title")
        app.screen.query_one("#tier-both").value = True
        await pilot.press("y")
        await until(pilot, lambda: not table_keys(app, "keys"), what="all rows removed")
        await until(pilot, lambda: app.query_one("#keys").has_class("-empty"), what="empty state")
    assert [k.decode() for k in sync_redis.keys("*")] == ["session:1"]
    assert not list(cache_dir.glob("*.json"))


async def test_flush_modal_cancel_deletes_nothing(cache, sync_redis):
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FlushScreen))
        await pilot.pause(0.2)
    assert sync_redis.dbsize() == 2


@pytest.mark.slow
async def test_long_flush_shows_progress_and_can_be_cancelled(cache, sync_redis):
    total = 300_000
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(total):
        pipe.set(f"ir_cache:bulk_{i:08x}", entry_value())
        if i % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), timeout=30)
        # the confirm and cancel actions, not pilot.press: the pilot waits for the app to go idle,
        # which a 300,000-key flush (posting its progress) does only once it is done
        app.screen.action_confirm()
        await until(pilot, lambda: app.flush_bar.running, what="flush started")
        assert app.query_one("#flush-bar").has_class("-active")
        await until(pilot, lambda: app.query_one("#flush-progress").progress > 0, what="progress")
        assert app.check_action("cancel_flush", ()) is True  # esc is offered while it runs
        app.action_cancel_flush()
        await until(pilot, lambda: not app.flush_bar.running, what="flush stopped", timeout=30)
        assert not app.query_one("#flush-bar").has_class("-active")
        assert "Flush of all IR entries cancelled" in "\n".join(line.text for line in app.query_one(LogPane).lines)
    left = sync_redis.dbsize()
    assert 0 < left < total + 2


async def test_regenerate_selected(cache, specs, sync_redis):
    app = make_app(cache)
    key = keys_of(specs)["petstore-spec"]
    before = json.loads(sync_redis.get(f"ir_cache:{key}"))["generated_at"]
    calls = cache.generator.calls
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        table = app.query_one("#keys-table")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("r")
        await until(pilot, lambda: cache.generator.calls == calls + 1, what="generation")
        await until(pilot, lambda: json.loads(sync_redis.get(f"ir_cache:{key}"))["generated_at"] != before)


async def test_regenerate_without_spec_file_says_why(cache, specs):
    app = make_app(cache)
    key = keys_of(specs)["petstore-spec"]
    (specs / "petstore-spec.md").unlink()
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        table = app.query_one("#keys-table")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("r")
        await until(pilot, lambda: any("Cannot regenerate petstore-spec" in n.message for n in app._notifications))


async def test_warm_from_filesystem(cache, specs, sync_redis):
    sync_redis.flushall()
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 0)
        await until(pilot, lambda: len(app.query_one("#files").entries) == 2)
        assert {cell(app, "files", k, "redis") for k in keys_of(specs).values()} == {"cold"}
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WarmScreen), what="warm asks first")
        await pilot.press("y")  # copy only, the default
        await until(pilot, lambda: len(table_keys(app, "keys")) == 2, what="keys warmed")
        await until(pilot, lambda: {cell(app, "files", k, "redis") for k in keys_of(specs).values()} == {"warm"})
    assert sync_redis.dbsize() == 2


async def test_delete_and_reset_ttl(cache, specs, sync_redis):
    keys = keys_of(specs)
    sync_redis.expire(f"ir_cache:{keys['ecommerce-api-spec-human']}", 100)
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        table = app.query_one("#keys-table")
        table.move_cursor(row=table.get_row_index(keys["ecommerce-api-spec-human"]))
        await pilot.press("t")
        await until(pilot, lambda: sync_redis.ttl(f"ir_cache:{keys['ecommerce-api-spec-human']}") > 3000)
        await until(pilot, lambda: cell(app, "keys", keys["ecommerce-api-spec-human"], "ttl") in ("1h 00m", "59m 59s"))
        table.move_cursor(row=table.get_row_index(keys["petstore-spec"]))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="delete asks first")
        assert sync_redis.exists(f"ir_cache:{keys['petstore-spec']}")
        await pilot.press("y")
        await until(pilot, lambda: keys["petstore-spec"] not in table_keys(app, "keys"))
    assert not sync_redis.exists(f"ir_cache:{keys['petstore-spec']}")


@pytest.mark.slow
async def test_pages_and_filter(cache, sync_redis):
    for i in range(7):
        sync_redis.set(f"ir_cache:alpha_{i:08x}", entry_value())
    sync_redis.set("ir_cache:alpha_v2_0000000a", entry_value())
    app = make_app(cache, page_size=3)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app)
        assert "page 1 " in static_text(app, "#keys-footer")
        seen = await every_page(pilot, app)
        assert sorted(seen) == sorted(k.decode().split(":", 1)[1] for k in sync_redis.keys("ir_cache:*"))
        footer = static_text(app, "#keys-footer")
        assert "scan complete" in footer
        last = app.keys_pane._page.number
        assert last >= 4  # 10 keys, 3 a page
        await pilot.press("p")
        await until(pilot, lambda: f"page {last - 1} " in static_text(app, "#keys-footer"), what="previous page")

        await pilot.press("slash")
        await pilot.press(*"=alpha", "enter")  # exact: not alpha_v2
        await until(pilot, lambda: "/=alpha · " in static_text(app, "#keys-footer"))
        assert sorted(await every_page(pilot, app)) == [f"alpha_{i:08x}" for i in range(7)]

        await pilot.press("slash")
        await pilot.press("ctrl+u", *"pha_v")  # as you type: a substring, no enter needed
        await until(pilot, lambda: "/pha_v · " in static_text(app, "#keys-footer"), what="substring filter")
        assert await every_page(pilot, app) == ["alpha_v2_0000000a"]
        await pilot.press("enter")

        await pilot.press("slash")
        await pilot.press("ctrl+u", *"*_0000000a", "enter")  # a glob: alpha_v2's hash only
        await until(pilot, lambda: "/*_0000000a · " in static_text(app, "#keys-footer"), what="glob filter")
        assert await every_page(pilot, app) == ["alpha_v2_0000000a"]


async def test_detail_screen_and_corrupt_entry(cache, specs, sync_redis):
    keys = keys_of(specs)
    sync_redis.set("ir_cache:broken_0a1b2c3d", b'{"schema_version":1,not json')  # ours, broken past its head
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 3)
        table = app.query_one("#keys-table")
        table.focus()
        table.move_cursor(row=table.get_row_index(keys["petstore-spec"]))
        await until(pilot, lambda: "Petstore API" in static_text(app, "#detail"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = static_text(app.screen, "#detail-json")
        assert '"name": "Petstore API"' in body and "entities" in static_text(app.screen, "#detail-summary")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))
        table.move_cursor(row=table.get_row_index("broken_0a1b2c3d"))
        await until(pilot, lambda: "corrupt entry" in static_text(app, "#detail"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert "corrupt entry: not JSON" in static_text(app.screen, "#detail-summary")


async def test_read_only_disables_destructive_bindings(cache, sync_redis):
    app = make_app(cache, read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        for action in ("flush_spec", "flush_all", "regenerate", "warm", "prune"):
            assert app.check_action(action, ()) is None
        for action in ("delete", "reset_ttl", "set_ttl"):
            assert app.keys_pane.check_action(action, ()) is None
        assert app.check_action("refresh", ()) is True
        await pilot.press("F", "d", "w")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, (FlushScreen, ConfirmScreen, WarmScreen))
        assert "READ-ONLY" in static_text(app, "#status")
        disabled = {b.binding.action for b in app.screen.active_bindings.values() if not b.enabled}
        assert {"flush_spec", "flush_all", "regenerate", "warm", "delete", "reset_ttl"} <= disabled
        said = [n.message for n in app._notifications]
        assert any("Read-only session: flush all is disabled" in t for t in said), said
        assert any("Read-only session: delete is disabled" in t for t in said), said
    assert sync_redis.dbsize() == 2


@pytest.mark.server  # keyspace notifications
async def test_keys_changed_elsewhere_appear_live(cache, sync_redis):
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        await pilot.pause(0.3)  # the notification listener subscribes
        sync_redis.set("ir_cache:newcomer_0a1b2c3d", json.dumps({"generated_at": "x"}), ex=50)
        await until(pilot, lambda: "newcomer_0a1b2c3d" in table_keys(app, "keys"), what="new key shown")
        assert "3 keys here" in static_text(app, "#keys-footer")
        assert cell(app, "keys", "newcomer_0a1b2c3d", "ttl") in ("50s", "49s")
        sync_redis.delete("ir_cache:newcomer_0a1b2c3d")
        await until(pilot, lambda: "newcomer_0a1b2c3d" not in table_keys(app, "keys"), what="deleted key removed")
        sync_redis.set("ir_cache:shortlived_0a1b2c3d", entry_value(), px=300)
        await until(pilot, lambda: "shortlived_0a1b2c3d" in table_keys(app, "keys"))
        await until(pilot, lambda: "shortlived_0a1b2c3d" not in table_keys(app, "keys"), what="expired key removed")


async def test_polling_mode_picks_up_changes(cache, sync_redis):
    app = make_app(cache, live="poll", poll_interval=0.3)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        assert "live: polling 0.3s" in static_text(app, "#status")
        sync_redis.set("ir_cache:polled_0a1b2c3d", entry_value())
        await until(pilot, lambda: "polled_0a1b2c3d" in table_keys(app, "keys"))


async def test_redis_down_banner_and_recovery(cache_dir, tmp_path):
    server = RedisServer().start()
    try:
        async with IRCache(redis_url=server.url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
            await cache.get_application_ir("# A\n", "a.md")
            app = make_app(cache, health_interval=0.2, live="poll", poll_interval=0.3)
            async with app.run_test(size=(140, 40)) as pilot:
                await loaded(pilot, app, 1)
                server.stop()
                banner = app.query_one("#banner")
                await until(pilot, lambda: banner.has_class("-down"), what="banner")
                assert "Redis is down" in static_text(app, "#banner")
                assert "● down" in static_text(app, "#status")
                await until(pilot, lambda: len(app.query_one("#files").entries) == 1)  # files pane still works
                app.action_refresh()
                await pilot.pause(0.3)
                server.start()  # empty: the key is gone, the file is not
                redis.Redis.from_url(server.url).set("ir_cache:back_0a1b2c3d", entry_value())
                await until(pilot, lambda: not banner.has_class("-down"), what="recovery", timeout=15)
                await until(pilot, lambda: table_keys(app, "keys") == ["back_0a1b2c3d"], what="refill")
    finally:
        server.stop()


async def test_log_pane_is_bounded_and_shows_cache_lines(cache, specs):
    import logging

    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        await until(pilot, lambda: any("Dashboard ready" in l.text for l in app.query_one(LogPane).lines))
        for i in range(MAX_LINES + 500):
            logging.getLogger("ircache").info(f"line {i}")  # each its own text (one template would be one line)
        await until(pilot, lambda: any(f"line {MAX_LINES + 499}" in l.text for l in app.query_one(LogPane).lines))
        assert len(app.query_one(LogPane).lines) <= MAX_LINES


async def test_help_screen_lists_every_binding(cache):
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = static_text(app, "HelpScreen Static")
        keys = {line.split("│")[0].strip() for line in text.splitlines() if "│" in line}
        for key in ("f", "F", "r", "w", "d", "t", "P", "n", "p", "/", "enter", "ctrl+r", "escape", "?", "q"):
            assert key in keys, (key, text)
        assert "Flush the selected spec" in text


async def test_80x24_every_pane_usable(cache, specs):
    app = make_app(cache, spec_dirs=[specs])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app, 2)
        assert app.screen.has_class("-narrow")
        for tab, pane in (("tab-keys", "keys"), ("tab-files", "files"), ("tab-specs", "specs")):
            app.query_one("#tabs").active = tab
            await pilot.pause(0.1)
            region = app.query_one(f"#{pane}-table").region
            assert region.width >= 60 and region.height >= 5, (pane, region)
        assert app.query_one(LogPane).region.height >= 3
        assert app.query_one("#status").region.height >= 1


async def test_specs_pane_keeps_textuals_watch(cache, specs):
    """The pane's `watch` flag (follow the spec dirs or not) lives beside Textual's DOMNode.watch
    (reactive watchers, data_bind), not over it: the method still watches."""
    app = make_app(cache, spec_dirs=[specs])
    seen: list[str] = []
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app)
        light = "textual-light" if app.theme != "textual-light" else "textual-dark"
        app.specs_pane.watch(app, "theme", lambda theme: seen.append(theme), init=False)
        app.theme = light
        await until(pilot, lambda: seen == [light], what="the pane's theme watcher")
        assert app.specs_pane.watcher is not None and app.specs_pane.watcher.watch is False  # make_app's watch=False


async def test_empty_cache_says_what_to_do(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as empty:
        app = make_app(empty)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 0)
            assert app.query_one("#keys").has_class("-empty")
            assert "No IR keys in Redis yet" in static_text(app, "#keys .empty")


async def test_edited_spec_appears_without_a_key_press_and_prunes(cache, specs, sync_redis):
    from ircache_tui.tui.screens.prune import PruneScreen

    app = make_app(cache, spec_dirs=[specs], watch=True)
    spec = specs / "petstore-spec.md"
    old_key = keys_of(specs)["petstore-spec"]
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        await until(pilot, lambda: len(app.specs_pane.statuses) == 2 and
                    {s.state.value for s in app.specs_pane.statuses.values()} == {"in redis"}, what="specs in redis")
        await pilot.pause(0.5)  # the watcher is now following the directory
        spec.write_text(spec.read_text() + "\n- DELETE /pets/{id} - Remove a pet (auth)\n")
        new_key = cache_key(spec.read_text(), str(spec))
        await until(pilot, lambda: new_key in table_keys(app, "keys"), what="new key shown live")
        await until(pilot, lambda: any(s.cache_key == new_key and s.stale == 1 and s.state.value == "in redis"
                                       for s in app.specs_pane.statuses.values()), what="spec shows 1 stale")

        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, PruneScreen), what="prune confirmation")
        await pilot.press("y")
        await until(pilot, lambda: old_key not in table_keys(app, "keys"), what="stale key pruned")
    assert not sync_redis.exists(f"ir_cache:{old_key}")
    assert sync_redis.exists(f"ir_cache:{new_key}")


@pytest.mark.server  # notifications of the embedded server
async def test_dashboard_turns_on_notifications_of_the_embedded_server(tmp_path):
    """The embedded server starts without them; even a read-only dashboard may turn them on there."""
    async with IRCache(cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
        client = redis.Redis.from_url(cache.redis.url)
        try:
            assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
            app = make_app(cache, read_only=True)
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: "live: notifications" in static_text(app, "#status"), what="live mode")
                await pilot.pause(0.3)  # the listener subscribes
                client.set("ir_cache:arrived_0a1b2c3d", entry_value())
                await until(pilot, lambda: "arrived_0a1b2c3d" in table_keys(app, "keys"), what="key shown live")
            flags = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
            assert set("Kg$x") <= set(flags)
        finally:
            client.close()


@pytest.mark.server  # CONFIG of this server
async def test_read_only_dashboard_leaves_an_external_servers_config_alone(tmp_path):
    with RedisServer() as server:
        client = redis.Redis.from_url(server.unix_url)
        async with IRCache(redis_url=server.unix_url, cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
            app = make_app(cache, read_only=True, poll_interval=0.3)
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: "live: polling 0.3s" in static_text(app, "#status"), what="polling")
                client.set("ir_cache:polled_0a1b2c3d", entry_value())
                await until(pilot, lambda: "polled_0a1b2c3d" in table_keys(app, "keys"), what="key found by polling")
        assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
        client.close()


@pytest.mark.server  # notifications after a restart
async def test_live_updates_come_back_after_a_restart_that_forgot_the_config(tmp_path):
    """Notifications set with CONFIG SET are gone after a restart: the dashboard sets them again."""
    server = RedisServer().start()
    try:
        async with IRCache(redis_url=server.url, cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
            app = make_app(cache, health_interval=0.2, poll_interval=3600)  # a poll would never come in time
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: "live: notifications" in static_text(app, "#status"), what="live mode")
                server.stop()
                await until(pilot, lambda: app.banner.has_class("-down"), what="banner")
                server.start()  # a fresh process: notify-keyspace-events is "" again
                await until(pilot, lambda: not app.banner.has_class("-down"), what="recovery", timeout=15)
                client = redis.Redis.from_url(server.url)
                await until(pilot, lambda: set("Kg$x") <= set(
                    client.config_get("notify-keyspace-events")["notify-keyspace-events"]), what="config set again")
                await pilot.pause(0.3)  # the listener subscribes again
                client.set("ir_cache:after_0a1b2c3d", entry_value())
                await until(pilot, lambda: "after_0a1b2c3d" in table_keys(app, "keys"), what="key shown live")
                assert "live: notifications" in static_text(app, "#status")
                client.close()
    finally:
        server.stop()


@pytest.mark.server  # notifications
async def test_started_while_redis_was_down_it_switches_from_polling_to_notifications(tmp_path):
    server = RedisServer()  # not started yet
    try:
        async with IRCache(redis_url=server.url, cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
            app = make_app(cache, health_interval=0.2, poll_interval=3600)
            async with app.run_test(size=(140, 40)) as pilot:
                await until(pilot, lambda: app.banner.has_class("-down"), what="banner")
                assert "live: polling" in static_text(app, "#status")
                server.start()
                await until(pilot, lambda: "live: notifications" in static_text(app, "#status"), what="switch",
                            timeout=15)
                assert app.keys_pane._poll_timer is None  # the poll loop stopped
                await pilot.pause(0.3)
                client = redis.Redis.from_url(server.url)
                client.set("ir_cache:late_0a1b2c3d", entry_value())
                await until(pilot, lambda: "late_0a1b2c3d" in table_keys(app, "keys"), what="key shown live")
                client.close()
    finally:
        server.stop()
