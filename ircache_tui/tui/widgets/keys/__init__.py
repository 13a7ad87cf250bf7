"""The Redis keys pane: pane.py (paging, filter, views, the keys' actions), live.py (following
changes), rows.py (the table: cells, sorting, marks), footer.py (what its footer and empty state say)."""

from .pane import KeysPane
from .rows import COLUMNS, SORT_KEYS, SORTS, VIEWS, View

__all__ = ["COLUMNS", "SORTS", "SORT_KEYS", "VIEWS", "KeysPane", "View"]
