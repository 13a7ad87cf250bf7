"""`D`: the structural diff of an entry and the version of its spec before (or after) it.

The App finds the pair and computes the diff in a worker (specs.history,
ir.diff) and posts `DiffFound`; this screen only shows it: added in green,
removed in red, changed in yellow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from ...ir.diff import IRDiff, render_lines
from ..text import plain, printable

STYLES = {"heading": "bold", "added": "green", "removed": "red", "changed": "yellow", "detail": "yellow"}


@dataclass
class DiffFound(Message):
    """What a `D` found: a diff to show, or (diff None) a note saying why there is none."""

    spec_name: str
    from_key: str = ""
    to_key: str = ""
    diff: IRDiff | None = field(default=None, repr=False)
    note: str = ""


def diff_text(diff: IRDiff) -> Text:
    """The diff as coloured text; `no structural change` when there is none. Its lines name
    entities, paths and flows from the IRs: escaped, as everything from outside is."""
    lines = render_lines(diff)
    if not lines:
        return Text("no structural change (entities, endpoints, flows and rules are the same)", style="dim")
    text = Text()
    for i, (kind, line) in enumerate(lines):
        if i:
            text.append("\n")
        text.append(printable(line), style=STYLES[kind])
    return text


class DiffScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    DiffScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 1 2; }
    DiffScreen #diff-title { width: 100%; text-style: bold; }
    DiffScreen #diff-summary { width: 100%; margin-bottom: 1; }
    DiffScreen VerticalScroll { height: auto; max-height: 100%; }
    """
    # `D` again is taken here (hidden), so the dashboard's D does not stack a second diff
    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("D", "close", "Close", show=False)]

    def __init__(self, spec_name: str, from_key: str, to_key: str, diff: IRDiff) -> None:
        super().__init__()
        self.spec_name = spec_name
        self.from_key = from_key
        self.to_key = to_key
        self.diff = diff

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(plain(f"{self.spec_name}: {self.from_key} \u2192 {self.to_key}"), id="diff-title")
            yield Label(plain(self.diff.summary()), id="diff-summary")
            with VerticalScroll():
                yield Static(diff_text(self.diff), id="diff-body")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
