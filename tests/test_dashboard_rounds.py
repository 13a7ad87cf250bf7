"""The dashboard's periodic rounds, who says Redis is down, and what one flush costs Redis, on
real redis-server processes (issue 19).

- A Redis that stalls (SIGSTOP), comes back (SIGCONT) and stalls again is said down the second
  time too, and the totals keep following the hits of other processes: the periodic health and
  totals rounds are re-armed after every round, whatever ended it, and Redis is said back by
  the probe that found it so.
- A walk the server refuses (an ACL) is not an outage: only a failed probe says down.
- One `f` walks the keyspace only to count, to delete and to show the page again: the status
  totals follow from what the flush says it deleted, not from another walk.
"""

from __future__ import annotations

import contextlib
import signal

import pytest
import redis

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.confirm import ConfirmScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.ttl import TtlScreen
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services
from tests.support.foreign import entry_value
from tests.support.generators import CountingGenerator
from tests.support.monitor import CommandLog, scan_walks
from tests.support.redis_server import RedisServer
from tests.support.tui import static_text, until

pytestmark = [pytest.mark.server, pytest.mark.slow]  # SIGSTOP of this server; its MONITOR


def dashboard_cache(url: str, cache_dir, **options) -> IRCache:
    return IRCache(redis_url=url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator(),
                   max_connections=DASHBOARD_CONNECTIONS, **options)


@contextlib.contextmanager
def stalled(server: RedisServer):
    """The server stops answering (SIGSTOP) for the block, as a hung or swapped-out Redis does."""
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


async def hits_elsewhere(url: str, cache_dir, spec: str, n: int) -> None:
    """`n` lookups of `spec` by another process's cache on the same Redis (its hits are sent to
    Redis when it closes)."""
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator(),
                       hit_flush_interval=3600) as other:
        for _ in range(n):
            assert (await other.lookup(spec, "stalls.md")).tier in ("redis", "generator")


def status(app) -> str:
    return static_text(app, "#status")


async def test_after_a_stall_the_rounds_go_on_and_a_second_stall_is_said(tmp_path):
    """The issue's steps: a stall while a page loads (n), Redis back, another stall. The second
    is said down too, and the totals follow other processes' hits after each recovery."""
    spec = "# Stalls\n\nSomething to cache.\n"
    with RedisServer("--notify-keyspace-events", "KEA") as server:
        await hits_elsewhere(server.url, tmp_path / "other", spec, 1)  # generated: one entry, no hit yet
        for i in range(12):  # pages of 5: `n` has somewhere to go
            redis.Redis.from_url(server.unix_url).set(f"ir_cache:more-{i:02d}_{i:08x}", entry_value())
        app = IRCacheApp(Services(cache=dashboard_cache(server.url, tmp_path / "ir"), watch=False, page_size=5,
                                  stats_interval=0.3, health_interval=0.3))
        try:
            async with app.run_test(size=(160, 40)) as pilot:
                await until(pilot, lambda: app.first_page_shown and app.keys_pane.has_next, what="first page")
                await until(pilot, lambda: "● up" in status(app) and app.status_bar.status.ir_keys == 13,
                            what="up, with its totals")
                await hits_elsewhere(server.url, tmp_path / "other", spec, 2)
                await until(pilot, lambda: app.status_bar.status.shared_hits == 2, what="the first hits counted")

                with stalled(server):
                    await pilot.press("n")
                    await until(pilot, lambda: "● down" in status(app), what="down in the first stall", timeout=30)
                await until(pilot, lambda: any("Redis is back" in line.text for line in app.log_pane.lines),
                            what="Redis is back", timeout=30)
                await until(pilot, lambda: "● up" in status(app), what="up again")
                for _ in range(3):  # a refresh cancels the round under way, if any: the rounds go on
                    await pilot.press("ctrl+r")
                    await pilot.pause(0.2)
                await hits_elsewhere(server.url, tmp_path / "other", spec, 3)
                await until(pilot, lambda: app.status_bar.status.shared_hits == 5, what="hits after the stall",
                            timeout=30)

                with stalled(server):  # nothing pressed this time: only the rounds can tell
                    await until(pilot, lambda: "● down" in status(app), what="down in the second stall", timeout=30)
                await until(pilot, lambda: "● up" in status(app), what="up after the second stall", timeout=30)
                await hits_elsewhere(server.url, tmp_path / "other", spec, 4)
                await until(pilot, lambda: app.status_bar.status.shared_hits == 9, what="hits after the second",
                            timeout=30)
                assert "live: notifications" in status(app)
        finally:
            if server.process is not None:
                server.process.send_signal(signal.SIGCONT)  # a stopped server cannot be stopped


async def test_a_refused_walk_is_not_an_outage(tmp_path):
    """An ACL without +scan refuses every walk (the totals, the pages) while Redis answers PING:
    the failures ask for a probe, and the probe finds Redis up. Only a failed probe says down."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.unix_url)
        admin.set("ir_cache:shop_0a1b2c3d", entry_value())
        admin.execute_command("ACL", "SETUSER", "noscan", "on", ">noscan-pw", "resetkeys", "resetchannels", "-@all",
                              "+ping", "+get", "+exists", "+ttl", "+getrange", "+memory|usage", "+config|get",
                              "+psubscribe", "~ir_cache:*", "&__keyspace@0__:ir_cache:*")
        url = f"redis://noscan:noscan-pw@127.0.0.1:{server.port}/0"
        cache = IRCache(redis_url=url, cache_dir=tmp_path / "ir", generator=CountingGenerator(), read_only=True,
                        max_connections=DASHBOARD_CONNECTIONS)
        app = IRCacheApp(Services(cache=cache, watch=False, stats_interval=0.3, health_interval=0.3, poll_interval=0.3))

        def pings() -> int:
            return admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)

        def refused_scans() -> int:
            return sum(int(entry.get("count", 1)) for entry in admin.acl_log() if entry.get("object") == "scan")

        try:
            async with app.run_test(size=(160, 40)) as pilot:
                await until(pilot, lambda: refused_scans() >= 1, what="a walk refused")
                seen = pings()
                await until(pilot, lambda: pings() > seen, what="a probe after the refusal")
                await until(pilot, lambda: refused_scans() >= 3 and pings() > seen + 1, what="more of both")
                assert "● up" in status(app) and app.redis_up is True
                assert not [line.text for line in app.log_pane.lines if "Redis is down" in line.text]
        finally:
            admin.close()


PAGE = 37  # the page walk's COUNT, told apart from the other walks by it


async def test_one_flush_walks_only_to_count_delete_and_show_the_page(tmp_path, specs):
    """`f` on one spec among 3,000 keys: a walk to count what it would take, one to delete, one
    to show the page again. No stats walk: the totals follow from what the flush says it
    deleted; no stale recount asked by the dashboard. (The specs are read once, not watched:
    a watcher's own Redis keeper follows a flush by itself, and its recount is the watcher's.)"""
    with RedisServer("--notify-keyspace-events", "KEA") as server:
        client = redis.Redis.from_url(server.unix_url)
        async with dashboard_cache(server.url, tmp_path / "ir") as seeding:
            for path in sorted(specs.glob("*.md")):
                await seeding.lookup(path.read_text(), str(path))
        pipe = client.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"ir_cache:bulk-{i % 30:02d}_{i:08x}", entry_value())
        pipe.execute()
        petstore = specs / "petstore-spec.md"
        others = [p for p in sorted(specs.glob("*.md")) if p != petstore]
        key = cache_key(petstore.read_text(), str(petstore))
        # polling (once an hour) and rounds once an hour: nothing but the flush asks Redis meanwhile
        app = IRCacheApp(Services(cache=dashboard_cache(server.url, tmp_path / "ir"), spec_dirs=[specs], watch=False,
                                  page_size=PAGE, live="poll", poll_interval=3600, stats_interval=3600))
        log = CommandLog(server.unix_url).start()
        try:
            async with app.run_test(size=(160, 40)) as pilot:
                await until(pilot, lambda: app.first_page_shown and app.status_bar.status.ir_keys == 3002,
                            what="the first page and the totals")
                await until(pilot, lambda: any("initial walk done" in line.text for line in app.log_pane.lines)
                            and not any(w.node is app.specs_pane and not w.is_finished for w in app.workers),
                            what="the specs read")
                app.action_show_tab("tab-specs")
                table = app.specs_pane.table
                table.move_cursor(row=table.get_row_index(str(petstore)))
                await until(pilot, lambda: app.picked() is not None and app.picked().spec_name == "petstore-spec",
                            what="petstore-spec selected")
                before = log.mark()
                await pilot.press("f")
                await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush modal")
                await pilot.press("y")
                await until(pilot, lambda: not app.flush_bar.running and not client.exists(f"ir_cache:{key}"),
                            what="flushed")
                await until(pilot, lambda: app.status_bar.status.ir_keys == 3001, what="the totals")
                # the Specs tab follows our own flush (without file watching, without ctrl+r), no walk
                await until(pilot, lambda: spec_state(app, petstore) == "filesystem only", what="petstore-spec on disk only")
                await settled(pilot, app)
                walks = scan_walks(log.since(before), page=PAGE)
                assert "3,001 IR keys, ≤" in status(app)  # the memory is at most what it was
                assert [spec_state(app, p) for p in others] == ["in redis"] * len(others)

                before = log.mark()
                await pilot.press("F")
                await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="flush-all modal")
                await pilot.press("y")
                await until(pilot, lambda: not app.flush_bar.running and app.status_bar.status.ir_keys == 0,
                            what="flushed all")
                await until(pilot, lambda: {spec_state(app, p) for p in others} == {"filesystem only"}, what="all on disk only")
                await settled(pilot, app)
                walks_all = scan_walks(log.since(before), page=PAGE)
                assert "0 IR keys, 0 B" in status(app)
        finally:
            log.stop()
            client.close()
    print("walks after f:", walks, "after F:", walks_all)
    spec_walk = "ir_cache:petstore-spec_{hash8}"
    # the count (the dialog), the delete (its MATCH takes the entries' hit keys too)
    assert walks[:2] == [spec_walk, spec_walk + "*"], walks
    assert walks[2:] == ["page"], walks  # the page shown again, and no stats walk nor recount
    every = "ir_cache:*_{hash8}"
    assert walks_all == [every, every + "*", "page"], walks_all


async def test_a_delete_and_a_ttl_from_the_keys_pane_walk_nothing(tmp_path):
    """`d` on two marked keys and `T` on one, among 3,000: the rows and the totals follow from
    what the pane's own worker says, and the keyspace notifications of its own commands are its
    echo: no page reload, no stats walk (each was asked before, on the echo)."""
    with RedisServer("--notify-keyspace-events", "KEA") as server:
        client = redis.Redis.from_url(server.unix_url)
        pipe = client.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"ir_cache:bulk-{i % 30:02d}_{i:08x}", entry_value(), ex=3600)
        pipe.execute()
        app = IRCacheApp(Services(cache=dashboard_cache(server.url, tmp_path / "ir"), watch=False, page_size=PAGE,
                                  stats_interval=3600))
        log = CommandLog(server.unix_url).start()
        try:
            async with app.run_test(size=(160, 40)) as pilot:
                await until(pilot, lambda: app.first_page_shown and app.status_bar.status.ir_keys == 3000
                            and app.keys_pane.live_mode == "notifications", what="the page, totals, live updates")
                keys = app.keys_pane
                keys.table.focus()
                keys.table.move_cursor(row=0)
                before = log.mark()
                await pilot.press("space", "space")
                marked = sorted(keys.marked)
                await pilot.press("d")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="asks first")
                await pilot.press("y")
                await until(pilot, lambda: app.status_bar.status.ir_keys == 2998
                            and not any(k in keys.rows for k in marked), what="the rows and the totals")
                target = keys.selected_key()
                await pilot.press("T")
                await until(pilot, lambda: isinstance(app.screen, TtlScreen), what="the TTL dialog")
                await pilot.press(*"90m", "enter")
                await until(pilot, lambda: 5390 <= client.ttl(f"ir_cache:{target}") <= 5400, what="TTL set")
                await pilot.pause(2.5)  # what an echo would start (a refresh a second after it) has had time to
                walks = scan_walks(log.since(before), page=PAGE)
                assert not client.exists(*(f"ir_cache:{k}" for k in marked))
        finally:
            log.stop()
            client.close()
    assert walks == [], walks


def spec_state(app, path) -> str:
    """What the Specs tab says of a spec file."""
    return app.specs_pane.watcher.statuses[path].state.value


async def settled(pilot, app) -> None:
    """The flush is over and the key page shown again; and what a flush must not start (the
    refresh after changes, a second after them) has had twice that time to start."""
    await until(pilot, lambda: not app.keys_pane.paused and not any(
        w.node is app.keys_pane and not w.is_finished for w in app.workers), what="the page again")
    await pilot.pause(2.0)
