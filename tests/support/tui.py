"""Helpers for driving the dashboard with Textual's Pilot."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

from rich.console import Console


async def until(pilot, predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `predicate()` is true (workers post, handlers update)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)
    await asyncio.sleep(0)


def table_keys(app, pane_id: str) -> list[str]:
    table = app.query_one(f"#{pane_id}-table")
    return [row.value for row in table.rows]


def cell(app, pane_id: str, row_key: str, column: str) -> str:
    return str(app.query_one(f"#{pane_id}-table").get_cell(row_key, column))


def static_text(app, selector: str) -> str:
    """Plain text a widget shows: on the active screen (a modal) first, else the app's."""
    screen = getattr(app, "screen", app)
    found = screen.query(selector)
    node = found.first() if found else app.query_one(selector)
    content = getattr(node, "content", None)
    if content is None:
        content = node.render()
    if isinstance(content, str):
        return content
    if hasattr(content, "plain"):
        return content.plain
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(content)
    return console.export_text()


def scanning(pane) -> bool:
    """A page of the key pane is on its way (its worker pending or running)."""
    return any(w.group == "keys-scan" and not w.is_finished for w in pane.workers)


async def every_page(pilot, app, timeout: float = 20.0) -> list[str]:
    """The keys on the page shown, once it has loaded, and on every page after it (a key twice,
    twice); an `n` dropped while a background refresh of the page loads is pressed again."""
    pane = app.keys_pane
    await until(pilot, lambda: pane.first_page_shown and not scanning(pane), what="the page", timeout=timeout)
    collected = list(table_keys(app, "keys"))
    while pane.has_next:
        number = pane._page.number
        deadline = time.monotonic() + timeout
        while pane._page.number != number + 1 or scanning(pane):
            if time.monotonic() > deadline:
                raise AssertionError(f"page {number + 1} never came")
            # the browser's own page: the pane's lags until it handles the page's message, and an
            # `n` pressed in that gap would skip a page
            if pane.browser.page.number == number and not scanning(pane):
                await pilot.press("n")
            await pilot.pause(0.1)
        collected += table_keys(app, "keys")
    return collected


def screen_text(app) -> str:
    """The screen as the terminal shows it, without colour: one line a row (what a user reads)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
