"""The dashboard's footer: Textual's, with help and quit first.

Textual lays the keys out focused widget first, then its ancestors, then the app, and cuts
the line at the edge: at 80 columns the pane's keys took it all before `?` and `q`, the two
keys a newcomer needs to find the others and to leave."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: keys shown first, in this order, whatever is focused
FIRST = ("question_mark", "q")


class DashboardFooter(Footer):
    def compose(self) -> ComposeResult:
        widgets = list(super().compose())

        def rank(widget: object) -> int:
            key = widget.key if isinstance(widget, FooterKey) else ""
            return FIRST.index(key) if key in FIRST else len(FIRST)

        yield from sorted(widgets, key=rank)  # stable: the others keep Textual's order
