"""Filesystem entries: key, size, modified time, warm/cold in Redis, quarantined files marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ...cache.fs_tier import FileEntry
from ...fmt import human_bytes, human_time

COLUMNS = (("key", "Key"), ("size", "Size"), ("mtime", "Modified"), ("redis", "Redis"))


def _row_key(entry: FileEntry) -> str:
    return f"q:{entry.path.name}" if entry.quarantined else entry.cache_key


class FilesPane(Vertical):
    DEFAULT_CSS = """
    FilesPane > DataTable { height: 1fr; }
    FilesPane > .pane-footer { height: 1; color: $text-muted; padding: 0 1; }
    FilesPane > .empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    FilesPane.-empty > .empty { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: dict[str, FileEntry] = {}

    def compose(self) -> ComposeResult:
        # kept as attributes: late messages during shutdown must not query a torn-down DOM
        self._table = table = DataTable(cursor_type="row", zebra_stripes=True, id="files-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("The filesystem tier is empty. Entries appear here when IRs are generated.", classes="empty")
        self._footer_line = Static("", classes="pane-footer", id="files-footer")
        yield self._footer_line

    @property
    def table(self) -> DataTable:
        return self._table

    def selected(self) -> FileEntry | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.entries.get(key)

    def show(self, entries: list[FileEntry], warm: list[bool | None], directory: str) -> None:
        table = self.table
        wanted = {_row_key(e): (e, w) for e, w in zip(entries, warm)}
        with self.app.batch_update():
            for key in list(self.entries):
                if key not in wanted:
                    table.remove_row(key)
                    del self.entries[key]
            for key, (entry, is_warm) in wanted.items():
                if entry.quarantined:
                    state = Text("quarantined", style="bold red")
                elif is_warm is None:
                    state = Text("?", style="dim")
                else:
                    state = Text("warm", style="green") if is_warm else Text("cold", style="yellow")
                cells = (entry.cache_key, human_bytes(entry.size), human_time(entry.mtime), state)
                if key in self.entries:
                    for (col, _), value in zip(COLUMNS, cells):
                        table.update_cell(key, col, value)
                else:
                    table.add_row(*cells, key=key)
                self.entries[key] = entry
            table.sort("key")
        self.set_class(not entries, "-empty")
        live = [e for e in entries if not e.quarantined]
        cold = sum(1 for e, w in zip(entries, warm) if not e.quarantined and w is False)
        quarantined = len(entries) - len(live)
        total = human_bytes(sum(e.size for e in live))
        extra = f" · {quarantined} quarantined" if quarantined else ""
        self._footer_line.update(
            f"{directory} · {len(live)} entries, {total} · {cold} cold (w warms){extra}"
        )
