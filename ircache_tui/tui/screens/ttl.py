"""`T`: set one key's TTL to a value the operator types (`3600`, `90m`, `12h`, `7d`)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Input, Label

from ...fmt import duration_seconds, human_ttl
from ..text import plain
from .dialog import Dialog

MAX_TTL = 10 * 365 * 86_400  # Redis takes more; nobody means it for an IR cache


def parse_duration(text: str) -> int:
    """Seconds from `3600`, `90m`, `12h` or `7d`; ValueError with a sentence otherwise."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise ValueError("a TTL is a whole number with an optional unit: 3600, 90m, 12h, 7d")
    if not 1 <= seconds <= MAX_TTL:
        raise ValueError(f"a TTL is between 1 second and {human_ttl(MAX_TTL)}")
    return seconds


class TtlScreen(Dialog[int | None]):
    DEFAULT_CSS = """
    TtlScreen Label { margin-bottom: 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, cache_key: str, configured: int) -> None:
        super().__init__()
        self.cache_key = cache_key
        self.configured = configured

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(plain(f"New TTL for {self.cache_key} "
                              f"(t resets it to the configured {human_ttl(self.configured)})"))
            yield Input(placeholder="3600, 90m, 12h, 7d", id="ttl-input")
            yield Label("", id="ttl-error", classes="dialog-error")
        yield Footer()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(parse_duration(event.value))
        except ValueError as exc:
            self.query_one("#ttl-error", Label).update(plain(exc))

    def action_cancel(self) -> None:
        self.dismiss(None)
