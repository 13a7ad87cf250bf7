"""The spec files under the watched directories and what the cache holds for each."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from ...watch.status import SpecStatus
from .table_pane import TablePane

COLUMNS = (("spec", "Spec", None), ("key", "Key", 8), ("state", "Status", None), ("stale", "Stale", 5), ("path", "Path", None))
_STYLES = {
    "in redis": "green", "filesystem only": "yellow", "missing": "red", "generating": "bold cyan",
    "error": "bold red", "deleted": "dim", "pending": "dim",
}


class SpecsPane(TablePane):
    COLUMNS = COLUMNS
    NAME = "specs"

    def __init__(self, dirs: list[Path], **kwargs) -> None:
        super().__init__(**kwargs)
        self.dirs = dirs
        self.statuses: dict[str, SpecStatus] = {}

    def empty_hint(self) -> str:
        if self.dirs:
            return "No spec files found yet under " + ", ".join(map(str, self.dirs))
        return "No spec directories given. Start with: ircache-tui DIR ... to list and watch specs."

    def on_mount(self) -> None:
        self.set_class(True, "-empty")
        self._footer()

    def selected(self) -> SpecStatus | None:
        key = self.selected_row_key()
        return self.statuses.get(key) if key else None

    def update_status(self, status: SpecStatus) -> None:
        key = str(status.path)
        state = status.state.value
        label = Text(state, style=_STYLES.get(state, ""))
        if status.error:
            label.append(f": {status.error}", style="red")
        stale = str(status.stale) if status.stale else ""
        cells = (status.spec_name, status.cache_key[-8:] if status.cache_key else "", label, stale, key)
        with self.app.batch_update():
            self.put_row(key, cells, key in self.statuses)
            if key not in self.statuses:
                self.table.sort("path")  # arrival order depends on which spec finished first
        self.statuses[key] = status
        self.set_class(False, "-empty")
        self._footer()

    def _footer(self) -> None:
        counts: dict[str, int] = {}
        stale = 0
        for s in self.statuses.values():
            state = s.state.value
            counts[state] = counts.get(state, 0) + 1
            stale += s.stale
        parts = [f"{n} {state}" for state, n in sorted(counts.items())]
        stale_text = f" · {stale} stale (P prunes)" if stale else ""
        watched = ", ".join(map(str, self.dirs)) or "no dirs"
        self.set_footer(
            f"{len(self.statuses)} specs in {watched}" + (": " + ", ".join(parts) if parts else "") + stale_text
        )
