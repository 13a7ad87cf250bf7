"""The spec files under the watched directories and what the cache holds for each.

The pane owns the SpecWatcher: it starts it when the cache is ready, shows
each status it reports, and looks again at the specs whose keys changed
(a flush, a delete, an expiry, a Redis restart), coalesced, so the tab stays
true without a refresh. It reports the specs' current hashes to the App,
which hands them to the keys pane (older hashes are stale there). The
footer's stale count is the watcher's, the number `prune` gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable

from ...cache.ircache import IRCache
from ...specs.stale import current_hashes
from ...watch import SpecState, SpecStatus, SpecWatcher
from ...watch.stale import current_specs
from ..picked import PickedEntry
from ..text import printable
from .table_pane import TablePane

COLUMNS = (("spec", "Spec", None), ("key", "Key", 8), ("state", "Status", None), ("stale", "Stale", 5), ("path", "Path", None))
_STYLES = {
    "in redis": "green", "filesystem only": "yellow", "missing": "red", "generating": "bold cyan",
    "error": "bold red", "deleted": "dim", "pending": "dim",
}
log = logging.getLogger("ircache")
FOLLOW_DELAY = 0.2  # a burst of changes looks again once


class SpecsPane(TablePane):
    COLUMNS = COLUMNS
    NAME = "specs"

    @dataclass
    class Picked(Message):
        picked: PickedEntry | None

    @dataclass
    class CurrentChanged(Message):
        """spec name → the hash8s of its files now."""

        current: dict[str, set[str]]

    @dataclass
    class _Status(Message):
        status: SpecStatus

    def __init__(self, cache: IRCache, dirs: list[Path], *, pattern: str = "*.md", watch: bool = True,
                 generate: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.dirs = dirs
        self.pattern = pattern
        self.watch_files = watch  # not `self.watch`: that would hide DOMNode.watch
        self.generate = generate
        self.watcher: SpecWatcher | None = None
        self.statuses: dict[str, SpecStatus] = {}
        self._current: dict[str, set[str]] = {}
        self._follow: set[str] | None = set()  # spec names to look at again; None: all of them
        self._follow_timer: Timer | None = None
        self._current_timer: Timer | None = None

    def empty_hint(self) -> str:
        if self.dirs:
            return "No spec files found yet under " + ", ".join(map(str, self.dirs))
        return "No spec directories given. Start with: ircache-tui DIR ... to list and watch specs."

    def on_mount(self) -> None:
        self.set_class(True, "-empty")
        self._footer()

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def selected(self) -> SpecStatus | None:
        key = self.selected_row_key()
        return self.statuses.get(key) if key else None

    def picked(self) -> PickedEntry | None:
        status = self.selected()
        if status is None or not status.spec_name:
            return None
        return PickedEntry(status.spec_name, status.cache_key, "spec", status.path)

    def spec_path_for(self, spec_name: str) -> Path | None:
        for status in self.statuses.values():
            if status.spec_name == spec_name and status.state is not SpecState.DELETED:
                return status.path
        return None

    # -- the watcher ----------------------------------------------------------------
    def start(self) -> None:
        """The cache is open: walk the directories and follow them."""
        if not self.dirs or self.watcher is not None:
            return
        self.watcher = SpecWatcher(
            self.cache, self.dirs, pattern=self.pattern, generate=self.generate, watch=self.watch_files,
            on_status=lambda status: self.post_message(self._Status(status)),
        )
        self.run_watcher()

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def run_watcher(self) -> None:
        if self.watcher is None:  # start() sets it before it runs this
            return
        try:
            await self.watcher.run()
        except Exception as exc:  # the log says why; the tab keeps what it showed
            log.error("Spec watcher stopped: %s", exc)

    @on(_Status)
    def _status(self, message: _Status) -> None:
        self.update_status(message.status)
        if self._current_timer is None:  # a burst of 1,000 statuses recomputes once, not 1,000 times
            self._current_timer = self.set_timer(FOLLOW_DELAY, self._announce_current)

    def _announce_current(self) -> None:
        self._current_timer = None
        current = current_hashes(current_specs(self.statuses.values()))
        if current != self._current:
            self._current = current
            self.post_message(self.CurrentChanged(current))

    def follow(self, spec_names: Iterable[str] | None) -> None:
        """Keys of these specs (None: of any) changed in Redis or on disk: look at them again soon."""
        if self.watcher is None:
            return
        if spec_names is None or self._follow is None:
            self._follow = None
        else:
            self._follow.update(spec_names)
        if self._follow_timer is None:
            self._follow_timer = self.set_timer(FOLLOW_DELAY, self._look_again)

    def _look_again(self) -> None:
        self._follow_timer = None
        names, self._follow = self._follow, set()
        if names is None:
            self.refresh_specs(None)
            return
        paths = [s.path for s in self.statuses.values() if s.spec_name in names and s.state is not SpecState.DELETED]
        if paths:
            self.refresh_specs(paths)

    def flushed(self, spec_name: str | None, *, redis: bool, filesystem: bool) -> None:
        """Our own flush: without file watching, the rows follow it here (SpecWatcher.follow_flush),
        no walk; a watching watcher follows it by itself (its Redis keeper makes the IRs again)."""
        if self.watcher is not None and not self.watch_files:
            self.follow_flush(spec_name, redis, filesystem)

    @work(group="specs-refresh", exit_on_error=False)
    async def follow_flush(self, spec_name: str | None, redis: bool, filesystem: bool) -> None:
        if self.watcher is not None:
            await self.watcher.follow_flush(spec_name, redis=redis, filesystem=filesystem)

    @work(group="specs-refresh", exit_on_error=False)
    async def refresh_specs(self, paths: list[Path] | None) -> None:
        if self.watcher is not None:
            await self.watcher.refresh(paths)

    # -- the table ---------------------------------------------------------------------
    def update_status(self, status: SpecStatus) -> None:
        key = str(status.path)
        state = status.state.value
        label = Text(state, style=_STYLES.get(state, ""))
        if status.error:
            label.append(f": {printable(status.error)}", style="red")
        stale = str(status.stale) if status.stale else ""
        cells = (status.spec_name, status.cache_key[-8:] if status.cache_key else "", label, stale, key)
        with self.app.batch_update():
            self.put_row(key, cells, key in self.statuses)
            if key not in self.statuses:
                self.table.sort("path", key=str)  # arrival order depends on which spec finished first
        self.statuses[key] = status
        self.set_class(False, "-empty")
        self._footer()

    def _footer(self) -> None:
        counts: dict[str, int] = {}
        for s in self.statuses.values():
            counts[s.state.value] = counts.get(s.state.value, 0) + 1
        # the watcher's whole count, as prune gives it: not the rows' sum, in which a stale entry
        # counts once for every file of its spec's name
        stale = self.watcher.stale_entries if self.watcher is not None else 0
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        stale_text = f" · {stale} stale (P prunes)" if stale else ""
        watched = ", ".join(map(str, self.dirs)) or "no dirs"
        noun = "spec" if len(self.statuses) == 1 else "specs"
        self.set_footer(
            f"{len(self.statuses)} {noun} in {watched}" + (": " + ", ".join(parts) if parts else "") + stale_text
        )

    @on(DataTable.RowHighlighted, "#specs-table")
    def _row_highlighted(self) -> None:
        self.post_message(self.Picked(self.picked()))
