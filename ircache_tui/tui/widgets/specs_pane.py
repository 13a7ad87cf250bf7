"""The spec files under the watched directories and what the cache holds for each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

COLUMNS = (("spec", "Spec"), ("key", "Key"), ("state", "Status"), ("stale", "Stale"), ("path", "Path"))
_STYLES = {
    "in redis": "green", "filesystem only": "yellow", "missing": "red", "generating": "bold cyan",
    "error": "bold red", "deleted": "dim", "pending": "dim",
}


class SpecsPane(Vertical):
    DEFAULT_CSS = """
    SpecsPane > DataTable { height: 1fr; }
    SpecsPane > .pane-footer { height: 1; color: $text-muted; padding: 0 1; }
    SpecsPane > .empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    SpecsPane.-empty > .empty { display: block; }
    """

    def __init__(self, dirs: list[Path], **kwargs) -> None:
        super().__init__(**kwargs)
        self.dirs = dirs
        self.statuses: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        # kept as attributes: late messages during shutdown must not query a torn-down DOM
        self._table = table = DataTable(cursor_type="row", zebra_stripes=True, id="specs-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        hint = ("No spec files found yet under " + ", ".join(map(str, self.dirs))) if self.dirs else (
            "No spec directories given. Start with: ircache-tui DIR ... to list and watch specs.")
        yield Static(hint, classes="empty")
        self._footer_line = Static("", classes="pane-footer", id="specs-footer")
        yield self._footer_line

    @property
    def table(self) -> DataTable:
        return self._table

    def on_mount(self) -> None:
        self.set_class(True, "-empty")
        self._footer()

    def selected(self) -> Any | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.statuses.get(key)

    def update_status(self, status: Any) -> None:
        key = str(status.path)
        state = getattr(status.state, "value", str(status.state))
        label = Text(state, style=_STYLES.get(state, ""))
        if status.error:
            label.append(f": {status.error}", style="red")
        stale = str(status.stale) if status.stale else ""
        cells = (status.spec_name, status.cache_key[-8:] if status.cache_key else "", label, stale, key)
        table = self.table
        with self.app.batch_update():
            if key in self.statuses:
                for (col, _), value in zip(COLUMNS, cells):
                    table.update_cell(key, col, value)
            else:
                table.add_row(*cells, key=key)
                table.sort("path")  # arrival order depends on which spec finished first
        self.statuses[key] = status
        self.set_class(False, "-empty")
        self._footer()

    def _footer(self) -> None:
        counts: dict[str, int] = {}
        stale = 0
        for s in self.statuses.values():
            state = getattr(s.state, "value", str(s.state))
            counts[state] = counts.get(state, 0) + 1
            stale += s.stale
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        stale_text = f" · {stale} stale (P prunes)" if stale else ""
        watched = ", ".join(map(str, self.dirs)) or "no dirs"
        self._footer_line.update(
            f"{len(self.statuses)} specs in {watched}" + (": " + ", ".join(parts) if parts else "") + stale_text
        )
