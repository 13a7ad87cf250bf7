"""Filesystem entries: key, size, modified time, warm/cold in Redis, quarantined files marked."""

from __future__ import annotations

from rich.text import Text

from ...cache.fs_tier import FileEntry
from ...fmt import human_bytes, human_time
from .table_pane import TablePane

COLUMNS = (("key", "Key", None), ("size", "Size", 10), ("mtime", "Modified", 16), ("redis", "Redis", 11))


def _row_key(entry: FileEntry) -> str:
    return f"q:{entry.path.name}" if entry.quarantined else entry.cache_key


class FilesPane(TablePane):
    COLUMNS = COLUMNS
    NAME = "files"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: dict[str, FileEntry] = {}

    def empty_hint(self) -> str:
        return "The filesystem tier is empty. Entries appear here when IRs are generated."

    def selected(self) -> FileEntry | None:
        key = self.selected_row_key()
        return self.entries.get(key) if key else None

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
                self.put_row(key, cells, key in self.entries)
                self.entries[key] = entry
            table.sort("key")
        self.set_class(not entries, "-empty")
        live = [e for e in entries if not e.quarantined]
        cold = sum(1 for e, w in zip(entries, warm) if not e.quarantined and w is False)
        quarantined = len(entries) - len(live)
        total = human_bytes(sum(e.size for e in live))
        extra = f" · {quarantined} quarantined" if quarantined else ""
        self.set_footer(
            f"{directory} · {len(live)} entries, {total} · {cold} cold (w warms){extra}"
        )
