"""The full view of one entry: its summary and the IR, pretty-printed and highlighted."""

from __future__ import annotations

import json

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...ir.envelope import StoredEntry
from ..widgets.detail_pane import summary_table


class DetailScreen(Screen[None]):
    DEFAULT_CSS = """
    DetailScreen #detail-title { background: $panel; padding: 0 1; text-style: bold; }
    DetailScreen #detail-summary { padding: 1 2 0 2; height: auto; }
    DetailScreen VerticalScroll { padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "app.pop_screen", "Back")]

    def __init__(self, title: str, entry: StoredEntry | None, error: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.entry = entry
        self.error = error

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="detail-title")
        with VerticalScroll(id="detail-body"):
            if self.entry is None:
                yield Static(Text(self.error or "entry not found", style="bold red"), id="detail-summary")
            else:
                yield Static(summary_table(self.entry), id="detail-summary")
                body = json.dumps(self.entry.application_ir.model_dump(mode="json"), indent=2)
                yield Static(Syntax(body, "json", theme="monokai", word_wrap=False), id="detail-json")
        yield Footer()
