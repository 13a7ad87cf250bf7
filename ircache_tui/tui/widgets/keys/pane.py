"""Redis keys: one SCAN page at a time, kept live, sorted, marked; the pane owns all of that work.

The pane holds its KeyBrowser (the SCAN pager) and owns its keys: paging, the filter as you
type, the whole-prefix "largest first" and "expiring first" views, copying a key name, exporting
the view to a file (IRCache.export_view), deleting (asks first), resetting or setting a TTL. The table itself (cells, sorting, marks) is rows.py's,
following changes live.py's. Its workers only post messages; the handlers change the table.
What other panes need (the picked row, the keys that changed, Redis going down) bubbles to the
App as messages.

A page fills itself: the footer says how far it has got while it fills (`Filling`), and the
table changes only when the page is whole (or the scan complete), so a reload never shows a
page emptier than it is. `n` and `p` move from the page shown. A page that fails to load keeps
the page shown and says why once; only Redis going down (the App then rescans when it is back),
a cluster's topology changing, or the user's own new walk (a filter, a view) goes back to page 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input

from ....cache.browse import Filling, KeyRow, Page
from ....cache.errors import IRCacheError, RedisBusy, RedisUnavailable
from ....cache.export import SORT_LIMIT, ExportDone
from ....cache.keys import CacheKey, InvalidSpecName
from ....fmt import describe_os_error, human_ttl, plural
from ... import messages as m
from ...picked import PickedEntry
from ...screens.confirm import ConfirmScreen
from ...screens.export import ExportRequest, ExportScreen
from ...screens.ttl import TtlScreen
from ...services import Services
from . import footer
from .live import PAGE_LOADS, LiveKeyTable
from .rows import SORT_KEYS, VIEWS, View

#: what a failed load was, for the one line that says so
_WHAT = {"first": "Page 1", "next": "The next page", "prev": "The previous page", "reload": "The page's refresh"}


class KeysPane(LiveKeyTable):
    NAME = "keys"
    INITIAL_FOOTER = "page 1 · scanning…"
    DEFAULT_CSS = """
    KeysPane > #keys-filter { display: none; height: 3; }
    KeysPane.-filtering > #keys-filter { display: block; }
    """
    BINDINGS = [
        Binding("n", "next_page", "Next", tooltip="Next SCAN page"),
        Binding("p", "prev_page", "Prev", tooltip="Previous SCAN page"),
        Binding("slash", "filter", "Filter", tooltip="Filter as you type: a substring, =exact name, or a glob"),
        Binding("s", "sort", "Sort", show=False, tooltip="Sort this page by the next column (or click a header)"),
        Binding("o", "view", "Largest/expiring", show=False,
                tooltip="Cycle the view: scan order, largest first, expiring first (over the whole prefix)"),
        Binding("space", "mark", "Mark", show=False, tooltip="Mark or unmark the row (d deletes the marked rows)"),
        Binding("c", "copy", "Copy", show=False, tooltip="Copy the selected key's name to the clipboard"),
        Binding("e", "export", "Export", show=False,
                tooltip="Export the view (every page the filter takes, in the sort order) to a CSV or NDJSON file"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected (or marked) keys, after asking"),
        Binding("t", "reset_ttl", "Reset TTL", tooltip="Reset the selected key's TTL to the configured one"),
        Binding("T", "set_ttl", "Set TTL", show=False, tooltip="Set the selected key's TTL to a value you type"),
        Binding("escape", "close_filter", "Close filter", show=False),
    ]
    #: actions that write; a read-only cache says why instead
    WRITES = {"delete", "reset_ttl", "set_ttl"}

    @dataclass
    class _PageLoaded(Message):
        page: Page
        view: View

    @dataclass
    class _PageFilling(Message):
        filling: Filling
        which: str
        load: int  # which load it is about (only the latest one's is shown)

    @dataclass
    class _LoadFailed(Message):
        error: IRCacheError
        which: str
        load: int

    @dataclass
    class _Exported(Message):
        done: ExportDone | None
        error: str = ""

    @dataclass
    class _Applied(Message):
        """Rows our own delete or TTL change touched; `unchanged`: keys it changed nothing of."""

        rows: list[KeyRow]
        gone: list[str]
        unchanged: list[str] = field(default_factory=list)

    @dataclass
    class _JumpFound(Message):
        row: KeyRow

    @dataclass
    class _JumpFailed(Message):
        text: str
        severity: str = "warning"

    @dataclass
    class Jumped(Message):
        """`g` landed: the entry is selected on the page shown (the App opens its detail)."""

        picked: PickedEntry

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self._jump_row: KeyRow | None = None  # `g`'s entry, to select once its filtered page is shown
        self.first_page_shown = False
        self.has_prev = self.has_next = False
        self.total: int | None = None  # IR keys in all, from the stats walk
        self._page: Page | None = None  # the page shown (whole)
        self._filling: Filling | None = None  # how far the page on its way has got
        self._filling_which = ""  # and what load it is ("reload": the page shown, again)
        self._loads = 0  # page loads started (their messages say which they are about)
        self._said = ""  # the last load error said (said once, until a page loads again)
        self._down_since: str = ""
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: substring · =exact-name · glob (esc closes)", id="keys-filter")
        yield from super().compose()

    def empty_hint(self) -> str:
        return footer.NO_KEYS_YET

    def empty_now(self) -> str:
        return footer.empty_hint(self._page, filling=self._filling is not None,
                                 filter_text=self.browser.filter_text if self.browser else "")

    # -- what the App asks -----------------------------------------------------------
    def start(self, live_mode: str) -> None:
        """The cache is open: show the first page and follow changes."""
        self.browser = self.cache.key_browser(self.services.page_size, time_budget=self.services.page_time_budget)
        self.live_mode = live_mode
        self.load("first")
        self.start_live()

    def redis_back(self) -> None:
        """Redis answers again (maybe restarted empty): forget every cursor and rescan from page 1."""
        self._down_since = ""
        self.rescan()

    def rescan(self) -> None:
        """Forget every cursor, rescan from page 1, and listen again (a cluster's primaries may have
        changed: a node's cursor means nothing on another node, and its notifications stop)."""
        if self.browser is None:
            return
        self.browser.reset()
        self.load("first")
        self.recheck_live()

    def redis_down(self, since: str) -> None:
        self._down_since = since
        self.render_footer()

    def set_total(self, total: int | None) -> None:
        self.total = total
        self.render_footer()

    # -- loading pages ---------------------------------------------------------------
    def load(self, which: str) -> None:
        """Load a page ("first", "next", "prev" or "reload") in a worker; it cancels the one on its way."""
        self._loads += 1
        if which != "reload" and self.has_next:
            self.has_next = False  # no `n` past a page that is not whole yet
            self.app.refresh_bindings()
        self._load_page(which, self._loads)

    @work(group=PAGE_LOADS, exclusive=True, exit_on_error=False)
    async def _load_page(self, which: str, load: int) -> None:
        browser = self.browser
        if browser is None:
            return
        view = self.view
        try:
            if view == "scan":
                page = await getattr(browser, which)(
                    lambda filling: self.post_message(self._PageFilling(filling, which, load)))
            else:
                page = await browser.top(view, self.services.page_size)
        except IRCacheError as exc:
            self.post_message(self._LoadFailed(exc, which, load))
            return
        self.post_message(self._PageLoaded(page, view))

    @on(_PageFilling)
    def _page_filling(self, message: _PageFilling) -> None:
        if message.load != self._loads or self.view != "scan":
            return  # an older load's news, or another view now
        self._filling, self._filling_which = message.filling, message.which
        if not self.rows:
            self.mark_empty()  # "scanning", never "no keys" before the scan says so
        self.render_footer()

    @on(_PageLoaded)
    def _page_loaded(self, message: _PageLoaded) -> None:
        if message.view != self.view:
            return  # the view changed while it loaded
        if self.view == "scan" and self.browser is not None and message.page is not self.browser.page:
            return  # a later load of the walk started meanwhile: its page is the one to show
        self.post_message(m.RedisAnswered())
        first = not self.first_page_shown
        self.first_page_shown = True
        self._page, self._filling, self._said = message.page, None, ""
        self._follow_walk()
        self.show_rows(message.page.rows)
        if self._jump_row is not None and self.view == "scan":
            self._land(message.page)
        if first:
            self.post_message(m.FirstPageShown())

    @on(_LoadFailed)
    def _load_failed(self, message: _LoadFailed) -> None:
        exc = message.error
        outage = isinstance(exc, RedisUnavailable) and not isinstance(exc, RedisBusy)
        if outage:
            self.post_message(m.RedisDown(str(exc)))  # the App asks Redis: only a failed probe says down
        if message.load != self._loads:
            return  # a later load is on its way
        self._jump_row = None  # its page did not come (said below)
        self._filling = None
        self._follow_walk()  # the walk is still at the page shown
        if message.which != "reload" or not outage:  # (a background refresh during an outage: the banner says it)
            said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if said != self._said:  # once, however often n is pressed meanwhile
                self._said = said
                self.app.notify(f"{_WHAT.get(message.which, 'The page')} could not be read: {said}. "
                                "The page shown stays.", severity="error")
        if not self.rows:
            self.mark_empty()
        self.render_footer()

    def _follow_walk(self) -> None:
        browser = self.browser if self.view == "scan" else None
        self.has_prev = browser is not None and browser.has_prev
        self.has_next = browser is not None and browser.has_next
        self.app.refresh_bindings()

    def render_footer(self) -> None:
        flt = self.browser.filter_text if self.browser else ""
        # a top view's filter is not applied (it ranks the whole prefix)
        lead = footer.state(flt if self.view == "scan" else "", self.sort_by)
        if self._down_since:
            self.set_footer(lead + footer.down_line(self._down_since))
            return
        if self._filling is not None and self.view == "scan":
            self.set_footer(lead + footer.filling_line(self._filling, reloading=self._filling_which == "reload",
                                                       rows_shown=bool(self.rows)))
            return
        page = self._page
        if page is None:
            return
        if self.view != "scan":
            self.set_footer(lead + footer.top_line(self.view, rows=len(self.rows), marked=len(self.marked)))
            return
        self.set_footer(lead + footer.page_line(page, rows=len(self.rows), total=self.total, has_prev=self.has_prev,
                                                marked=len(self.marked)))

    # -- bindings --------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WRITES and self.cache.read_only:
            return None  # greyed out; the App's on_key says why
        if action == "close_filter":
            return self.has_class("-filtering")
        if action == "next_page":
            return True if self.has_next else None
        if action == "prev_page":
            return True if self.has_prev else None
        return True

    def action_next_page(self) -> None:
        self.load("next")

    def action_prev_page(self) -> None:
        self.load("prev")

    def action_filter(self) -> None:
        box = self.query_one("#keys-filter", Input)
        self.add_class("-filtering")
        box.value = self.browser.filter_text if self.browser else ""
        self.screen.set_focus(box)  # now, not after the keys already read: a quick "/red" would regenerate

    @on(Input.Changed, "#keys-filter")
    def _filter_typed(self) -> None:
        # as you type, but one scan per pause: each keystroke would start a scan over the whole prefix
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.25, self._apply_filter)

    @on(Input.Submitted, "#keys-filter")
    def _filter_submitted(self) -> None:
        self._apply_filter()
        self.remove_class("-filtering")
        self.table.focus()

    def _apply_filter(self) -> None:
        self._filter_timer = None
        box = self.query_one("#keys-filter", Input)
        if self.browser is None:
            return
        text = box.value.strip()
        if text == self.browser.filter_text:
            return
        try:
            self.browser.set_filter(text or None)
        except InvalidSpecName as exc:
            self.app.notify(str(exc), severity="warning")
            return
        self.view = "scan"
        self.load("first")  # the old filter's rows stay until the new page is whole

    def action_close_filter(self) -> None:
        self.remove_class("-filtering")
        self.table.focus()

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.sort_by = {"scan": "spec", "largest": "memory", "expiring": "ttl"}[self.view]
        self._filling = None
        self.load("first" if self.view == "scan" else "reload")
        self.app.refresh_bindings()

    # -- export ------------------------------------------------------------------------
    def action_export(self) -> None:
        """Ask for a format and a file, then write the view: in the scan view every key the filter
        takes (all pages, read again), in the largest/expiring views the rows shown (that view is
        them); in the pane's sort order. It writes nothing to the cache: read-only sessions may."""
        if self.browser is None:
            self.app.notify("The keys are not read yet", severity="warning")
            return
        flt, sort_by, view = self.browser.filter_text, self.sort_by, self.view
        shown = list(self.rows.values()) if view != "scan" else None
        what = (f"every key{f' the filter {flt!r} takes' if flt else ''} (all pages)" if view == "scan"
                else f"the {plural(len(self.rows), 'key')} shown ({'largest' if view == 'largest' else 'expiring'} first)")

        def chosen(request: ExportRequest | None) -> None:
            if request is not None:
                self.export_view(request, flt, sort_by, shown)

        self.app.push_screen(ExportScreen(f"{what}, sorted by {sort_by.replace('_', ' ')},", self.services.clock()),
                             chosen)

    @work(group="keys-export", exit_on_error=False)
    async def export_view(self, request: ExportRequest, filter_text: str, sort_by: str,
                          shown: list[KeyRow] | None) -> None:
        try:  # the cache owns the file; the pane gives its sort (a cancelled export leaves no file)
            done = await self.cache.export_view(request.path, request.fmt, sort_key=SORT_KEYS[sort_by],
                                                filter_text=filter_text or None, rows=shown)
        except OSError as exc:
            self.post_message(self._Exported(None, describe_os_error(exc)))
        except IRCacheError as exc:
            self.post_message(self._Exported(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        else:
            self.post_message(self._Exported(done))

    @on(_Exported)
    def _exported(self, message: _Exported) -> None:
        done = message.done
        if done is None:
            self.app.notify(f"Export failed: {message.error}", severity="error")
            return
        unsorted = "" if done.sorted else f" in scan order (over {SORT_LIMIT:,} entries are too many to sort)"
        self.app.notify(f"Exported {plural(done.count, 'entry', 'entries')} to {done.path}{unsorted}")

    # -- g: go to a key, or a spec's newest entry, whatever page it is on ---------------------
    def jump(self, text: str) -> None:
        """Find what `text` names (screens/jump.py), show it selected on page 1 of its spec's
        filter (`=spec`), and say so (Jumped); or say, once, why not. The pane is left as it is
        until the entry is found."""
        if self.browser is None:
            self.app.notify("Redis is not connected yet: nothing to go to", severity="warning")
            return
        self._find(text)

    @work(group="keys-jump", exclusive=True, exit_on_error=False)
    async def _find(self, text: str) -> None:
        browser = self.browser
        if browser is None:
            return
        keys = self.cache.keys
        try:
            target = keys.target_of(text)
        except InvalidSpecName as exc:
            self.post_message(self._JumpFailed(f"Not a key nor a spec name: {exc}"))
            return
        try:
            if isinstance(target, CacheKey):
                # one round trip on that key (TTL, size, the value's head): no walk, whatever the prefix holds
                rows = await browser.rows_for([target.cache_key])
                row = rows[0] if rows else None
                if row is None:
                    self.post_message(self._JumpFailed(f"No IR entry {keys.prefix}:{target} in Redis"))
                    return
                if row.problem == "foreign":
                    self.post_message(self._JumpFailed(
                        f"{keys.prefix}:{target} is not an IR entry: another tool's value is under that name"))
                    return
            else:
                row, count = await browser.newest_of(target)  # that spec's keys only (MATCH on its name)
                if row is None:
                    self.post_message(self._JumpFailed(f"No IR entry of spec {target} in Redis"))
                    return
        except IRCacheError as exc:
            self.post_message(self._JumpFailed(f"Cannot look {text} up: {exc}", "error"))
            return
        self.post_message(self._JumpFound(row))

    @on(_JumpFailed)
    def _jump_failed(self, message: _JumpFailed) -> None:
        self.app.notify(message.text, severity="error" if message.severity == "error" else "warning")

    @on(_JumpFound)
    def _jump_found(self, message: _JumpFound) -> None:
        if self.browser is None:
            return
        self._jump_row = message.row
        wanted = f"={message.row.spec_name}"
        self.remove_class("-filtering")
        if self.browser.filter_text == wanted and self.view == "scan" and message.row.cache_key in self.rows:
            self._land(None)  # already on the page shown
            return
        self.browser.set_filter(wanted)  # its spec's keys: the entry is on page 1 (or added to it, below)
        self.query_one("#keys-filter", Input).value = wanted  # (the filter box's own change: no new walk)
        self.view = "scan"
        self.load("first")

    def _land(self, page: Page | None) -> None:
        row, self._jump_row = self._jump_row, None
        if row is None:
            return
        if row.cache_key not in self.rows:
            if page is not None and page.complete:  # the whole spec was walked: it went meanwhile
                self.app.notify(f"{self.cache.keys.prefix}:{row.cache_key} is gone from Redis", severity="warning")
                return
            self.upsert(row, self.services.monotonic())  # a spec of more than a page: shown with page 1
            self.sort()
            self.mark_empty()
            self.render_footer()
        self.table.move_cursor(row=self.table.get_row_index(row.cache_key), animate=False)
        self.table.focus()
        self.announce_pick()
        picked = self.picked()
        if picked is not None:
            self.post_message(self.Jumped(picked))

    # -- the keys ----------------------------------------------------------------------
    def action_copy(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.app.copy_to_clipboard(f"{self.cache.keys.prefix}:{key}")
        self.app.notify(f"Copied {self.cache.keys.prefix}:{key}")

    def _targets(self) -> list[str]:
        if self.marked:
            return sorted(self.marked)
        key = self.selected_key()
        return [key] if key else []

    def action_delete(self) -> None:
        keys = self._targets()
        if not keys:
            self.app.notify("Select a key to delete (space marks several)", severity="warning")
            return
        what = keys[0] if len(keys) == 1 else plural(len(keys), "key")
        shown = "\n".join(keys[:8]) + (f"\n… and {len(keys) - 8} more" if len(keys) > 8 else "")

        def chosen(yes: bool | None) -> None:
            if yes:
                self.expect_own(keys, "del")
                self.delete_keys(keys)

        self.app.push_screen(ConfirmScreen(f"Delete {what} from Redis?\n{shown}", "Delete"), chosen)

    @work(group="keys-delete", exit_on_error=False)
    async def delete_keys(self, keys: list[str]) -> None:
        deleted: list[str] = []
        try:
            for key in keys:
                if await self.cache.delete_entry(key, "redis"):
                    deleted.append(key)
        except IRCacheError as exc:
            self.post_message(self._Applied([], deleted, unchanged=[k for k in keys if k not in deleted]))
            self.post_message(m.OperationDone(f"Delete failed after {plural(len(deleted), 'key')}: {exc}",
                                              error=True, by="delete", removed=m.Removed(None, redis=len(deleted))))
            return
        self.post_message(self._Applied([], keys, unchanged=[k for k in keys if k not in deleted]))
        # what went, said: the totals follow by arithmetic, and the page drops the rows itself
        self.post_message(m.OperationDone(f"Deleted {plural(len(deleted), 'key')} from Redis" if deleted
                                          else "Already gone", refresh=False, by="delete",
                                          removed=m.Removed(None, redis=len(deleted))))

    def action_reset_ttl(self) -> None:
        key = self.selected_key()
        if key is None:
            self.app.notify("Select a key to reset its TTL", severity="warning")
            return
        self.expect_own([key], "expire")
        self.set_key_ttl(key, None)

    def action_set_ttl(self) -> None:
        key = self.selected_key()
        if key is None:
            self.app.notify("Select a key to set its TTL", severity="warning")
            return

        def chosen(seconds: int | None) -> None:
            if seconds is not None:
                self.expect_own([key], "expire")
                self.set_key_ttl(key, seconds)

        self.app.push_screen(TtlScreen(key, self.cache.ttl), chosen)

    @work(group="keys-ttl", exit_on_error=False)
    async def set_key_ttl(self, key: str, seconds: int | None) -> None:
        try:
            ok = await self.cache.reset_ttl(key, seconds)
            rows = await self.browser.rows_for([key]) if self.browser and ok else []
        except IRCacheError as exc:
            self.post_message(self._Applied([], [], unchanged=[key]))
            self.post_message(m.OperationDone(f"TTL change failed: {exc}", error=True, by="ttl"))
            return
        ttl = self.cache.ttl if seconds is None else seconds
        self.post_message(self._Applied(rows, [], unchanged=[] if ok else [key]))
        self.post_message(m.OperationDone(
            f"TTL of {key} set to {human_ttl(ttl)}" if ok else f"{key} not changed (gone, or TTL 0)",
            error=not ok, refresh=False, by="ttl"))

    @on(_Applied)
    def _applied(self, message: _Applied) -> None:
        self.unchanged(message.unchanged)
        self.apply(message.rows, message.gone)
