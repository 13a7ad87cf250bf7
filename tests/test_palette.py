"""ctrl+p finds every key's action, the focused pane's too, and runs it; a greyed-out one says why."""

import pytest

from ircache_tui.tui.app import IRCacheApp
from tests.support.tui import until
from tests.test_tui import cache, keys_of, loaded, make_app  # noqa: F401 (fixture)



def palette_options(app: IRCacheApp) -> list[str]:
    from textual.command import CommandList

    listing = app.screen.query_one(CommandList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


async def search(pilot, app: IRCacheApp, text: str, expect: str) -> list[str]:
    """Type `text` in the palette; the hits once one starts with `expect` (they stream in)."""
    from textual.command import CommandPalette

    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
    await pilot.press(*text)
    await until(pilot, lambda: any(o.startswith(expect) for o in palette_options(app)), what=f"{expect!r} for {text!r}")
    return palette_options(app)


async def test_palette_lists_the_focused_panes_keys_and_runs_them(cache, specs, sync_redis):
    key = f"ir_cache:{keys_of(specs)['petstore-spec']}"
    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        app.keys_pane.table.focus()
        app.keys_pane.table.move_cursor(row=app.keys_pane.table.get_row_index(key.split(":", 1)[1]))
        sync_redis.expire(key, 60)
        found = await search(pilot, app, "reset ttl", "Reset TTL")
        # a key of the keys pane (not one of the App's), with its key and what it does
        assert any(o.startswith("Reset TTL") and "key t" in o for o in found), found
        await pilot.press("enter")
        await until(pilot, lambda: sync_redis.ttl(key) > 60, what="TTL reset through the palette")
        assert sync_redis.ttl(key) > 3000


async def test_palette_offers_app_keys_that_the_footer_hides(cache):
    app = make_app(cache)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app, 2)
        found = await search(pilot, app, "prev", "Previous tab")
        # `[` is shown as a key, not swallowed as markup
        assert any(o.startswith("Previous tab") and "key [" in o for o in found), found


async def test_palette_says_why_a_write_is_off_in_a_read_only_session(cache, sync_redis):
    before = sync_redis.dbsize()
    app = make_app(cache, read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        found = await search(pilot, app, "flush all", "Flush all")
        assert any(o.startswith("Flush all") and "off: Read-only session" in o for o in found), found
        await pilot.press("enter")
        await until(pilot, lambda: any("Read-only session: flush all is disabled" in n.message
                                       for n in app._notifications), what="why it is off")
    assert sync_redis.dbsize() == before


async def test_palette_lists_only_the_dashboards_actions(cache):
    from ircache_tui.tui.commands import BindingCommands

    app = make_app(cache)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(pilot, app, 2)
        app.keys_pane.table.focus()
        names = [str(hit.display) async for hit in BindingCommands(app.screen).discover()]
        for name in ("Flush spec", "Flush all", "Regenerate", "Warm", "Diff", "Refresh", "Delete", "Set TTL",
                     "Filter", "Sort", "Copy", "Help"):
            assert name in names, (name, names)
        assert "Cursor up" not in names and "Focus Next" not in names  # a table's keys, Textual's own
        assert len(names) == len(set(names))
