"""Small screens and small tells: the dashboard at 80x24, the sort and filter always in sight, and
toggles that read right without colour. Pilot over a real Redis and real files; what is checked is
the screen as text, without colour, as a monochrome terminal or a copied screen shows it."""

import re

from textual.app import App, ComposeResult
from textual.widgets import Checkbox, RadioSet

from ircache_tui import IRCache
from ircache_tui.fmt import human_bytes
from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.specs.stale import StaleReport
from ircache_tui.tui.screens.detail import DetailScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.prune import PruneScreen
from tests.support.monitor import CommandLog
from tests.support.redis_server import RedisServer
from tests.support.tui import cell, screen_text, static_text, table_keys, until
from tests.test_tui import loaded, make_app

SPEC_ROW = re.compile(r"\bspec-\d\d\b")


async def _twenty(cache) -> None:
    for i in range(20):
        await cache.get_application_ir(f"# spec {i}\n\nA pet store number {i}.", f"/tmp/specs/spec-{i:02d}.md")


async def test_80x24_shows_a_dozen_rows_a_one_line_status_and_help_and_quit(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=OfflineGenerator()) as cache:
        await _twenty(cache)
        app = make_app(cache)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot, app, 20)
            await until(pilot, lambda: "20 IR keys" in screen_text(app).splitlines()[0], what="the totals")
            lines = screen_text(app).splitlines()
            assert app.status_bar.region.height == 1, lines[:3]
            assert lines[0].startswith(" Redis ● up │ 20 IR keys"), lines[0]
            rows = [line for line in lines if SPEC_ROW.search(line)]
            assert len(rows) >= 12, "\n".join(lines)
            # (the footer draws its keys a refresh after the bindings settle: wait for them, on a loaded machine)
            await until(pilot, lambda: "? Help" in screen_text(app).splitlines()[-1]
                        and "q Quit" in screen_text(app).splitlines()[-1], what="? and q on the footer")
            await until(pilot, lambda: app.query_one("#log").region.height == 4, what="the short log")  # border + 3
            assert not app.detail_pane.display or app.detail_pane.region.width == 0  # folded away
            await pilot.press("enter")  # the detail is one key away
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail view")


async def test_a_wide_tall_screen_keeps_its_log(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=OfflineGenerator()) as cache:
        await _twenty(cache)
        app = make_app(cache)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 20)
            assert app.query_one("#log").region.height == 6
            assert app.status_bar.region.height == 1
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: app.query_one("#log").region.height == 4, what="the short log")


async def test_filter_and_sort_lead_the_footer_and_the_sorted_header_has_an_arrow(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=OfflineGenerator()) as cache:
        await _twenty(cache)
        app = make_app(cache)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot, app, 20)

            def line_with(text: str) -> str:
                return next((line for line in screen_text(app).splitlines() if text in line), "")

            assert "Spec▲" in line_with("Hash")  # sorted by spec, A first
            await pilot.press("slash", *"spec-1", "enter")
            await until(pilot, lambda: line_with("page 1").strip().startswith("/spec-1 · page 1"),
                        what="the filter on the footer")
            for _ in range(4):  # spec → ttl → memory → cost → hits
                await pilot.press("s")
            await until(pilot, lambda: line_with("page 1").strip().startswith("/spec-1 · ▼hits · page 1"),
                        what="the sort on the footer")
            header = line_with("Hash")
            assert "Hits▼" in header and "Spec▲" not in header and "Spec" in header, header
            await pilot.press("s", "s")  # last hit, then generated (oldest first)
            await until(pilot, lambda: line_with("page 1").strip().startswith("/spec-1 · ▲generated · page 1"),
                        what="the next sort")
            assert "Hits▼" not in line_with("Hash")


class Dialogs(App[None]):
    def compose(self) -> ComposeResult:
        return iter(())


def _toggle_lines(app) -> list[str]:
    return [line.strip() for line in screen_text(app).splitlines() if "(" in line or "[" in line]


async def test_an_unticked_box_reads_unticked_and_only_the_chosen_radio_reads_chosen():
    app = Dialogs()
    async with app.run_test(size=(100, 40)) as pilot:
        report = StaleReport(redis_stale=["a_00000001"], redis_orphaned=["b_00000002"])
        app.push_screen(PruneScreen(report, "/specs"))
        await until(pilot, lambda: isinstance(app.screen, PruneScreen), what="the prune dialog")
        await pilot.pause()
        box = next(line for line in screen_text(app).splitlines() if "Also delete" in line)
        assert "[ ] Also delete" in box and "X" not in box and "x" not in box.split("Also")[0], box
        app.screen.query_one("#orphans", Checkbox).value = True
        await pilot.pause()
        box = next(line for line in screen_text(app).splitlines() if "Also delete" in line)
        assert "[x] Also delete" in box, box
        app.pop_screen()

        app.push_screen(FlushScreen("petstore", 3, 2))
        await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="the flush dialog")
        await pilot.pause()

        def options() -> dict[str, str]:
            lines = screen_text(app).splitlines()
            return {name: next(line for line in lines if name in line) for name in ("Redis only", "Filesystem only", "Both")}

        shown = options()
        assert "(•) Redis only" in shown["Redis only"], shown
        assert "( ) Filesystem only" in shown["Filesystem only"] and "( ) Both" in shown["Both"], shown
        app.screen.query_one("#tier-both").value = True  # the set unpresses the others
        await until(pilot, lambda: app.screen.query_one(RadioSet).pressed_button.id == "tier-both")
        await pilot.pause()
        shown = options()
        assert "( ) Redis only" in shown["Redis only"] and "(•) Both" in shown["Both"], shown


async def test_the_detail_shows_the_rows_ttl_counting_down_its_memory_and_hits(redis_url, cache_dir, specs):
    spec = specs / "petstore-spec.md"
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=OfflineGenerator()) as cache:
        for _ in range(3):  # a generation, then two hits (counted in Redis when the cache closes)
            await cache.get_application_ir(spec.read_text(), str(spec))
    now = [1000.0]  # the dashboard's monotonic clock, moved by the test
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=OfflineGenerator()) as cache:
        # no live updates: nothing re-reads the row (its TTL would then start again from the clock moved)
        app = make_app(cache, monotonic=lambda: now[0], live="poll", poll_interval=3600)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 1)
            row = app.keys_pane.rows[app.keys_pane.selected_key()]
            assert row.hits == 2 and row.memory

            def pane() -> str:
                return " ".join(screen_text(app).split())

            await until(pilot, lambda: "hits 2 (last " in pane(), what="the figures in the pane")
            shown = pane()
            assert re.search(r"ttl (59m \d\ds|1h 00m)", shown), shown
            assert f"memory {human_bytes(row.memory)}" in shown, shown
            now[0] += 25 * 60  # 25 minutes on: the pane counts down with no round trip
            await until(pilot, lambda: re.search(r"ttl 3[45]m \d\ds", pane()), what="the countdown")

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the full view")
            await pilot.pause()
            full = " ".join(screen_text(app).split())
            assert re.search(r"ttl 3[45]m \d\ds", full) and "hits 2 (last " in full, full
            assert f"memory {human_bytes(row.memory)}" in full, full


async def test_the_filesystem_tab_says_unknown_for_warmth_while_redis_is_down(tmp_path, specs):
    server = RedisServer().start()
    try:
        async with IRCache(redis_url=server.url, cache_dir=tmp_path / "ir", generator=OfflineGenerator()) as cache:
            for path in sorted(specs.glob("*.md")):
                await cache.get_application_ir(path.read_text(), str(path))
        dashboard = IRCache(redis_url=server.url, cache_dir=tmp_path / "ir", generator=OfflineGenerator())
        app = make_app(dashboard, health_interval=0.3, live="poll", poll_interval=0.3)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 2)

            def warmth() -> list[str]:
                return [cell(app, "files", key, "redis") for key in table_keys(app, "files")]

            await until(pilot, lambda: warmth() == ["warm", "warm"], what="both warm")
            server.stop()
            await until(pilot, lambda: app.redis_up is False, what="down")
            await until(pilot, lambda: warmth() == ["unknown", "unknown"], what="warmth unknown")
            assert "warm unknown: Redis is down" in static_text(app, "#files-footer")
            app.action_refresh()  # a listing while down says unknown too
            await pilot.pause(0.5)
            assert warmth() == ["unknown", "unknown"]
            server.start()  # back, empty: the files are cold now, and say so
            await until(pilot, lambda: app.redis_up is True, what="up again", timeout=30)
            await until(pilot, lambda: warmth() == ["cold", "cold"], what="cold after the restart")
    finally:
        server.stop()


# -- a corrupt or foreign key's first bytes, escaped ---------------------------------------------------
EVIL = b"\x1b]52;c;ZXZpbA==\x07[bold red]HACK[/] \x1b[2J\xff" + b"x" * 3000  # OSC 52, markup, a clear, not UTF-8


async def test_read_raw_head_reads_a_bounded_head_and_changes_nothing(redis_url, sync_redis, cache_dir):
    sync_redis.set("ir_cache:evil_0a1b2c3d", EVIL)
    sync_redis.hset("ir_cache:hashed_0a1b2c3d", mapping={"a": "1"})
    log = CommandLog(redis_url).start()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        mark = log.mark()
        raw = await cache.read_raw_head("evil_0a1b2c3d")
        hashed = await cache.read_raw_head("hashed_0a1b2c3d")
        gone = await cache.read_raw_head("gone_0a1b2c3d")
        small = await cache.read_raw_head("evil_0a1b2c3d", limit=10)
    log.stop()
    assert (raw.kind, raw.head, raw.more) == ("string", EVIL[:1024], True)
    assert (hashed.kind, hashed.head, hashed.more) == ("other", b"", False)
    assert gone.kind == "none" and (small.head, small.more) == (EVIL[:10], True)
    sent = [c.split()[0].upper() for c in log.since(mark)]
    assert "GET" not in sent and "GETRANGE" in sent, sent  # never the whole value
    assert not set(sent) & {"SET", "DEL", "UNLINK", "EXPIRE", "HSET"}, sent
    assert sync_redis.get("ir_cache:evil_0a1b2c3d") == EVIL and sync_redis.hgetall("ir_cache:hashed_0a1b2c3d")


async def test_a_foreign_keys_first_bytes_show_escaped_in_the_detail(redis_url, sync_redis, cache_dir):
    sync_redis.set("ir_cache:evil_0a1b2c3d", EVIL)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        app = make_app(cache)
        async with app.run_test(size=(140, 40)) as pilot:
            await loaded(pilot, app, 1)
            assert app.keys_pane.rows["evil_0a1b2c3d"].problem == "foreign"
            await until(pilot, lambda: app.detail_pane.shown is not None and app.detail_pane.shown.raw is not None,
                        what="the raw head")
            escaped = r"\x1b]52;c;ZXZpbA==\x07[bold red]HACK[/] \x1b[2J\xffxxx"
            shown = "".join(static_text(app, "#detail").split())  # the pane alone (it sits beside the table)
            assert "first1,024bytes(morefollow)" in shown and escaped.replace(" ", "") in shown, shown
            assert "\x1b" not in str(app.detail_pane.render())  # nothing the terminal would act on
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the full view")
            await pilot.pause()
            full = "".join(screen_text(app).split())
            assert escaped.replace(" ", "") in full and "notours" in full, screen_text(app)
