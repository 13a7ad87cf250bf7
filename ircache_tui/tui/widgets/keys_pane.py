"""The keys pane moved to the package widgets/keys/; this module keeps the old import working
(`from ircache_tui.tui.widgets.keys_pane import KeysPane`, as app.py has it)."""

from .keys import COLUMNS, SORT_KEYS, SORTS, VIEWS, KeysPane, View

__all__ = ["COLUMNS", "SORTS", "SORT_KEYS", "VIEWS", "KeysPane", "View"]
