"""A widget without display: a place for workers, timers and handlers, mounted like a pane."""

from __future__ import annotations

from textual.widget import Widget


class Controller(Widget):
    DEFAULT_CSS = """
    Controller { display: none; }
    """
