"""`e` on the keys pane: which format (CSV or NDJSON) and which file the keys view is exported to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label, RadioButton, RadioSet

from ...cache.export import FORMATS, ExportFormat
from ..text import plain
from .dialog import Dialog

_EXTENSIONS: dict[ExportFormat, str] = {"csv": ".csv", "ndjson": ".ndjson"}


@dataclass(frozen=True, slots=True)
class ExportRequest:
    fmt: ExportFormat
    path: Path  # as typed (`~` expanded): relative to the directory the dashboard runs in


def default_path(now: datetime, fmt: ExportFormat) -> str:
    """`./ircache-keys-20260301-120005.csv`: in the current directory, never an older export's name."""
    return f"./ircache-keys-{now:%Y%m%d-%H%M%S}{_EXTENSIONS[fmt]}"


class ExportScreen(Dialog[ExportRequest | None]):
    DEFAULT_CSS = """
    ExportScreen > Vertical { width: 72; }
    ExportScreen Label { margin-bottom: 0; }
    ExportScreen RadioSet { layout: horizontal; width: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+o", "toggle_format", "CSV/NDJSON", tooltip="Export as CSV or as NDJSON (one JSON object a line)"),
    ]

    def __init__(self, what: str, now: datetime) -> None:
        """`what`: the view in words (`every key matching 'pet', sorted by cost`)."""
        super().__init__()
        self.what = what
        self.now = now
        self.fmt: ExportFormat = "csv"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(plain(f"Export {self.what} to a file"))
            with RadioSet(id="export-format"):
                for fmt in FORMATS:
                    yield RadioButton(fmt.upper(), value=fmt == self.fmt, id=f"export-{fmt}")
            yield Input(default_path(self.now, self.fmt), placeholder="file to write", id="export-path")
            yield Label("enter exports · ctrl+o switches the format · esc cancels", id="export-hint")
            yield Label("", id="export-error", classes="dialog-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(RadioSet.Changed, "#export-format")
    def _format_picked(self, event: RadioSet.Changed) -> None:
        self._set_format(FORMATS[event.index])

    def action_toggle_format(self) -> None:
        fmt = FORMATS[(FORMATS.index(self.fmt) + 1) % len(FORMATS)]
        self.query_one(f"#export-{fmt}", RadioButton).value = True  # RadioSet.Changed follows

    def _set_format(self, fmt: ExportFormat) -> None:
        """The path's extension follows the format, when it is the other format's."""
        before, self.fmt = self.fmt, fmt
        box = self.query_one("#export-path", Input)
        old, new = _EXTENSIONS[before], _EXTENSIONS[fmt]
        if old != new and box.value.endswith(old):
            box.value = box.value[: -len(old)] + new
            box.cursor_position = len(box.value)  # at the end, where it was, not inside the new extension

    @on(Input.Submitted, "#export-path")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.query_one("#export-error", Label).update("Give a file to write")
            return
        self.dismiss(ExportRequest(self.fmt, Path(text).expanduser()))

    def action_cancel(self) -> None:
        self.dismiss(None)
