"""The live log: the `ircache` logger's lines, bounded so a day-long session stays small.

Small, it is the last few lines under the panes; `L` (the App) enlarges it to most of the
screen, where it scrolls and `/` searches it. A run of records of the same shape (the same
message template, or the same text: logbridge.py says which) is one line with a count,
"252 × Redis refused the password for … (last: petstore-spec)", updated in place. Only the
display collapses: the log itself (stderr, files, other handlers) keeps every line.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from ..text import plain, printable

MAX_LINES = 1000  # shown lines (a collapsed run is one)
_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red", logging.DEBUG: "dim"}
_MATCH = Style.parse("black on yellow")
_CURRENT = Style.parse("black on bright_cyan bold")


@dataclass(slots=True)
class LogEntry:
    """One shown line: a record, or a run of records of one shape (`count` of them)."""

    level: int
    text: str  # as shown (printable): a collapsed run's says its count and its last record
    shape: str = ""
    head: str = ""  # "12:00:01 WARNING " (the run's last record's time)
    summary: str = ""  # the run's line after the count: the template with … and the last values
    count: int = 1


class LogView(ScrollView, can_focus=True):
    """The lines, drawn one row at a time (Textual's line API): a line can change in place (a run's
    count) and matches can be highlighted, which RichLog's rendered-once lines cannot."""

    DEFAULT_CSS = """
    LogView { height: 1fr; overflow-x: auto; overflow-y: auto; }
    LogView:focus { background-tint: $foreground 5%; }
    """
    BINDINGS = [
        Binding("n", "next_match(1)", "Next match", tooltip="The next (newer) line that matches the search"),
        Binding("N", "next_match(-1)", "Previous match", tooltip="The previous (older) line that matches the search"),
        Binding("escape", "clear_search", "Clear search", show=False, tooltip="Forget the search"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entries: deque[LogEntry] = deque(maxlen=MAX_LINES)
        self._width = 0
        self.search_text = ""
        self._finds: re.Pattern[str] | None = None
        self.current: LogEntry | None = None  # the match the view was moved to
        #: new lines scroll the view to the end, until one scrolls up (and again once back at the end).
        #: Not "is the view at the end now": a line wider than the view brings a horizontal scrollbar,
        #: one row less to show, and the end moves one row down without anyone scrolling.
        self._follow = True
        self._end_pending = False

    def _to_end(self) -> None:
        # forced: before the first layout the view does not know yet that it may scroll
        self.scroll_end(animate=False, immediate=True, force=True, x_axis=False)

    def _to_end_later(self) -> None:
        self._end_pending = False
        if self._follow:
            self._to_end()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._follow = new_value >= self.max_scroll_y

    # -- lines -------------------------------------------------------------------------
    def add(self, level: int, text: str, *, shape: str = "", head: str = "", summary: str = "") -> None:
        """A record's line; a record of the same shape and level as the last line adds to its count."""
        last = self.entries[-1] if self.entries else None
        if shape and last is not None and last.shape == shape and last.level == level:
            last.count += 1
            last.head, last.summary = head, summary
            last.text = printable(f"{head}{last.count} × {summary}")
            self._width = max(self._width, cell_len(last.text))
        else:
            entry = LogEntry(level, printable(text), shape, head, summary)
            self.entries.append(entry)  # the oldest goes when full (maxlen)
            self._width = max(self._width, cell_len(entry.text))
        self.virtual_size = Size(self._width, len(self.entries))
        if self._follow and not self.is_vertical_scrollbar_grabbed:
            self._to_end()
            if not self._end_pending:  # and once more after the layout (a scrollbar that came takes a row)
                self._end_pending = True
                self.call_after_refresh(self._to_end_later)
        self.refresh()
        if self.search_text:
            self._said()

    def clear(self) -> None:
        self.entries.clear()
        self._width = 0
        self.current = None
        self.virtual_size = Size(0, 0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.entries):
            return Strip.blank(width, base)
        entry = self.entries[index]
        line = Text(entry.text, style=_STYLES.get(entry.level, ""), no_wrap=True, end="")
        if self._finds is not None:
            style = _CURRENT if entry is self.current else _MATCH
            for m in self._finds.finditer(entry.text):
                line.stylize(style, m.start(), m.end())
        strip = Strip(line.render(self.app.console), cell_len(entry.text))
        return strip.apply_style(base).crop_extend(scroll_x, scroll_x + width, base)

    # -- search ------------------------------------------------------------------------
    # Like `less`: every match highlighted in place and n / N moving between them, rather than the
    # view filtered to the matching lines: in a log the lines around a match (what happened just
    # before the error) are what one reads it for. A log is read from its end, so a search starts
    # at the newest match; n goes to newer ones, N to older ones, both wrapping around.
    def search(self, query: str, *, jump: bool = False) -> None:
        """Highlight `query` (case-insensitive unless it has a capital: vim's smartcase); `jump`:
        move the view to the newest match."""
        self.search_text = query
        self._finds = re.compile(re.escape(query), 0 if query != query.lower() else re.IGNORECASE) if query else None
        self.current = None
        if jump and self._finds is not None:
            matches = self.matches()
            if matches:
                self._go(matches[-1])
        self.refresh()
        self._said()

    def matches(self) -> list[int]:
        """The indices of the lines that match the search (oldest first)."""
        finds = self._finds
        if finds is None:
            return []
        return [i for i, entry in enumerate(self.entries) if finds.search(entry.text)]

    def action_next_match(self, step: int) -> None:
        matches = self.matches()
        if not matches:
            self.app.bell()
            return
        here = self._index_of(self.current)
        if here is None:
            target = matches[-1] if step < 0 else matches[0]
        else:
            later = [i for i in matches if (i > here if step > 0 else i < here)]
            target = (later[0] if step > 0 else later[-1]) if later else (matches[0] if step > 0 else matches[-1])
        self._go(target)
        self._said()

    def _index_of(self, entry: LogEntry | None) -> int | None:
        if entry is None:
            return None
        for i, candidate in enumerate(self.entries):
            if candidate is entry:
                return i
        return None  # it scrolled off the top (MAX_LINES)

    def _go(self, index: int) -> None:
        self.current = self.entries[index]
        self.scroll_to(y=max(0, index - self.size.height // 2), animate=False, immediate=True)
        self.refresh()

    # `/` at once, here: a binding runs only when its key has bubbled up to the App, and the keys typed
    # right after it (a quick "/redis", a paste) reach this view first: they would be lost, or worse
    # run the App's keys (r regenerates). Handled here, the box has the focus before the next key is
    # read, and a key that was already on its way here is handed to the box.
    def key_slash(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        if isinstance(self.parent, LogPane):
            self.parent.action_search()

    async def _on_key(self, event: events.Key) -> None:
        # (Textual calls each class's _on_key in turn: prevent_default keeps Widget's from running)
        box = self.parent.box if isinstance(self.parent, LogPane) else None
        if box is not None and self.screen.focused is box:
            event.stop()
            event.prevent_default()
            box.post_message(events.Key(event.key, event.character))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_match", "clear_search"):
            return bool(self.search_text)  # no search: n, N and escape are the others' keys
        return True

    def action_clear_search(self) -> None:
        self.search("")

    def _said(self) -> None:
        if isinstance(self.parent, LogPane):
            self.parent.say_search(self.search_text, len(self.matches()), self._index_of(self.current), self.matches())


class LogPane(Vertical):
    DEFAULT_CSS = """
    LogPane { height: 6; border-top: solid $panel-lighten-2; }
    LogPane > #log-search { display: none; height: 1; border: none; padding: 0 1; }
    LogPane.-searching > #log-search { display: block; }
    """
    BINDINGS = [
        Binding("slash", "search", "Search log", tooltip="Search the log: matches highlighted, n / N move between them"),
        Binding("escape", "close_search", "Close search", show=False, tooltip="Close the search box"),
    ]

    def compose(self) -> ComposeResult:
        self.view = LogView(id="log-view")  # kept: late log lines during shutdown need no query
        yield self.view
        self.box = Input(placeholder="search the log (enter: the newest match, n / N: next / previous, esc)",
                         id="log-search", max_length=500)
        yield self.box

    # -- what the App asks -------------------------------------------------------------------
    def add(self, level: int, text: str, *, shape: str = "", head: str = "", summary: str = "") -> None:
        self.view.add(level, text, shape=shape, head=head, summary=summary)

    @property
    def lines(self) -> list[LogEntry]:
        """The lines shown, oldest first (a collapsed run is one)."""
        return list(self.view.entries)

    def clear(self) -> None:
        self.view.clear()

    def say_search(self, query: str, found: int, current: int | None, matches: list[int]) -> None:
        if not query:
            self.border_title = None
            return
        where = f"{matches.index(current) + 1} of {found}" if current in matches else f"{found} found"
        self.border_title = plain(f"log · /{query} · {where}" + (" · n / N" if found else ""))

    # -- search ------------------------------------------------------------------------------
    def action_search(self) -> None:
        self.add_class("-searching")
        self.box.value = self.view.search_text
        # focused now, not after the keys already read (focus() waits its turn: a quick "/red"
        # would send r, e, d to the bindings)
        self.screen.set_focus(self.box)

    @on(Input.Changed, "#log-search")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.view.search(event.value)  # highlighted as you type; enter moves to the newest match

    @on(Input.Submitted, "#log-search")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.view.search(event.value, jump=True)
        self.remove_class("-searching")
        self.view.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_search":
            return self.has_class("-searching")
        return True

    def action_close_search(self) -> None:
        """Escape in the search box: close it and forget the search."""
        self.remove_class("-searching")
        self.view.search("")
        self.view.focus()
