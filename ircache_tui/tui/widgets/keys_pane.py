"""Redis keys: one SCAN page at a time, updated by key, TTLs counting down."""

from __future__ import annotations

from rich.text import Text

from ...cache.browse import KeyRow, Page
from ...fmt import human_bytes, human_ttl
from ...specs.stale import is_stale
from .table_pane import TablePane

# (key, label, width): fixed widths for values that change (TTL counts down) so columns don't jump
COLUMNS = (("spec", "Spec", None), ("hash8", "Hash", 8), ("state", "State", 5), ("ttl", "TTL", 7), ("memory", "Memory", 9),
           ("generated", "Generated", 16), ("generator", "Generator", None))


def _generated(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "?"


class KeysPane(TablePane):
    COLUMNS = COLUMNS
    NAME = "keys"
    INITIAL_FOOTER = "page 1 · scanning…"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: cache_key → (ttl seconds, monotonic time it was read) for the live countdown
        self.ttls: dict[str, tuple[int, float]] = {}
        self.rows: dict[str, KeyRow] = {}
        #: spec name → the hash8s of its files now (from the watcher); other hashes are stale
        self.current: dict[str, set[str]] = {}
        self._page_meta: tuple[Page, bool, str] | None = None

    def empty_hint(self) -> str:
        return ("No IR keys in Redis yet. Open a spec dir (ircache-tui DIR), press w to warm from "
                "the filesystem, or run your pipeline.")

    def selected_key(self) -> str | None:
        return self.selected_row_key()

    def _state(self, row: KeyRow) -> Text:
        return Text("stale", style="yellow") if is_stale(row.spec_name, row.hash8, self.current) else Text("")

    def set_current(self, current: dict[str, set[str]]) -> None:
        """Mark keys of older spec versions as stale, now that the specs are known."""
        self.current = current
        with self.app.batch_update():
            for key, row in self.rows.items():
                self.table.update_cell(key, "state", self._state(row))

    def _cells(self, row: KeyRow) -> tuple:
        return (row.spec_name, row.hash8, self._state(row), human_ttl(row.ttl), human_bytes(row.memory),
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
        self._page_meta = (page, has_prev, filter_text)
        self._render_footer()

    def _render_footer(self) -> None:
        if self._page_meta is None:
            return
        page, has_prev, filter_text = self._page_meta
        flt = f" · filter {filter_text!r}" if filter_text else ""
        state = "scan complete" if page.complete else ("partial page, more on n" if page.partial else "more on n")
        nav = " · p prev" if has_prev else ""
        # rows here counts keys that arrived live since the page was read
        self.set_footer(
            f"page {page.number} · {len(self.rows)} keys here · {page.scanned} scanned so far · {state}{nav}{flt}"
        )

    def _upsert(self, row: KeyRow, now: float) -> None:
        self.put_row(row.cache_key, self._cells(row), row.cache_key in self.rows)
        self.rows[row.cache_key] = row
        self.ttls[row.cache_key] = (row.ttl, now)

    def upsert(self, row: KeyRow, now: float) -> None:
        with self.app.batch_update():
            self._upsert(row, now)
            self.table.sort("spec", "hash8")
        self.remove_class("-empty")
        self._render_footer()

    def remove(self, cache_key: str) -> None:
        if cache_key in self.rows:
            self.table.remove_row(cache_key)
            self.rows.pop(cache_key, None)
            self.ttls.pop(cache_key, None)
        self.set_class(not self.rows, "-empty")
        self._render_footer()

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
