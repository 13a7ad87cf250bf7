"""Warm confirmation: what is on disk and in the spec dirs, then copy only (the default), or also
generate the missing specs now or in a Message Batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Label, RadioSet

from ...fmt import plural
from ..text import plain
from ..toggles import RadioChoice
from .dialog import Dialog

WarmMode = Literal["copy", "now", "batch"]


@dataclass(frozen=True)
class WarmCounts:
    """What the dialog says before it asks: entry files on disk, specs in the spec dirs (None: the
    dashboard has no spec dirs), and why the generator cannot batch ("" when it can)."""

    files: int
    specs: int | None
    dirs: str = ""
    no_batch: str = ""
    files_error: str = ""


@dataclass(frozen=True)
class WarmRequest:
    mode: WarmMode


class WarmScreen(Dialog[WarmRequest | None]):
    DEFAULT_CSS = """
    WarmScreen > Vertical { width: 78; border: thick $primary; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("y", "confirm", "Warm")]

    def __init__(self, counts: WarmCounts) -> None:
        super().__init__()
        self.counts = counts

    def compose(self) -> ComposeResult:
        c = self.counts
        files = f"unreadable ({c.files_error})" if c.files_error else plural(c.files, "entry file")
        specs = ("no spec dirs (start the dashboard with them to generate: ircache-tui DIR)" if c.specs is None
                 else f"{plural(c.specs, 'spec')} in {c.dirs}")
        with Vertical():
            yield Label(Text("Warm Redis?", style="bold"), id="warm-title")
            # the dirs' names are text, not markup
            yield Label(Text.assemble(plain(f"Filesystem: {files} · {specs}."), "\n",
                                      "Redis gets every entry it lacks; a spec cached in neither tier is generated "
                                      "only if you choose so."), id="warm-counts")
            with RadioSet(id="warm-modes"):
                yield RadioChoice("Copy filesystem entries into Redis", value=True, id="warm-copy")
                if c.specs is not None:
                    yield RadioChoice("Also generate the missing specs: now (standard price)", id="warm-now")
                    yield RadioChoice("…in a Message Batch (half price, results in minutes to hours)",
                                      id="warm-batch", disabled=bool(c.no_batch),
                                      tooltip=plain(f"Unavailable: {c.no_batch}") if c.no_batch else None)
            if c.specs is not None and c.no_batch:  # a greyed choice says why in words, not by colour alone
                yield Label(plain(f"Message Batch unavailable: {c.no_batch}."), id="warm-no-batch")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Warm", variant="primary", id="confirm")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def _request(self) -> WarmRequest:
        # `y` can come before the dialog is composed (a key typed ahead): then the default, copy only
        sets = self.query(RadioSet)
        pressed = sets.first().pressed_button if sets else None
        modes: dict[str | None, WarmMode] = {"warm-now": "now", "warm-batch": "batch"}
        return WarmRequest(modes.get(pressed.id if pressed is not None else None, "copy"))

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(self._request())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
