"""What the three table panes share: a DataTable updated by row key, an empty state, a footer line.

Every cell, the footer and the empty hint pass through tui/text.py: they name specs, files and
directories, which are shown as text, never as markup or escapes."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..text import cell, plain

Column = tuple[str, str, int | None]  # key, label, fixed width (None: fit the content)


class TablePane(Vertical):
    DEFAULT_CSS = """
    TablePane > DataTable { height: 1fr; }
    TablePane > .pane-footer { height: 1; color: $text-muted; padding: 0 1; }
    TablePane > .empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    TablePane.-empty > .empty { display: block; }
    """
    COLUMNS: Sequence[Column] = ()
    #: ids are `{NAME}-table` and `{NAME}-footer`
    NAME = ""
    INITIAL_FOOTER = ""

    def empty_hint(self) -> str:
        return ""

    def compose(self) -> ComposeResult:
        # kept as attributes: late messages during shutdown must not query a torn-down DOM
        # cells of any kind: text.cell's Text mostly, numbers and the product's own strings too
        self._table: DataTable[object] = DataTable(cursor_type="row", zebra_stripes=True, id=f"{self.NAME}-table")
        for key, label, width in self.COLUMNS:
            self._table.add_column(label, key=key, width=width)
        yield self._table
        self._empty_line = Static(plain(self.empty_hint()), classes="empty")
        yield self._empty_line
        self._footer_line = Static(plain(self.INITIAL_FOOTER), classes="pane-footer", id=f"{self.NAME}-footer")
        yield self._footer_line

    @property
    def table(self) -> DataTable[object]:
        return self._table

    def selected_row_key(self) -> str | None:
        table = self._table
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def put_row(self, key: str, cells: Sequence[object], exists: bool) -> None:
        """Add the row, or update its cells in place (never rebuild the table)."""
        shown = [cell(value) for value in cells]
        if exists:
            for (column, _, width), value in zip(self.COLUMNS, shown):
                # a cell that grows ("in redis" → "filesystem only") widens an auto-width column
                self._table.update_cell(key, column, value, update_width=width is None)
        else:
            self._table.add_row(*shown, key=key)

    def set_empty_hint(self, text: str) -> None:
        """What the empty state says (shown while the pane has the `-empty` class)."""
        self._empty_line.update(plain(text))

    def set_footer(self, text: str) -> None:
        self._footer_line.update(plain(text))
