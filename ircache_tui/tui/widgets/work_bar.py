"""A warm's progress, one line above the log while it generates: what it does (`batch
msgbatch_…` polling, or `generating specs`), done of total, and a bar. Shown by the App from
Operations.Progress, hidden when the warm's OperationDone comes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from ..text import plain


class WorkBar(Horizontal):
    DEFAULT_CSS = """
    WorkBar { display: none; height: 1; padding: 0 1; background: $primary 20%; }
    WorkBar.-active { display: block; }
    WorkBar > ProgressBar { width: 1fr; }
    WorkBar > Label { width: auto; margin-right: 2; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="work-label")
        yield ProgressBar(id="work-progress", show_eta=False)

    def show(self, what: str, done: int, total: int) -> None:
        self.add_class("-active")
        self.query_one(ProgressBar).update(total=max(1, total, done), progress=done)
        # a batch id is the API's text: not markup
        self.query_one(Label).update(plain(f"warm: {what} {done:,}/{total:,}"))

    def hide(self) -> None:
        self.remove_class("-active")
