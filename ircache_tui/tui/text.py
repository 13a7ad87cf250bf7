"""Text from outside, made fit for the screen: never markup, never an escape sequence.

Textual parses a plain `str` as markup almost everywhere (a DataTable cell, `Static`,
`Label`, a Rich `Table` cell, a notification), so a spec titled `# Orders [/v2] API`
would raise MarkupError and `[reverse]evil.md` would lose its brackets; and Rich
passes ESC through, so an IR name holding OSC 52 would write to the clipboard.
Whatever embeds data goes through `plain` (or `cell`, for a table): a `rich.text.Text`,
which is never parsed, of `redact.printable` text, which holds no control character.
Pure product text with intended markup may stay a `str`.
"""

from __future__ import annotations

from rich.text import Text

from ..redact import printable

__all__ = ["cell", "plain", "printable"]


def plain(text: object, style: str = "") -> Text:
    """`text` shown as itself: secrets masked, controls escaped, brackets kept."""
    return Text(printable(text), style=style)


def cell(value: object) -> object:
    """A DataTable cell: a `str` becomes what the table makes of one (a single line, no wrap)
    without the markup; a `Text` keeps its styles with its text made printable; anything
    else (numbers) is left to the table."""
    if isinstance(value, str):
        return Text(printable(value), no_wrap=True, end="")
    if isinstance(value, Text):
        shown = printable(value.plain)
        if shown != value.plain:  # escapes change the length: the spans no longer fit, keep the style
            return Text(shown, style=value.style, no_wrap=True, end="")
    return value
