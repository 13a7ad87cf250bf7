"""`i`: what the server says of itself (IRCache.server_facts): version and mode, memory, the
eviction policy (and whether it may evict IR entries, in words and the warning colour), evicted
keys, clients, keyspace notifications, persistence, and each node of a cluster.

The screen asks in its own worker, which only posts the answer; the handler shows it. Only the
fields above are shown (never INFO's paths or command lines), each made printable: whatever a
server says, it is text here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ...cache.errors import IRCacheError
from ...cache.ircache import IRCache
from ...cache.server_facts import ServerFacts
from ..text import plain

WARNING = "bold yellow"


def facts_table(facts: ServerFacts) -> Table:
    """The facts as a two-column grid of plain Text (a warning in its colour, and says WARNING)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for label, words, warning in facts.lines():
        table.add_row(plain(label), plain(words, WARNING if warning else ""))
    return table


class ServerScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ServerScreen { align: center middle; }
    ServerScreen > VerticalScroll { width: 100; max-width: 100%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 1 2; }
    """
    BINDINGS = [
        Binding("escape,q,i", "dismiss", "Close"),
        Binding("r,ctrl+r", "reload", "Refresh", tooltip="Ask the server again"),
    ]

    @dataclass
    class _Answered(Message):
        facts: ServerFacts | None
        error: str = ""

    def __init__(self, cache: IRCache) -> None:
        super().__init__()
        self.cache = cache
        #: what the panel shows now (None: still asking, or the server could not be asked)
        self.facts: ServerFacts | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Redis server", style="bold"), id="server-title")
            yield Static(Text("asking the server…", style="dim"), id="server-facts")
        yield Footer()

    def on_mount(self) -> None:
        self.ask()

    def action_reload(self) -> None:
        self.ask()

    @work(group="server-facts", exclusive=True, exit_on_error=False)
    async def ask(self) -> None:
        try:
            self.post_message(self._Answered(await self.cache.server_facts()))
        except (IRCacheError, OSError) as exc:
            self.post_message(self._Answered(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

    @on(_Answered)
    def _answered(self, message: _Answered) -> None:
        self.facts = message.facts
        shown = self.query_one("#server-facts", Static)
        if message.facts is None:
            shown.update(plain(f"Cannot ask the server: {message.error}", "bold red"))
        else:
            shown.update(facts_table(message.facts))
