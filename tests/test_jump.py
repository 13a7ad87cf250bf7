"""`g`: go to a key (`ir_cache:spec_hash8`, `spec_hash8`) or a spec's newest entry, whatever page it
is on. Pilot tests over a real Redis holding a crowded shared prefix: 100,000 keys of other tools
beside ours."""

import pytest

from ircache_tui import IRCache, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.picked import PickedEntry
from ircache_tui.tui.screens.detail import DetailScreen
from ircache_tui.tui.screens.jump import JumpScreen
from ircache_tui.tui.services import Services
from tests.support.foreign import entry_value
from tests.support.generators import CountingGenerator
from tests.support.tui import scanning, table_keys, until

SPEC = "# Petstore\n\nA pet store with pets.\n"
SPEC_V2 = "# Petstore\n\nA pet store with pets and owners.\n"
OTHERS = 100_000  # another tool's keys under the same prefix (not of our grammar)
FILLERS = 400  # entries of other specs: petstore is on some page of them


@pytest.fixture
async def cache(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as c:
        yield c


@pytest.fixture
def crowded(sync_redis):
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(OTHERS):
        pipe.set(f"ir_cache:other-tool:{i}", b"x")
        if i % 10_000 == 9_999:
            pipe.execute()
    for i in range(FILLERS):
        pipe.set(f"ir_cache:api-{i:04d}_{i:08x}", entry_value())
    pipe.execute()


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def go(pilot, app, text: str) -> None:
    await pilot.press("g")
    await until(pilot, lambda: isinstance(app.screen, JumpScreen), what="the go-to box")
    app.screen.query_one("#jump-input").value = text
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, JumpScreen), what="the box closed")


async def off_its_page(pilot, app, key: str) -> int:
    """Page on with `n` until the page shown is not page 1 and does not hold `key`; its number."""
    pane = app.keys_pane
    await until(pilot, lambda: pane.first_page_shown and not scanning(pane), what="page 1")
    while pane._page.number == 1 or key in table_keys(app, "keys"):
        number = pane._page.number
        await pilot.press("n")
        await until(pilot, lambda: pane._page.number == number + 1 and not scanning(pane), what="the next page")
    return pane._page.number


@pytest.mark.parametrize("form", ["ir_cache:{key}", "{key}", "  petstore  "])
async def test_g_brings_the_entry_up_from_page_n_of_a_crowded_prefix(cache, crowded, form):
    await cache.get_application_ir(SPEC, "specs/petstore.md")
    key = cache_key(SPEC, "specs/petstore.md")
    app = IRCacheApp(Services(cache=cache, watch=False, page_size=50))
    async with app.run_test(size=(160, 45)) as pilot:
        page = await off_its_page(pilot, app, key)
        assert page >= 2
        await pilot.press("2")  # from another tab, too
        await go(pilot, app, form.format(key=key))
        pane = app.keys_pane
        await until(pilot, lambda: pane.selected_key() == key, what="the entry selected", timeout=60)
        assert app.tabs.active == "tab-keys" and app.focused is pane.table
        assert pane.browser.filter_text == "=petstore" and pane._page.number == 1
        assert table_keys(app, "keys") == [key]
        await until(pilot, lambda: app.detail_pane.shown is not None, what="the detail")
        assert app.detail_pane.picked == PickedEntry("petstore", key, "redis")
        assert not [n for n in notes(app) if "No IR entry" in n]


async def test_g_on_a_spec_name_selects_its_newest_entry(cache, sync_redis):
    await cache.get_application_ir(SPEC, "specs/petstore.md")
    await cache.get_application_ir(SPEC_V2, "specs/petstore.md")  # generated after: the newest
    await cache.get_application_ir(SPEC, "specs/petstore-v2.md")  # a cousin name: not petstore's
    old, new = cache_key(SPEC, "petstore.md"), cache_key(SPEC_V2, "petstore.md")
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="page 1")
        await go(pilot, app, "petstore")
        pane = app.keys_pane
        await until(pilot, lambda: pane.selected_key() == new, what="the newest selected")
        assert sorted(table_keys(app, "keys")) == sorted([old, new])  # filtered to =petstore
        assert pane.browser.filter_text == "=petstore"


async def test_g_on_a_narrow_screen_opens_the_full_detail(cache):
    await cache.get_application_ir(SPEC, "specs/petstore.md")
    key = cache_key(SPEC, "petstore.md")
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(90, 30)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="page 1")
        await go(pilot, app, f"petstore_{key[-8:]}")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the full detail")


async def test_g_on_a_key_that_is_not_there_says_so_and_leaves_the_pane(cache, crowded):
    app = IRCacheApp(Services(cache=cache, watch=False, page_size=50))
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.keys_pane
        await until(pilot, lambda: pane.first_page_shown and not scanning(pane), what="page 1")
        before = table_keys(app, "keys")
        await go(pilot, app, "ir_cache:petstore_deadbeef")
        await until(pilot, lambda: "No IR entry ir_cache:petstore_deadbeef in Redis" in notes(app), what="the notice")
        await go(pilot, app, "nosuchspec")
        await until(pilot, lambda: "No IR entry of spec nosuchspec in Redis" in notes(app), what="the notice")
        assert table_keys(app, "keys") == before and pane.browser.filter_text == ""
        assert pane._page.number == 1


async def test_g_on_another_tools_key_says_it_is_not_an_entry(cache, sync_redis):
    sync_redis.hset("ir_cache:teamb_0a1b2c3d", mapping={"owner": "team-b"})
    sync_redis.set("ir_cache:teamc_0a1b2c3d", b'{"user": 1}')
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="page 1")
        for name in ("teamb", "teamc"):
            await go(pilot, app, f"{name}_0a1b2c3d")
            said = f"ir_cache:{name}_0a1b2c3d is not an IR entry: another tool's value is under that name"
            await until(pilot, lambda: said in notes(app), what="the notice")
        assert app.keys_pane.browser.filter_text == ""
    assert sync_redis.hgetall("ir_cache:teamb_0a1b2c3d") == {b"owner": b"team-b"}  # untouched


async def test_hostile_text_in_the_box_is_text(cache):
    app = IRCacheApp(Services(cache=cache, watch=False))
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="page 1")
        await go(pilot, app, "[bold red]x_0a1b2c3d")
        await until(pilot, lambda: "No IR entry ir_cache:[bold red]x_0a1b2c3d in Redis" in notes(app),
                    what="the notice, brackets and all")
        await go(pilot, app, "a/b\x1b[2J")
        await until(pilot, lambda: any("Not a key nor a spec name" in n and "\\x1b" in n for n in notes(app)),
                    what="refused, the escape spelled out")
        assert app.is_running
