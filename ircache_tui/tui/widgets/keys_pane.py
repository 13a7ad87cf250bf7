"""Redis keys: one SCAN page at a time, updated by key, TTLs counting down."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ...cache.browse import KeyRow, Page
from ...fmt import human_bytes, human_ttl

# (key, label, width): fixed widths for values that change (TTL counts down) so columns don't jump
COLUMNS = (("spec", "Spec", None), ("hash8", "Hash", 8), ("ttl", "TTL", 7), ("memory", "Memory", 9),
           ("generated", "Generated", 16), ("generator", "Generator", None))


def _generated(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "?"


class KeysPane(Vertical):
    DEFAULT_CSS = """
    KeysPane > DataTable { height: 1fr; }
    KeysPane > .pane-footer { height: 1; color: $text-muted; padding: 0 1; }
    KeysPane > .empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    KeysPane.-empty > .empty { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: cache_key → (ttl seconds, monotonic time it was read) for the live countdown
        self.ttls: dict[str, tuple[int, float]] = {}
        self.rows: dict[str, KeyRow] = {}

    def compose(self) -> ComposeResult:
        # kept as attributes: late messages during shutdown must not query a torn-down DOM
        self._table = table = DataTable(cursor_type="row", zebra_stripes=True, id="keys-table")
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("No IR keys in Redis yet. Open a spec dir (ircache-tui DIR), press w to warm from "
                     "the filesystem, or run your pipeline.", classes="empty")
        self._footer_line = Static("page 1 · scanning…", classes="pane-footer", id="keys-footer")
        yield self._footer_line

    @property
    def table(self) -> DataTable:
        return self._table

    def selected_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @staticmethod
    def _cells(row: KeyRow) -> tuple:
        return (row.spec_name, row.hash8, human_ttl(row.ttl), human_bytes(row.memory),
                _generated(row.generated_at), row.generator or "?")

    def show_page(self, page: Page, *, now: float, has_prev: bool, has_next: bool, filter_text: str) -> None:
        table = self.table
        keep = self.selected_key()
        wanted = {row.cache_key for row in page.rows}
        with self.app.batch_update():
            for key in list(self.rows):
                if key not in wanted:
                    table.remove_row(key)
                    self.rows.pop(key, None)
                    self.ttls.pop(key, None)
            for row in page.rows:
                self._upsert(row, now)
            table.sort("spec", "hash8")  # SCAN order is arbitrary; a page reads better sorted
        self.set_class(not page.rows, "-empty")
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        where = f"page {page.number}"
        flt = f" · filter {filter_text!r}" if filter_text else ""
        state = "scan complete" if page.complete else ("partial page, more on n" if page.partial else "more on n")
        nav = " · p prev" if has_prev else ""
        self._footer_line.update(
            f"{where} · {len(page.rows)} keys here · {page.scanned} scanned so far · {state}{nav}{flt}"
        )

    def _upsert(self, row: KeyRow, now: float) -> None:
        table = self.table
        cells = self._cells(row)
        if row.cache_key in self.rows:
            for (col, _, _), value in zip(COLUMNS, cells):
                table.update_cell(row.cache_key, col, value)
        else:
            table.add_row(*cells, key=row.cache_key)
        self.rows[row.cache_key] = row
        self.ttls[row.cache_key] = (row.ttl, now)

    def upsert(self, row: KeyRow, now: float) -> None:
        with self.app.batch_update():
            self._upsert(row, now)
            self.table.sort("spec", "hash8")
        self.remove_class("-empty")

    def remove(self, cache_key: str) -> None:
        if cache_key in self.rows:
            self.table.remove_row(cache_key)
            self.rows.pop(cache_key, None)
            self.ttls.pop(cache_key, None)
        self.set_class(not self.rows, "-empty")

    def mark(self, cache_key: str, text: str, style: str = "bold yellow") -> None:
        if cache_key in self.rows:
            self.table.update_cell(cache_key, "generator", Text(text, style=style))

    def tick(self, now: float) -> None:
        """Count TTLs down without a round trip."""
        table = self.table
        with self.app.batch_update():
            for key, (ttl, at) in self.ttls.items():
                if ttl >= 0:
                    left = max(0, ttl - int(now - at))
                    table.update_cell(key, "ttl", human_ttl(left))
