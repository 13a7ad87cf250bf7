"""A banner shown only while Redis is down."""

from __future__ import annotations

from textual.widgets import Static

from ..text import plain


class RedisBanner(Static):
    DEFAULT_CSS = """
    RedisBanner { display: none; height: auto; background: $error; color: $text; padding: 0 1; text-style: bold; }
    RedisBanner.-down { display: block; }
    """

    def show_down(self, reason: str) -> None:
        # the reason quotes the client or the server: text, never markup
        self.update(plain(f"Redis is down: {reason} — retrying; the filesystem and specs panes keep working"))
        self.add_class("-down")

    def show_up(self) -> None:
        self.remove_class("-down")
