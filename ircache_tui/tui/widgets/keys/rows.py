"""The key pane's table: one row per KeyRow, by cache key; its cells, sorting, marks and the picked row.

What a row shows is decided here and nowhere else (the live updates and the pages only hand rows
in). Names in cells are text, never markup (table_pane.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from ....cache.browse import KeyBrowser, KeyRow
from ....fmt import human_bytes, human_count, human_ttl, human_usd
from ....specs.stale import is_stale
from ...picked import KeyFigures, PickedEntry
from ...services import Services
from ...text import printable
from ..table_pane import TablePane

# (key, label, width): fixed widths for values that change (TTL counts down) so columns don't jump
COLUMNS = (("mark", " ", 1), ("spec", "Spec", None), ("hash8", "Hash", 8), ("state", "State", 10), ("ttl", "TTL", 7),
           ("memory", "Memory", 9), ("cost", "Cost", 8), ("hits", "Hits", 6), ("last_hit", "Last hit", 9),
           ("generated", "Generated", 16), ("generator", "Generator", None))

View = Literal["scan", "largest", "expiring"]
VIEWS: tuple[View, ...] = ("scan", "largest", "expiring")
# `s` cycles these; a header click sorts by its column. Ties go by name (spec, then hash), so a
# page shows the same order whatever order the server's SCAN returned its keys in.
SORTS = ("spec", "ttl", "memory", "cost", "hits", "last_hit", "generated")
SORT_KEYS: dict[str, Callable[[KeyRow], tuple[Any, ...]]] = {
    "spec": lambda r: (r.spec_name, r.hash8),
    "ttl": lambda r: (r.ttl if r.ttl >= 0 else float("inf"), r.spec_name, r.hash8),
    "memory": lambda r: (-(r.memory or 0), r.spec_name, r.hash8),
    "cost": lambda r: (-(r.cost_usd or 0), r.spec_name, r.hash8),  # dearest first: what the cache saves most on
    "hits": lambda r: (-(r.hits or 0), r.spec_name, r.hash8),
    "last_hit": lambda r: (-(r.last_hit or 0), r.spec_name, r.hash8),  # most recently hit first
    "generated": lambda r: (r.generated_at or "", r.spec_name, r.hash8),
}
#: sorts that put the largest, dearest, most hit or most recently hit first (▼); the others go up (▲)
DESCENDING = {"memory", "cost", "hits", "last_hit"}
LABELS = {key: label for key, label, _ in COLUMNS}


def sort_arrow(sort_by: str) -> str:
    """▼ largest (or newest) first, ▲ smallest (or oldest, or A) first: read without colour."""
    return "▼" if sort_by in DESCENDING else "▲"


def mark_cell(marked: bool) -> Text | str:
    return Text("●", style="bold magenta") if marked else ""


def cost_text(usd: float | None) -> str:
    """`$0.0396`; `—` when unknown (an entry cached before usage was recorded, or an unpriced model)."""
    return "—" if usd is None else human_usd(usd)


def generated_text(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "?"


class KeyTable(TablePane):
    """The rows of the keys shown, kept by cache key: added, updated in place, dropped, sorted, marked."""

    COLUMNS = COLUMNS

    @dataclass
    class Picked(Message):
        """The cursor is on another key (or on none)."""

        picked: PickedEntry | None

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.cache = services.cache
        self.browser: KeyBrowser | None = None  # the SCAN pager, once the cache is open
        self.view: View = "scan"
        #: cache_key → (ttl seconds, monotonic time it was read) for the live countdown
        self.ttls: dict[str, tuple[int, float]] = {}
        self.rows: dict[str, KeyRow] = {}
        self.marked: set[str] = set()
        #: spec name → the hash8s of its files now (from the specs pane); other hashes are stale
        self.current: dict[str, set[str]] = {}
        self.sort_by = "spec"

    # -- what the App asks -----------------------------------------------------------
    def selected_key(self) -> str | None:
        return self.selected_row_key()

    def picked(self) -> PickedEntry | None:
        key = self.selected_key()
        row = self.rows.get(key) if key else None
        if row is None:
            return None
        _, read_at = self.ttls.get(row.cache_key, (row.ttl, self.services.monotonic()))
        figures = KeyFigures(row.ttl, read_at, row.memory, row.hits, row.last_hit, row.problem)
        return PickedEntry(row.spec_name, row.cache_key, "redis", figures=figures)

    def set_current(self, current: dict[str, set[str]]) -> None:
        """Mark keys of older spec versions as stale, now that the specs are known."""
        if current == self.current:
            return
        self.current = current
        with self.app.batch_update():
            for key, row in self.rows.items():
                self.table.update_cell(key, "state", self._state(row))

    def tick(self, now: float) -> None:
        """Count TTLs down without a round trip."""
        table = self.table
        with self.app.batch_update():
            for key, (ttl, at) in self.ttls.items():
                if ttl >= 0:
                    table.update_cell(key, "ttl", human_ttl(max(0, ttl - int(now - at))))

    def mark_generating(self, cache_key: str) -> None:
        if cache_key in self.rows:
            self.table.update_cell(cache_key, "generator", Text("generating…", style="bold yellow"))

    # -- what the pane above fills in ------------------------------------------------
    def render_footer(self) -> None:
        """Say where the pane is (the keys pane's footer line)."""

    def empty_now(self) -> str:
        """What the empty table means now (the hint shown instead of rows)."""
        return self.empty_hint()

    # -- rows --------------------------------------------------------------------------
    def show_rows(self, rows: list[KeyRow]) -> None:
        """Exactly these rows (a page): the others go, the cursor stays on its key if it is still here."""
        table = self.table
        keep = self.selected_key()
        wanted = {row.cache_key for row in rows}
        now = self.services.monotonic()
        with self.app.batch_update():
            for key in list(self.rows):
                if key not in wanted:
                    self.drop(key)
            for row in rows:
                self.upsert(row, now)
            self.sort()
        self.mark_empty()
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self.render_footer()
        self.announce_pick()

    def mark_empty(self) -> None:
        """The empty state (and what it means now) when no row is left; rows otherwise."""
        empty = not self.rows
        if empty:
            self.set_empty_hint(self.empty_now())
        self.set_class(empty, "-empty")

    def announce_pick(self) -> None:
        """Whatever row the cursor is on now (rows came and went): tell the App, so the detail follows."""
        self.post_message(self.Picked(self.picked()))

    def upsert(self, row: KeyRow, now: float) -> None:
        self.put_row(row.cache_key, self._cells(row), row.cache_key in self.rows)
        self.rows[row.cache_key] = row
        self.ttls[row.cache_key] = (row.ttl, now)

    def drop(self, key: str) -> None:
        if key in self.rows:
            self.table.remove_row(key)
            self.rows.pop(key, None)
            self.ttls.pop(key, None)
            self.marked.discard(key)

    def sort(self) -> None:
        # DataTable sorts by cell values; spec and hash8 name the row, so look the KeyRow up from them
        # (from what the cells show: the spec name made printable, tui/text.py)
        order = SORT_KEYS[self.sort_by]
        self._label_headers()
        rows = {(printable(row.spec_name), row.hash8): row for row in self.rows.values()}
        self.table.sort("spec", "hash8", key=lambda cells: order(rows[str(cells[0]), str(cells[1])]))

    def _label_headers(self) -> None:
        """The sorted column's header carries the arrow; the others their plain label (the sort
        that follows redraws the table)."""
        for key, column in self.table.columns.items():
            label = LABELS.get(str(key.value), column.label.plain)
            column.label = Text(f"{label}{sort_arrow(self.sort_by)}" if key.value == self.sort_by else label)

    def resort(self) -> None:
        with self.app.batch_update():
            self.sort()
        self.render_footer()
        self.announce_pick()

    def _state(self, row: KeyRow) -> Text:
        if row.problem:
            return Text(row.problem, style="bold red")
        if is_stale(row.spec_name, row.hash8, self.current):
            return Text("stale", style="yellow")
        if row.outdated:  # another generator, model or prompt made it: `warm DIR --outdated` makes it again
            return Text("outdated", style="yellow")
        return Text("")

    def _cells(self, row: KeyRow) -> tuple[object, ...]:
        return (mark_cell(row.cache_key in self.marked), row.spec_name, row.hash8, self._state(row),
                human_ttl(row.ttl), human_bytes(row.memory), cost_text(row.cost_usd),
                "?" if row.hits is None else human_count(row.hits), self._last_hit(row),
                generated_text(row.generated_at), row.generator or "?")

    def _last_hit(self, row: KeyRow) -> str:
        """How long ago, from the injected clock (snapshot tests freeze it)."""
        if row.hits is None:
            return "?"  # the counts could not be read (an ACL without HMGET)
        if row.last_hit is None:
            return "never"
        return human_ttl(max(0, int(self.services.clock().timestamp() - row.last_hit)))

    # -- the cursor, sorting and marks -------------------------------------------------
    @on(DataTable.RowHighlighted, "#keys-table")
    def _row_highlighted(self) -> None:
        self.announce_pick()

    @on(DataTable.HeaderSelected, "#keys-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column in SORT_KEYS:
            self.sort_by = column
            self.resort()

    def action_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.resort()

    def action_mark(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.marked ^= {key}
        self.table.update_cell(key, "mark", mark_cell(key in self.marked))
        self.render_footer()
        self.table.action_cursor_down()
