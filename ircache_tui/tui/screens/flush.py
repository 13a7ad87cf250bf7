"""Flush confirmation: how many keys, which tiers; Redis only by default."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, RadioButton, RadioSet


@dataclass(frozen=True)
class FlushRequest:
    spec_name: str | None
    redis: bool
    filesystem: bool


class FlushScreen(ModalScreen[FlushRequest | None]):
    DEFAULT_CSS = """
    FlushScreen { align: center middle; }
    FlushScreen > Vertical { width: 64; max-width: 100%; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    FlushScreen Label { width: 100%; margin-bottom: 1; }
    FlushScreen RadioSet { width: 100%; margin-bottom: 1; }
    FlushScreen Horizontal { height: auto; align: right middle; }
    FlushScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("y", "confirm", "Flush")]

    def __init__(self, spec_name: str | None, redis_keys: int, files: int) -> None:
        super().__init__()
        self.spec_name = spec_name
        self.redis_keys = redis_keys
        self.files = files

    def compose(self) -> ComposeResult:
        what = f"spec [b]{self.spec_name}[/b]" if self.spec_name else "[b]ALL[/b] IR entries"
        with Vertical():
            yield Label(f"Flush {what}?", id="flush-title")
            yield Label(
                f"Redis: {self.redis_keys} key(s) · filesystem: {self.files} file(s).\n"
                "Only IR keys under the prefix are touched. The filesystem is the cold-start tier.",
                id="flush-counts",
            )
            with RadioSet(id="flush-tiers"):
                yield RadioButton(f"Redis only ({self.redis_keys})", value=True, id="tier-redis")
                yield RadioButton(f"Filesystem only ({self.files})", id="tier-fs")
                yield RadioButton(f"Both ({self.redis_keys + self.files})", id="tier-both")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Flush", variant="error", id="confirm")

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def _request(self) -> FlushRequest:
        pressed = self.query_one(RadioSet).pressed_button
        choice = pressed.id if pressed is not None else "tier-redis"
        return FlushRequest(
            self.spec_name, redis=choice in ("tier-redis", "tier-both"), filesystem=choice in ("tier-fs", "tier-both")
        )

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(self._request())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
