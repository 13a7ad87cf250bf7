"""The `/` filter: an exact spec name, or a glob over `{spec}_{hash8}`."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ...cache.keys import InvalidSpecName, validate_spec_name


class FilterScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    FilterScreen { align: center top; }
    FilterScreen > Vertical { width: 70; max-width: 100%; height: auto; margin-top: 3; border: thick $accent; background: $surface; padding: 0 1; }
    FilterScreen Label { width: 100%; color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Filter keys: an exact spec name (petstore-spec), or a glob (pet*, *_0a1b*). Empty clears.")
            yield Input(value=self.current, placeholder="spec name or glob", id="filter-input")
            yield Label("", id="filter-error")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text and not any(c in text for c in "*?["):
            try:
                validate_spec_name(text)
            except InvalidSpecName as exc:
                self.query_one("#filter-error", Label).update(str(exc))
                return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
