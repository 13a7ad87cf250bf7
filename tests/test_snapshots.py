"""Snapshot tests of the main views over fixed demo data, a frozen clock and fixed paths.

The memory figures on screen (keys pane, status bar) are the server's MEMORY USAGE, which every
server version and allocator reports differently (a 60-byte value under a 1-byte key: 136 bytes
on Redis 6.2, 112 on 7.0, 96 on Valkey 8, 88 on Valkey 9). So the snapshots have a fixed server
too, as they have a fixed clock: Debian's Redis 7.0, whatever IRCACHE_REDIS_SERVER says, because
it is the one server of the matrix built with jemalloc. jemalloc rounds every allocation up to a
size class, so a value's size is the same every run. The others are built with glibc's malloc,
whose usable size depends on the heap's history: the same SET of the same bytes measured 16 bytes
more, now and then, on a loaded machine (and it was a snapshot's "9.6 KiB" instead of "9.5").
They are pictures of the dashboard, not of the server; the server's part is in the
`server`-marked tests, which run on every server.

Regenerate after a deliberate UI change with: .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update
"""

import asyncio
import shutil
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache, OfflineGenerator, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.cache.demo import FIXED_TIME, DemoGenerator, seed_demo
from ircache_tui.tui.screens.detail import DetailScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.help import HelpScreen
from ircache_tui.tui.services import Services
from tests.support.redis_server import RedisServer
from tests.support.servers import binary
from tests.support.tui import until

# Fixed paths: they appear on screen (status bar, footers), so they must not vary per run.
ROOT = Path("/tmp/ircache-tui-snapshots")
EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


@pytest.fixture(scope="module")
def snap_redis():
    shutil.rmtree(ROOT, ignore_errors=True)
    with RedisServer("--notify-keyspace-events", "KEA", directory=ROOT / "redis", binary=binary("debian")) as server:
        yield server
    shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture
def demo(snap_redis):
    redis.Redis.from_url(snap_redis.unix_url).flushall()
    shutil.rmtree(ROOT / "ir", ignore_errors=True)
    shutil.rmtree(ROOT / "specs", ignore_errors=True)
    shutil.copytree(EXAMPLES, ROOT / "specs")

    async def seed():
        async with IRCache(redis_url=snap_redis.unix_url, cache_dir=ROOT / "ir", generator=OfflineGenerator()) as c:
            await seed_demo(c, ROOT / "specs")

    asyncio.run(seed())
    return snap_redis


def make_app(server, *, read_only: bool = False, **options) -> IRCacheApp:
    cache = IRCache(redis_url=server.unix_url, cache_dir=ROOT / "ir", ttl=604_800, generator=DemoGenerator(),
                    read_only=read_only)
    options.setdefault("spec_dirs", [ROOT / "specs"])
    return IRCacheApp(Services(cache=cache, watch=False, generate_on_watch=False, clock=lambda: FIXED_TIME,
                               monotonic=lambda: 0.0, **options))


async def settle(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: len(app.keys_pane.rows) == 4 and len(app.files_pane.entries) == 5
                and len(app.specs_pane.statuses) == 2 and app.status_bar.status.ir_keys == 4, what="demo data")
    petstore = cache_key((ROOT / "specs" / "petstore-spec.md").read_text(), "petstore-spec.md")
    table = app.keys_pane.table

    def petstore_selected() -> bool:
        if app.keys_pane.selected_key() != petstore:
            table.move_cursor(row=table.get_row_index(petstore))
            return False
        detail = app.detail_pane
        if detail.picked is None or detail.picked.cache_key != petstore:
            detail.show(app.keys_pane.picked())  # the cursor may already sit there (no highlight event)
            return False
        return detail.shown is not None

    await until(pilot, petstore_selected, what="petstore selected with its detail")
    await until(pilot, lambda: any("initial walk done" in line.text for line in app.log_pane.lines), what="walk")
    await pilot.pause(0.3)
    app.log_pane.clear()  # log order depends on worker timing
    await pilot.pause(0.1)


def test_dashboard(demo, snap_compare):
    assert snap_compare(make_app(demo), terminal_size=(130, 34), run_before=settle)


def test_dashboard_80x24(demo, snap_compare):
    assert snap_compare(make_app(demo), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("tab", ["files", "specs"])
def test_tab(demo, snap_compare, tab):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.tabs.active = f"tab-{tab}"
        await pilot.pause(0.3)

    assert snap_compare(make_app(demo), terminal_size=(130, 34), run_before=run_before)


def after_key(key: str, screen_type: type):
    """A run_before that settles, presses `key` and waits for `screen_type` to be on top."""

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press(key)
        await until(pilot, lambda: isinstance(pilot.app.screen, screen_type))
        await pilot.pause(0.3)

    return run_before


def test_flush_confirmation(demo, snap_compare):
    assert snap_compare(make_app(demo), terminal_size=(130, 34), run_before=after_key("f", FlushScreen))


def test_detail_view(demo, snap_compare):
    assert snap_compare(make_app(demo), terminal_size=(130, 34), run_before=after_key("enter", DetailScreen))


def test_help(demo, snap_compare):
    assert snap_compare(make_app(demo), terminal_size=(130, 34), run_before=after_key("question_mark", HelpScreen))


def test_read_only(demo, snap_compare):
    assert snap_compare(make_app(demo, read_only=True), terminal_size=(130, 34), run_before=settle)
