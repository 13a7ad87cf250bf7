"""Key pages fill themselves (issue 19, step 4): a new user on a loaded, shared Redis.

~30,000 keys of others under the prefix (other specs' entries, other tools' values under our
names, names that are not ours at all), keys outside it, and one spec with 14 entries. A page
scans until it is whole or the scan is complete, saying how far it has got meanwhile; its
footer's "scanned" is the number of keys under the prefix the walk examined; a reload never
shows "No IR keys" before a complete scan found none; a load that fails keeps the place.
Real redis-server (the suite's), real App under Pilot; a time budget of 0 makes every SCAN step a
slice of its own, so the progress is seen whatever the machine's speed.
"""

from __future__ import annotations

import re
import uuid

import pytest
import redis
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import Notify

from ircache_tui import IRCache
from ircache_tui.cache.browse import Filling, glob_regex
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.services import Services
from ircache_tui.tui.widgets.keys import KeysPane
from tests.support.foreign import FOREIGN_STRINGS, entry_value
from tests.support.generators import CountingGenerator
from tests.support.tui import scanning, static_text, table_keys, until

TARGET = [f"target_{i:08x}" for i in range(14)]
OTHERS = 30_000
SCANNED = re.compile(r"([\d,]+) keys? under the prefix scanned")


def plant_crowd(client: redis.Redis) -> int:
    """30,000 keys of others under the prefix, 2,000 outside it, the target spec's 14 entries; how
    many keys there are under the prefix."""
    pipe = client.pipeline(transaction=False)
    for i in range(OTHERS):
        kind = i % 3
        if kind == 0:
            pipe.set(f"ir_cache:other{i % 40}_{i:08x}", entry_value())  # other specs' entries
        elif kind == 1:
            pipe.set(f"ir_cache:teamb-{i}_{i:08x}", FOREIGN_STRINGS[i % len(FOREIGN_STRINGS)])  # not entries
        else:
            pipe.set(f"ir_cache:session:{i}", b"x")  # not of our grammar at all
        if i % 15 == 0:
            pipe.set(f"session:{i}", b"outside the prefix")
        if i % 5000 == 4999:
            pipe.execute()
    for key in TARGET:
        pipe.set(f"ir_cache:{key}", entry_value())
    pipe.execute()
    return len(client.keys("ir_cache:*"))  # the test's own count: KEYS, which the product never sends


def scanned_in(text: str) -> int | None:
    found = SCANNED.search(text)
    return int(found.group(1).replace(",", "")) if found else None


class Seen:
    """What the key pane showed, read as each message arrives (so after the one before was handled)."""

    def __init__(self) -> None:
        self.app: IRCacheApp | None = None
        self.footers: list[str] = []
        self.no_keys_shown: list[str] = []  # footers under which the "No IR keys" hint showed
        self.loaded = 0  # whole pages the pane was handed
        self.failed: list[str] = []  # the loads that failed: "next", "reload"...
        self.notes: list[str] = []
        self._counted: dict[int, Message] = {}  # by id, held: an id is not reused while its message lives

    def __call__(self, message: Message) -> None:
        name = type(message).__name__
        if id(message) in self._counted:  # a message bubbling up (pane, tabs, screen, app): once
            return
        if isinstance(message, Notify) or name in ("_PageLoaded", "_LoadFailed"):
            self._counted[id(message)] = message
        if isinstance(message, Notify):
            self.notes.append(message.notification.message)
        if name == "_PageLoaded":
            self.loaded += 1
        elif name == "_LoadFailed":
            self.failed.append(message.which)
        pane = getattr(self.app, "keys_pane", None)
        if pane is None or not pane.is_mounted:
            return
        try:  # the pane's own widgets: the app's screen may be on its way in or out
            footer, empty = _plain(pane.query_one("#keys-footer")), _plain(pane.query_one(".empty"))
        except NoMatches:
            return
        if not self.footers or self.footers[-1] != footer:
            self.footers.append(footer)
        if pane.has_class("-empty") and "No IR keys" in empty:
            self.no_keys_shown.append(footer)


def _plain(widget) -> str:
    content = widget.content
    return content if isinstance(content, str) else content.plain


async def test_a_rare_spec_fills_its_page_under_a_crowded_prefix(redis_url, sync_redis, cache_dir):
    under_prefix = plant_crowd(sync_redis)
    seen = Seen()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        # no reload of its own meanwhile (a subscription's, a poll's): the test asks for each one
        app = IRCacheApp(Services(cache=cache, watch=False, page_size=20, page_time_budget=0, live="poll",
                                  poll_interval=3600))
        seen.app = app
        async with app.run_test(size=(200, 40), message_hook=seen) as pilot:
            pane = app.keys_pane
            await until(pilot, lambda: app.first_page_shown, what="the first page", timeout=60)
            assert len(pane.rows) == 20  # a whole page, whatever share of the keys are ours

            await pilot.press("slash", *"=target", "enter")
            await until(pilot, lambda: "/=target · " in static_text(app, "#keys-footer")
                        and not scanning(pane) and pane.browser.page is not None, what="the filtered page", timeout=60)
            footer = static_text(app, "#keys-footer")
            assert sorted(table_keys(app, "keys")) == TARGET, footer
            assert "14 keys here" in footer and "scan complete" in footer and "partial" not in footer
            # "scanned": the keys under the prefix the walk examined, others' included
            assert scanned_in(footer) == under_prefix == pane._page.scanned
            assert not pane.has_next

            # while it scanned, the footer said how far it had got, never that there were no keys
            filling = [f for f in seen.footers if "filling…" in f and "/=target · " in f]
            assert len(filling) >= 2, seen.footers
            counts = [scanned_in(f) for f in filling]
            assert counts == sorted(counts) and 0 < counts[0] < counts[-1] < under_prefix, filling
            assert not seen.no_keys_shown

            # a reload of the page, however it comes, fills the page again before it is shown
            def whole_page() -> bool:
                footer = static_text(app, "#keys-footer")
                return (not scanning(pane) and sorted(table_keys(app, "keys")) == TARGET and "14 keys here" in footer
                        and "scan complete" in footer and scanned_in(footer) == under_prefix)

            for step, act, reloads in (("ctrl+r", lambda: pilot.press("ctrl+r"), True),
                                       ("r", lambda: pilot.press("r"), False),
                                       ("a resize", lambda: pilot.resize_terminal(150, 36), False),
                                       ("a poll's reload", lambda: _reload(pane), True)):
                before, footers_before = seen.loaded, len(seen.footers)
                await act()
                if reloads:
                    await until(pilot, lambda: seen.loaded > before, what=f"the page reloaded after {step}", timeout=60)
                await until(pilot, whole_page, what=f"the whole page after {step}", timeout=60)
                if reloads:  # it scanned the whole prefix again, and said so meanwhile
                    meanwhile = seen.footers[footers_before:]
                    assert any("refreshing…" in f for f in meanwhile), meanwhile
            assert not pane.has_class("-empty") and not seen.no_keys_shown, seen.no_keys_shown
            assert not any("· 0 keys here" in f for f in seen.footers), seen.footers


async def _reload(pane: KeysPane) -> None:
    pane.reload()  # what a poll round, an operation's end and a subscription do


async def test_the_browser_reports_while_it_fills_and_hands_back_whole_pages(redis_url, sync_redis, cache_dir):
    under_prefix = plant_crowd(sync_redis)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        browser = cache.key_browser(page_size=20, time_budget=0)
        browser.set_filter("=target")
        reports: list[Filling] = []
        page = await browser.first(reports.append)
        assert sorted(r.cache_key for r in page.rows) == TARGET and page.complete
        assert page.scanned == under_prefix
        assert len(reports) >= 2 and all(r.number == 1 and r.found <= 14 for r in reports)
        assert [r.scanned for r in reports] == sorted(r.scanned for r in reports) and reports[-1].scanned < under_prefix

        browser.set_filter(None)  # every entry: pages of 20, each whole until the last
        pages = [await browser.first()]
        while browser.has_next:
            pages.append(await browser.next())
        assert all(len(p.rows) == 20 for p in pages[:-1]) and pages[-1].complete
        names = [r.cache_key for p in pages for r in p.rows]
        assert len(names) == len(set(names)) == OTHERS * 2 // 3 + 14  # others' entries, teamb's values, ours
        assert pages[-1].scanned == under_prefix
        assert [p.scanned for p in pages] == sorted(p.scanned for p in pages)


@pytest.mark.parametrize("pattern", ["*_0000000a", "t?rget_*", "[st]arget_0000000[0-3]", "[^t]*", "*[a-c]_*",
                                     r"*\[x*", "target_0000000[^0-9]", "[]x*", "*_[0-9a-f][0-9a-f]*", "a[-]b*"])
def test_the_glob_filter_takes_what_scan_match_takes(sync_redis, pattern):
    """The filter moved from SCAN MATCH to Python (so "scanned" can be counted): same keys either way."""
    names = TARGET + ["starget_00000001", "a-b_0a1b2c3d", "a]b_0a1b2c3d", "[x_0a1b2c3d", "x[y_0a1b2c3d",
                      "ab_0a1b2c3d", "target_0000000a", "Target_00000001", "c_deadbeef", r"back\slash_0a1b2c3d"]
    pipe = sync_redis.pipeline(transaction=False)
    for name in names:
        pipe.set(f"ir_cache:{name}", b"x")
    pipe.execute()
    by_server = {k.decode().split(":", 1)[1] for k in sync_redis.scan_iter(match=f"ir_cache:{pattern}", count=1000)}
    assert {n for n in names if glob_regex(pattern).fullmatch(n)} == by_server


async def test_a_refused_page_keeps_the_place_and_says_why_once(redis_server, redis_url, sync_redis, cache_dir):
    """SCAN refused for a moment (an admin tightening the ACL; it is put back): `n` fails, the page
    shown stays, the refusal is said once however often `n` is pressed, and paging goes on from
    where it was (before: the walk moved on without its page, so the next page was numbered past
    itself and `p` went nowhere, and the pane said Redis was down)."""
    user, password = f"pager-{uuid.uuid4().hex[:8]}", "Zq7-pager-9Xk"
    sync_redis.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(600):
        pipe.set(f"ir_cache:spec{i:03d}_{i:08x}", entry_value())
    pipe.execute()
    seen = Seen()
    url = f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"
    try:
        async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
            app = IRCacheApp(Services(cache=cache, watch=False, page_size=20, stats_interval=3600))
            seen.app = app
            async with app.run_test(size=(200, 40), message_hook=seen) as pilot:
                pane = app.keys_pane
                await until(pilot, lambda: app.first_page_shown and not scanning(pane), what="page 1")
                await until(pilot, lambda: app.status_bar.status.ir_keys == 600, what="the totals")
                pages = {1: table_keys(app, "keys")}

                def next_needs_scan() -> bool:  # not served by the keys the last SCAN step carried over
                    start = pane.browser._next
                    return start is not None and not start.scan_done and len(start.carry) < 20

                while len(pages) < 2 or not next_needs_scan():
                    number = len(pages) + 1
                    await pilot.press("n")
                    await until(pilot, lambda: pane._page.number == number and not scanning(pane),
                                what=f"page {number}")
                    pages[number] = table_keys(app, "keys")
                at = len(pages)

                sync_redis.execute_command("ACL", "SETUSER", user, "-scan")
                for presses in (1, 2):
                    await pilot.press("n")
                    await until(pilot, lambda: seen.failed.count("next") == presses and pane.has_next
                                and not scanning(pane), what=f"refused n #{presses}")
                    assert pane._page.number == at and table_keys(app, "keys") == pages[at]
                    assert f"page {at} " in static_text(app, "#keys-footer")
                said = [n for n in seen.notes if "could not be read" in n]
                assert len(said) == 1 and "scan" in said[0].lower(), seen.notes
                assert not app.query_one("#banner").has_class("-down")

                sync_redis.execute_command("ACL", "SETUSER", user, "+scan")
                await pilot.press("p")
                await until(pilot, lambda: pane._page.number == at - 1 and not scanning(pane), what="the page before")
                assert table_keys(app, "keys") == pages[at - 1]
                for number in (at, at + 1):
                    await pilot.press("n")
                    await until(pilot, lambda: pane._page.number == number and not scanning(pane),
                                what=f"page {number}")
                    pages[number] = pages.get(number) or table_keys(app, "keys")
                    assert table_keys(app, "keys") == pages[number]
                shown = [key for rows in pages.values() for key in rows]
                assert len(shown) == len(set(shown)) == 20 * (at + 1)
                assert not any("rescanning from page 1" in line.text for line in app.log_pane.lines)
    finally:
        sync_redis.execute_command("ACL", "DELUSER", user)
