"""Filesystem entries: key, size, modified time, warm/cold in Redis, quarantined files marked.

The pane loads its own entries (a worker that lists the cache dir and asks
Redis which are warm) and owns `d` on a file. It works while Redis is down:
the warm column then says `unknown`, from the moment the health controller says
down (`redis_down`) until a listing after Redis is back (`redis_back`): what
Redis held before it went is not what it holds now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ...cache.errors import IRCacheError
from ...cache.fs_tier import FileEntry
from ...cache.ircache import IRCache
from ...fmt import human_bytes, human_time, plural
from .. import messages as m
from ..picked import PickedEntry
from ..screens.confirm import ConfirmScreen
from .table_pane import TablePane

COLUMNS = (("key", "Key", None), ("size", "Size", 10), ("mtime", "Modified", 16), ("redis", "Redis", 11))


def _row_key(entry: FileEntry) -> str:
    return f"q:{entry.path.name}" if entry.quarantined else entry.cache_key


class FilesPane(TablePane):
    COLUMNS = COLUMNS
    NAME = "files"
    BINDINGS = [Binding("d", "delete", "Delete", tooltip="Delete the selected entry file, after asking")]
    WRITES = {"delete"}

    @dataclass
    class Picked(Message):
        picked: PickedEntry | None

    @dataclass
    class _Loaded(Message):
        entries: list[FileEntry]
        warm: list[bool | None]  # None: Redis unknown (down)
        error: str = ""

    def __init__(self, cache: IRCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.entries: dict[str, FileEntry] = {}
        self._redis_down = False
        self._last: FilesPane._Loaded | None = None  # the listing shown

    def empty_hint(self) -> str:
        return "The filesystem tier is empty. Entries appear here when IRs are generated."

    def selected(self) -> FileEntry | None:
        key = self.selected_row_key()
        return self.entries.get(key) if key else None

    def picked(self) -> PickedEntry | None:
        entry = self.selected()
        if entry is None or entry.quarantined:
            return None
        return PickedEntry(entry.spec_name, entry.cache_key, "filesystem")

    def redis_down(self) -> None:
        """Redis stopped answering: whether a file is warm is unknown until it is back."""
        self._redis_down = True
        if self._last is not None:
            self._show(self._last)

    def redis_back(self) -> None:
        """Redis answers again: list again (it may have come back empty)."""
        self._redis_down = False
        self.reload()

    @work(group="files", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        try:
            entries = await self.cache.list_files(include_quarantined=True)
        except OSError as exc:
            self.post_message(self._Loaded([], [], f"cannot list {self.cache.cache_dir}: {exc.strerror or exc}"))
            return
        try:
            present = await self.cache.in_redis_many([e.cache_key for e in entries if not e.quarantined])
            it = iter(present)
            warm: list[bool | None] = [None if e.quarantined else next(it) for e in entries]
        except IRCacheError:
            warm = [None] * len(entries)
        self.post_message(self._Loaded(entries, warm))

    @on(_Loaded)
    def _loaded(self, message: _Loaded) -> None:
        self._last = message
        self._show(message)

    def _show(self, message: _Loaded) -> None:
        table = self.table
        # while Redis is down, a listing read before it went (or on its way down) says nothing now
        warm = [None] * len(message.warm) if self._redis_down else message.warm
        wanted = {_row_key(e): (e, w) for e, w in zip(message.entries, warm)}
        with self.app.batch_update():
            for key in list(self.entries):
                if key not in wanted:
                    table.remove_row(key)
                    del self.entries[key]
            for key, (entry, is_warm) in wanted.items():
                if entry.quarantined:
                    state = Text("quarantined", style="bold red")
                elif is_warm is None:
                    state = Text("unknown", style="dim")
                else:
                    state = Text("warm", style="green") if is_warm else Text("cold", style="yellow")
                cells = (entry.cache_key, human_bytes(entry.size), human_time(entry.mtime), state)
                self.put_row(key, cells, key in self.entries)
                self.entries[key] = entry
            table.sort("key", key=str)  # the cells are Text (tui/text.py), sorted by what they show
        self.set_class(not message.entries, "-empty")
        if message.error:
            self.set_footer(message.error)
            return
        live = [e for e in message.entries if not e.quarantined]
        cold = sum(1 for e, w in zip(message.entries, warm) if not e.quarantined and w is False)
        quarantined = len(message.entries) - len(live)
        total = human_bytes(sum(e.size for e in live))
        extra = f" · {quarantined} quarantined" if quarantined else ""
        unknown = " · warm unknown: Redis is down" if live and all(w is None for w in warm) else ""
        self.set_footer(f"{self.cache.cache_dir} · {plural(len(live), 'entry', 'entries')}, {total} · "
                        f"{cold} cold (w warms){extra}{unknown}")

    @on(DataTable.RowHighlighted, "#files-table")
    def _row_highlighted(self) -> None:
        self.post_message(self.Picked(self.picked()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WRITES and self.cache.read_only:
            return None  # greyed out; the App's on_key says why
        return True

    def action_delete(self) -> None:
        entry = self.selected()
        if entry is None or entry.quarantined:
            self.app.notify("Select an entry file to delete", severity="warning")
            return

        def chosen(yes: bool | None) -> None:
            if yes:
                self.delete_file(entry.cache_key)

        self.app.push_screen(ConfirmScreen(f"Delete the entry file {entry.cache_key}.json?\n"
                                           "(Redis keeps its copy until you flush it.)", "Delete"), chosen)

    @work(group="files-delete", exit_on_error=False)
    async def delete_file(self, cache_key: str) -> None:
        try:
            gone = await self.cache.delete_entry(cache_key, "filesystem")
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Delete failed: {exc}", error=True, by="delete-file"))
            return
        # a file: Redis's totals are as they were (no walk to learn so)
        self.post_message(m.OperationDone(f"Deleted {cache_key}.json" if gone else f"{cache_key}.json was already gone",
                                          by="delete-file", removed=m.Removed(None, files=int(gone))))
