"""The full view of one entry: its summary at once, and the IR as indented, highlighted JSON.

The JSON is shown by JsonView, a virtualised view (Textual's line API): it
keeps the indented JSON as one UTF-8 bytes object plus an array of line
offsets, and highlights only the lines on screen. An open 5 MB entry so
holds ~2.5× its size (the JSON text and the offsets), never a renderable or
a string per line; the offsets are found in a worker thread (whose short
steps let the event loop run), so the summary is there at once and the JSON
a moment later. (A StoredEntry passed in, rather than an EntryDigest, has its
JSON made on the event loop: fine for a small one, which is all callers
other than DetailPane have.)
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

from ...cache.decoded import EntryDigest
from ...cache.results import RawHead
from ...fmt import human_bytes
from ...ir.envelope import StoredEntry
from ..picked import KeyFigures
from ..text import plain, printable
from ..summary import figures_table, raw_text, summary_table

# One JSON token: a key (a string before a colon), a string, a number, a literal, punctuation.
_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*"(?=\s*:))|(?P<str>"(?:[^"\\]|\\.)*"?)'
    r"|(?P<num>-?\d[\d.eE+\-]*)|(?P<lit>true|false|null)|(?P<punct>[{}\[\],:])"
)
# The monokai colours the screen's rich.Syntax used to give the JSON.
_COLOURS = {"key": "#f92672", "str": "#e6db74", "num": "#ae81ff", "lit": "#66d9ef", "punct": "#f8f8f2"}
#: Lines up to this long are cut to the window by cells (exact); longer ones by characters.
_EXACT_LINE = 2000


class JsonLines:
    """Indented JSON as UTF-8 bytes and where each of its lines starts."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        starts = array("I" if len(data) < 2**32 else "Q", [0])
        widest = 0
        find = data.find
        at = find(b"\n")
        while at != -1:  # a step per line: in a worker thread the event loop runs in between
            widest = max(widest, at - starts[-1])
            starts.append(at + 1)
            at = find(b"\n", at + 1)
        self.width = max(widest, len(data) - starts[-1])  # in bytes: at least the width in cells, for ASCII equal
        self.starts = starts

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, index: int) -> str:
        """One line as it is shown: JSON escapes C0 controls but not C1 or bidi, so `printable` (the
        width, counted in bytes, may then fall a few cells short on a line of many escapes)."""
        start = self.starts[index]
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.data)
        return printable(self.data[start:end].decode("utf-8", "replace"))


class JsonView(ScrollView, can_focus=True):
    """A read-only, virtualised, highlighted view of indented JSON (see the module docstring)."""

    DEFAULT_CSS = """
    JsonView { height: 1fr; background: #272822; color: #f8f8f2; }
    """

    def __init__(self, data: bytes, placeholder: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data  # all of the JSON, UTF-8
        self.lines: JsonLines | None = None  # where its lines start, once found (see `index`)
        self.placeholder = placeholder

    def index(self) -> JsonLines:
        """Find the lines (a step per line: call it in a worker thread for a big document)."""
        return JsonLines(self.data)

    def show(self, lines: JsonLines) -> None:
        """Show the document, indexed by `index()`."""
        self.lines = lines
        self.virtual_size = Size(lines.width, len(lines))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    @property
    def content(self) -> str:
        """All of the JSON as text, decoded on each call (for tests and copying; the view never needs it)."""
        return self.data.decode("utf-8", "replace")

    def visible_text(self) -> list[str]:
        """The lines in the window, as plain text (what a reader sees)."""
        return ["".join(seg.text for seg in self.render_line(y)).rstrip() for y in range(self.size.height)]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        index = scroll_y + y
        if self.lines is None:
            text = self.placeholder if y == 0 else ""
            return Strip([Segment(text, base + Style(dim=True))]).crop_extend(0, width, base)
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines.line(index)
        if len(line) <= _EXACT_LINE:
            return Strip(_segments(line, 0, len(line), base)).crop_extend(scroll_x, scroll_x + width, base)
        return Strip(_segments(line, scroll_x, scroll_x + width, base)).crop_extend(0, width, base)


def _segments(line: str, start: int, end: int, base: Style) -> list[Segment]:
    """The highlighted characters [start, end) of one line of JSON."""
    segments: list[Segment] = []
    at = 0
    for match in _TOKEN.finditer(line):
        if match.start() > at:
            _add(segments, line, at, match.start(), start, end, base)
        _add(segments, line, match.start(), match.end(), start, end, _style(base, match.lastgroup or ""))
        at = match.end()
        if at >= end:
            break
    if at < len(line):
        _add(segments, line, at, len(line), start, end, base)
    return segments


def _add(segments: list[Segment], line: str, a: int, b: int, start: int, end: int, style: Style) -> None:
    a, b = max(a, start), min(b, end)
    if a < b:
        segments.append(Segment(line[a:b], style))


@lru_cache(maxsize=64)
def _style(base: Style, kind: str) -> Style:
    colour = _COLOURS.get(kind)
    return base + Style(color=colour) if colour else base


class JsonIndexed(Message, bubble=False):
    """The worker has the entry's JSON lines ready."""

    def __init__(self, lines: JsonLines) -> None:
        super().__init__()
        self.lines = lines


class DetailScreen(Screen[None]):
    """One entry: title, summary (at once) and the IR's JSON (virtualised, once indexed).

    `entry` is an EntryDigest (what DetailPane loads) or a StoredEntry; None
    with `error` shows why there is no entry. `figures`: a Redis key's TTL (counted down by the
    `monotonic` clock), memory and hits, as its row in the keys pane read them; `raw`: a problem
    key's first bytes as stored.
    """

    DEFAULT_CSS = """
    DetailScreen #detail-title { background: $panel; padding: 0 1; text-style: bold; }
    DetailScreen #detail-figures { padding: 1 2 0 2; height: auto; }
    DetailScreen #detail-raw { padding: 0 2; height: 1fr; overflow-y: auto; }
    DetailScreen #detail-summary { padding: 1 2 1 2; height: auto; }
    DetailScreen #detail-json { padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "app.pop_screen", "Back")]

    def __init__(self, title: str, entry: EntryDigest | StoredEntry | None, error: str = "", *,
                 figures: KeyFigures | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic, raw: RawHead | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.digest = EntryDigest(entry) if isinstance(entry, StoredEntry) else entry
        self.error = error
        self.figures = figures
        self.clock = clock
        self.monotonic = monotonic
        self.raw = raw

    @property
    def entry(self) -> StoredEntry | None:
        """The entry's head (for a big entry its long lists are empty: see EntryDigest)."""
        return self.digest.head if self.digest is not None else None

    def compose(self) -> ComposeResult:
        yield Static(plain(self.title_text), id="detail-title")
        if self.figures is not None:
            yield Static(self._figures(), id="detail-figures")
        if self.digest is None:
            yield Static(plain(self.error or "entry not found", "bold red"), id="detail-summary")
            if self.raw is not None:  # what the value holds instead, escaped
                yield Static(raw_text(self.raw), id="detail-raw")
        else:
            yield Static(summary_table(self.digest, size=True), id="detail-summary")
            size = f" of a {human_bytes(self.digest.size)} entry" if self.digest.size is not None else ""
            # pretty_json() is made already for a big entry (digest_sliced), and quick to make for a small one
            yield JsonView(self.digest.pretty_json(), placeholder=f"finding the lines{size}…", id="detail-json")
        yield Footer()

    def _figures(self) -> Any:
        assert self.figures is not None
        return figures_table(self.figures, monotonic=self.monotonic(), now=self.clock().timestamp())

    def on_mount(self) -> None:
        if self.figures is not None:  # the TTL counts down
            self.set_interval(1.0, lambda: self.query_one("#detail-figures", Static).update(self._figures()))
        if self.digest is not None:
            self.json_view = self.query_one(JsonView)
            self.json_view.focus()
            self._index()

    # No arguments: Textual describes a worker by the repr() of its arguments (megabytes, here).
    @work(thread=True, group="detail-json", exclusive=True, exit_on_error=False)
    def _index(self) -> None:
        self.post_message(JsonIndexed(self.json_view.index()))

    @on(JsonIndexed)
    def _indexed(self, message: JsonIndexed) -> None:
        self.json_view.show(message.lines)
