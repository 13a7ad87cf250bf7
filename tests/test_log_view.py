"""The dashboard's log as a real view: `L` enlarges it, `/` searches it, runs of one shape
collapse to one line with a count. Pilot tests over a real Redis; lines come through the real
`ircache` logger (and its redacting filter), as the cache's own lines do."""

import logging

import pytest

from ircache_tui import IRCache, redact
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import Services
from ircache_tui.tui.widgets.log_pane import MAX_LINES
from textual.content import Content

from tests.support.generators import CountingGenerator
from tests.support.redis_server import RedisServer
from tests.support.tui import static_text, until

log = logging.getLogger("ircache")
# the watcher's own per-spec warning (watch/spec_handler.py), the one a wrong password repeats per spec
PER_SPEC = "spec %s: cannot generate its IR: %s"


@pytest.fixture
async def cache(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as c:
        yield c


def title(app) -> str:
    """The log's border title as shown (the property hands it back as markup)."""
    markup = app.log_pane.border_title
    return Content.from_markup(markup).plain if markup else ""


def shown(app) -> list[str]:
    return [line.text for line in app.log_pane.lines]


async def ready(pilot, app) -> None:
    await until(pilot, lambda: app.first_page_shown and any("Dashboard ready" in t for t in shown(app)),
                what="the dashboard")


async def test_L_enlarges_the_log_past_half_the_screen_and_back(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(200, 60)) as pilot:
        await ready(pilot, app)
        small = app.log_pane.region.height
        assert small <= 6
        await pilot.press("L")
        await until(pilot, lambda: app.log_pane.region.height > 30, what="the log enlarged")
        assert app.focused is app.log_pane.view  # it scrolls from the keyboard at once
        assert app.query_one("Footer").region.height == 1  # the footer stays
        assert app.query_one("#keys-table").region.height == 0  # the panes make room
        await pilot.press("L")
        await until(pilot, lambda: app.log_pane.region.height == small, what="the log small again")
        assert app.focused is app.query_one("#keys-table")


async def test_the_enlarged_log_scrolls_from_the_keyboard(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        for i in range(200):
            log.info(f"filler line {i}")  # each its own text: 200 lines
        await until(pilot, lambda: "filler line 199" in shown(app)[-1], what="the lines")
        await pilot.press("L")
        view = app.log_pane.view
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, what="at the end")
        await pilot.press("home")
        await until(pilot, lambda: view.scroll_y == 0, what="the top")
        await pilot.press("pagedown")
        await until(pilot, lambda: view.scroll_y > 0, what="a page down")
        await pilot.press("end")
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y, what="the end again")


async def test_search_highlights_and_n_N_move_between_matches(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        for i in range(150):
            log.info(f"filler line {i}")
            if i in (10, 70, 140):
                log.warning(f"Redis read of needle-{i} failed")
        await until(pilot, lambda: "filler line 149" in shown(app)[-1], what="the lines")
        await pilot.press("L", "slash")
        await until(pilot, lambda: app.focused is app.log_pane.box, what="the search box")
        await pilot.press(*"needle")
        await pilot.press("enter")
        view = app.log_pane.view
        await until(pilot, lambda: view.current is not None, what="a match")
        assert "needle-140" in view.current.text  # the newest first: a log is read from its end
        assert app.focused is view
        assert "needle · 3 of 3" in title(app)
        lines = shown(app)
        top = view.scroll_y
        assert top <= lines.index(view.current.text) < top + view.size.height  # in view
        await pilot.press("N")
        await until(pilot, lambda: "needle-70" in view.current.text, what="the previous match")
        assert "2 of 3" in title(app)
        await pilot.press("N", "N")
        await until(pilot, lambda: "needle-140" in view.current.text, what="wrapped around")
        await pilot.press("n")
        await until(pilot, lambda: "needle-10" in view.current.text, what="next wraps to the oldest")
        assert view.scroll_y <= lines.index(view.current.text)
        await pilot.press("escape")  # forget the search
        await until(pilot, lambda: not view.search_text and not title(app), what="search cleared")


async def test_a_search_for_what_is_not_there_says_so(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("L", "slash", *"[red]nothing", "enter")
        await until(pilot, lambda: title(app), what="the title")
        assert "/[red]nothing · 0 found" in title(app)  # text, not markup


async def test_252_warnings_of_one_template_are_one_line_with_a_count(cache, caplog):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot, app)
        before = len(shown(app))
        with caplog.at_level(logging.WARNING, logger="ircache"):
            for i in range(252):
                log.warning(PER_SPEC, f"api-{i:03d}.md", "127.0.0.1:6379 refused the password (wrong password, "
                                                         "or wrong user name)")
        log.info("Dashboard still here")
        await until(pilot, lambda: "Dashboard still here" in shown(app)[-1], what="the lines")
        lines = shown(app)
        assert len(lines) == before + 2, lines[before:]
        run = lines[-2]
        assert "WARNING" in run
        assert "252 × spec …: cannot generate its IR: … (last: api-251.md, 127.0.0.1:6379 refused" in run
        # only the view collapses: the log itself has all 252, verbatim
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spec api-")]
        assert len(logged) == 252
        assert logged[-1] == ("spec api-251.md: cannot generate its IR: 127.0.0.1:6379 refused the password "
                              "(wrong password, or wrong user name)")


async def test_only_runs_of_one_shape_collapse(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot, app)
        log.warning(PER_SPEC, "a.md", "x")
        log.warning(PER_SPEC, "b.md", "x")
        log.info("something else")
        log.warning(PER_SPEC, "c.md", "x")  # a new run: the one before ended
        log.warning("%s", "placeholders only")  # nothing in common but %s: not a shape
        log.warning("%s", "say nothing alike")
        log.info("same words")
        log.info("same words")  # the same line again: a run too
        await until(pilot, lambda: "2 × same words" in shown(app)[-1], what="the lines")
        tail = [t.split(" ", 2)[2].strip() for t in shown(app)[-6:]]
        assert tail == ["2 × spec …: cannot generate its IR: … (last: b.md, x)", "something else",
                        "spec c.md: cannot generate its IR: x", "placeholders only", "say nothing alike",
                        "2 × same words"]


async def test_the_view_stays_bounded(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot, app)
        for i in range(MAX_LINES + 300):
            log.info(f"line {i}")
        await until(pilot, lambda: f"line {MAX_LINES + 299}" in shown(app)[-1], what="the lines")
        assert len(app.log_pane.lines) == MAX_LINES
        assert shown(app)[0].endswith("line 300")


async def test_a_word_password_is_not_masked_in_the_banners_own_words(cache_dir):
    """A Redis password `wrong`: the banner says "wrong password", the URL shows ***."""
    redact.reset()
    try:
        with RedisServer(password="right") as server:
            url = f"redis://:wrong@127.0.0.1:{server.port}/0"
            cache = IRCache(redis_url=url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator())
            app = IRCacheApp(Services(cache=cache, watch=False))
            async with app.run_test(size=(200, 40)) as pilot:
                await until(pilot, lambda: app.banner.has_class("-down"), what="the banner")
                banner = static_text(app, "#banner")
                assert "refused the password (wrong password, or wrong user name)" in banner, banner
                assert banner.count("***") == 1 and ":***@127.0.0.1" in banner  # the password where it is one
                await until(pilot, lambda: any("Redis is down" in t for t in shown(app)), what="the log line")
                (down,) = [t for t in shown(app) if "Redis is down" in t]
                assert ":***@" in down and "(wrong password, or wrong user name)" in down
    finally:
        redact.reset()


async def test_the_log_follows_its_end_until_one_scrolls_up(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(pilot, app)
        view = app.log_pane.view
        log.info("a line wider than the view " + "x" * 300)  # a horizontal scrollbar: one row less
        for i in range(80):  # more than the enlarged view holds
            log.info(f"after it {i}")
        await until(pilot, lambda: "after it 79" in shown(app)[-1], what="the lines")
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, what="the end in view")
        await pilot.press("L")
        await until(pilot, lambda: app.log_pane.region.height > 20 and view.scroll_y == view.max_scroll_y,
                    what="enlarged, at the end")
        await pilot.press("up")
        await until(pilot, lambda: view.scroll_y < view.max_scroll_y, what="scrolled up")
        where = view.scroll_y
        log.info("one more")
        await until(pilot, lambda: "one more" in shown(app)[-1])
        await pilot.pause(0.1)
        assert view.scroll_y == where  # reading older lines: the view stays put
        await pilot.press("end")
        log.info("and another")
        await until(pilot, lambda: "and another" in shown(app)[-1] and view.scroll_y == view.max_scroll_y,
                    what="following again")
