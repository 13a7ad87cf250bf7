"""What the key pane's footer line and its empty state say: where the walk is, how far a filling
page has got, and what an empty table means. Plain functions of the pane's state, no widget.

"scanned" is the number of keys under the prefix the walk has examined (every key SCAN handed
back under `{prefix}:`: entries, other tools' keys, our hit counters and locks), before the
filter: KeyBrowser asks SCAN for the whole prefix and filters itself, so the number is known.

The filter and a sort other than by spec lead the line (`/petstore · ▼hits · page 1 …`): the
line is cut at the pane's edge, and what the table shows depends on them first.
"""

from __future__ import annotations

from ....cache.browse import Filling, Page
from ....fmt import plural
from .rows import sort_arrow

NO_KEYS_YET = ("No IR keys in Redis yet. Open a spec dir (ircache-tui DIR), press w to warm from "
               "the filesystem, or run your pipeline.")
SCANNING = "Scanning the prefix for IR keys… (the footer says how far)"


def _scanned(scanned: int, complete: bool) -> str:
    return f"{plural(scanned, 'key')} under the prefix scanned{'' if complete else ' so far'}"


def _primaries(done: int | None, primaries: int | None) -> str:
    return f" · {done} of {plural(primaries, 'primary', 'primaries')} scanned" if primaries else ""


def state(filter_text: str, sort_by: str) -> str:
    """What the rows depend on, shortest first: `/petstore · ▼hits · ` (empty: no filter, by spec)."""
    parts = ([f"/{filter_text}"] if filter_text else []) + (
        [f"{sort_arrow(sort_by)}{sort_by.replace('_', ' ')}"] if sort_by != "spec" else [])
    return "".join(f"{part} · " for part in parts)


def page_line(page: Page, *, rows: int, total: int | None, has_prev: bool, marked: int) -> str:
    """The footer under a whole page of the SCAN walk."""
    of = f" of ~{total:,} IR keys" if total else ""  # (not "of ~0")
    state = "scan complete" if page.complete else "more on n"
    nav = " · p prev" if has_prev else ""
    return (f"page {page.number}{of} · {plural(rows, 'key')} here · {_scanned(page.scanned, page.complete)}"
            f"{_primaries(page.primaries_done, page.primaries)} · {state}{nav}{_marked(marked)}")


def filling_line(filling: Filling, *, reloading: bool, rows_shown: bool) -> str:
    """The footer while a page fills: how many keys it has found and how far the walk has got;
    the rows of the page before stay until it is whole."""
    doing = "refreshing" if reloading else "filling"
    meanwhile = " · the last page stays shown until then" if rows_shown and not reloading else ""
    return (f"page {filling.number} · {doing}… {plural(filling.found, 'key')} found · "
            f"{_scanned(filling.scanned, False)}{_primaries(filling.primaries_done, filling.primaries)}"
            f"{meanwhile}")


def top_line(view: str, *, rows: int, marked: int) -> str:
    """The footer of the largest-first and expiring-first views."""
    return f"{view} first over the whole prefix · {plural(rows, 'key')} · o: next view{_marked(marked)}"


def down_line(since: str) -> str:
    return f"Redis is down since {since} · the last page read is shown; it reloads when Redis answers"


def empty_hint(page: Page | None, *, filling: bool, filter_text: str) -> str:
    """What an empty table means: only a scan that went to the end and found nothing says there are no keys."""
    if page is None or filling:
        return SCANNING
    if not page.complete:  # a whole page whose keys went since (deleted, expired)
        return ("The keys of this page are gone (deleted or expired since it was read): "
                "ctrl+r reads it again, n goes on.")
    if page.number > 1:
        return "No more IR keys: the scan is complete (p goes back)."
    if filter_text:
        return f"No IR key matches the filter {filter_text!r}: the whole prefix was scanned."
    return NO_KEYS_YET


def _marked(marked: int) -> str:
    return f" · {marked} marked (d deletes them)" if marked else ""
