"""Prune confirmation: the stale entries of the watched specs, and the entries that are not ours.

Stale entries (older hashes of specs under the watched directories) are
pruned. Entries of spec names that are not under those directories belong to
someone else sharing the prefix: they are shown, and kept unless the box is
ticked.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Footer, Label

from ...fmt import plural
from ...specs.stale import StaleReport, stale_summary
from ..text import plain
from ..toggles import TickBox
from .dialog import Dialog


@dataclass(frozen=True)
class PruneRequest:
    include_orphans: bool


class PruneScreen(Dialog[PruneRequest | None]):
    DEFAULT_CSS = """
    PruneScreen > Vertical { width: 72; border: thick $warning; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("y", "confirm", "Prune")]

    def __init__(self, report: StaleReport, dirs: str) -> None:
        super().__init__()
        self.report = report
        self.dirs = dirs

    def compose(self) -> ComposeResult:
        r = self.report
        with Vertical():
            yield Label("Prune stale entries of the watched specs?", id="prune-title")
            yield Label(plain(  # the directories' names, and Redis's words below: text, not markup
                f"Stale (older hashes of specs under {self.dirs}): {stale_summary(r)}. These go."),
                id="prune-stale",
            )
            yield Label(plain(
                f"Not under {self.dirs}: {plural(len(r.redis_orphaned), 'Redis key')}, "
                f"{plural(len(r.files_orphaned), 'file')}. "
                "Other pipelines sharing the prefix may own them: kept unless ticked."),
                id="prune-orphans",
            )
            yield TickBox("Also delete the entries not under these directories", value=False, id="orphans",
                           disabled=not (r.redis_orphaned or r.files_orphaned))
            if r.redis_error:
                yield Label(plain(f"Redis not checked: {r.redis_error}"), id="prune-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Prune", variant="warning", id="confirm")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(PruneRequest(include_orphans=self.query_one("#orphans", Checkbox).value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
