"""`g`: go to an entry by what one has in hand: a key from a log line or a colleague
(`ir_cache:petstore_0a1b2c3d`, `petstore_0a1b2c3d`), or a spec name (its newest entry)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label

from ..text import plain
from .dialog import Dialog

MAX_TYPED = 400  # a Redis key of ours is at most the prefix, 200 bytes of name and `_hash8`


class JumpScreen(Dialog[str | None]):
    DEFAULT_CSS = """
    JumpScreen > Vertical { width: 76; }
    JumpScreen Label { margin-bottom: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(plain(f"Go to a key ({self.prefix}:petstore_0a1b2c3d or petstore_0a1b2c3d) "
                              "or a spec name (its newest entry; =name for a name that ends like a key)"))
            yield Input(placeholder=f"{self.prefix}:spec_0a1b2c3d · spec_0a1b2c3d · spec", id="jump-input",
                        max_length=MAX_TYPED)
        yield Footer()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
