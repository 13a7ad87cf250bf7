"""`?`: every key and what it does, generated from the app's bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

EXTRA = (
    ("filter", "text matches inside spec names; =name is exactly that spec (not its _v2 cousins); "
               "*, ? or [ make a glob over spec_hash8"),
    ("read-only", "--read-only disables every key that writes (greyed out; pressing one says why)"),
    ("live", "keys set, expired or deleted elsewhere appear without a refresh (notifications, or polling)"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = bindings

    def compose(self) -> ComposeResult:
        table = Table(title="ircache-tui keys", expand=True, show_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("action")
        for key, description in self.rows:
            table.add_row(key, description)
        for key, description in EXTRA:
            table.add_row(key, description, style="dim")
        with VerticalScroll():
            yield Static(table)
        yield Footer()
