"""Redis keys: one SCAN page at a time, kept live, sorted, marked; the pane owns all of that work.

The pane holds its KeyBrowser (the SCAN pager), listens to key changes
(coalesced batches of keyspace notifications, or polling), and owns its keys:
paging, the filter as you type, sorting, the whole-prefix "largest first" and
"expiring first" views, marking rows, copying a key name, deleting (asks
first), resetting or setting a TTL. Its workers only post messages; the
handlers below change the table. What other panes need (the picked row, the
keys that changed, Redis going down) bubbles to the App as messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input

from ...cache.browse import KeyBrowser, KeyRow, Page
from ...cache.errors import IRCacheError
from ...cache.keys import InvalidSpecName
from ...cache.live import ChangeBatch
from ...fmt import human_bytes, human_count, human_ttl, human_usd, plural
from ...specs.stale import is_stale
from .. import messages as m
from ..picked import PickedEntry
from ..screens.confirm import ConfirmScreen
from ..screens.ttl import TtlScreen
from ..services import Services
from ..text import printable
from .table_pane import TablePane

# (key, label, width): fixed widths for values that change (TTL counts down) so columns don't jump
COLUMNS = (("mark", " ", 1), ("spec", "Spec", None), ("hash8", "Hash", 8), ("state", "State", 10), ("ttl", "TTL", 7),
           ("memory", "Memory", 9), ("cost", "Cost", 8), ("hits", "Hits", 6), ("last_hit", "Last hit", 8),
           ("generated", "Generated", 16), ("generator", "Generator", None))

View = Literal["scan", "largest", "expiring"]
VIEWS: tuple[View, ...] = ("scan", "largest", "expiring")
# `s` cycles these; a header click sorts by its column. Ties go by name (spec, then hash), so a
# page shows the same order whatever order the server's SCAN returned its keys in.
SORTS = ("spec", "ttl", "memory", "cost", "hits", "last_hit", "generated")
_SORT_KEYS = {
    "spec": lambda r: (r.spec_name, r.hash8),
    "ttl": lambda r: (r.ttl if r.ttl >= 0 else float("inf"), r.spec_name, r.hash8),
    "memory": lambda r: (-(r.memory or 0), r.spec_name, r.hash8),
    "cost": lambda r: (-(r.cost_usd or 0), r.spec_name, r.hash8),  # dearest first: what the cache saves most on
    "hits": lambda r: (-(r.hits or 0), r.spec_name, r.hash8),
    "last_hit": lambda r: (-(r.last_hit or 0), r.spec_name, r.hash8),  # most recently hit first
    "generated": lambda r: (r.generated_at or "", r.spec_name, r.hash8),
}
#: refresh at most this many changed keys row by row; a bigger burst reloads the page
REFRESH_LIMIT = 200


def _cost(usd: float | None) -> str:
    """`$0.0396`; `—` when unknown (an entry cached before usage was recorded, or an unpriced model)."""
    return "—" if usd is None else human_usd(usd)


def _generated(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "?"


class KeysPane(TablePane):
    COLUMNS = COLUMNS
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
        Binding("d", "delete", "Delete", tooltip="Delete the selected (or marked) keys, after asking"),
        Binding("t", "reset_ttl", "Reset TTL", tooltip="Reset the selected key's TTL to the configured one"),
        Binding("T", "set_ttl", "Set TTL", show=False, tooltip="Set the selected key's TTL to a value you type"),
        Binding("escape", "close_filter", "Close filter", show=False),
    ]
    #: actions that write; a read-only cache says why instead
    WRITES = {"delete", "reset_ttl", "set_ttl"}

    @dataclass
    class Picked(Message):
        """The cursor is on another key (or on none)."""

        picked: PickedEntry | None

    @dataclass
    class Changed(Message):
        """Keys changed in Redis (set, deleted, expired): the spec names, or all of them on overflow."""

        spec_names: frozenset[str]
        everything: bool = False

    @dataclass
    class _PageLoaded(Message):
        page: Page
        view: View

    @dataclass
    class _Batch(Message):
        batch: ChangeBatch

    @dataclass
    class _Refreshed(Message):
        rows: list[KeyRow]
        gone: list[str]

    class _Subscribed(Message):
        pass

    @dataclass
    class _LiveChecked(Message):
        notifications: bool

    def __init__(self, services: Services, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.cache = services.cache
        self.browser: KeyBrowser | None = None
        #: cache_key → (ttl seconds, monotonic time it was read) for the live countdown
        self.ttls: dict[str, tuple[int, float]] = {}
        self.rows: dict[str, KeyRow] = {}
        self.marked: set[str] = set()
        #: spec name → the hash8s of its files now (from the specs pane); other hashes are stale
        self.current: dict[str, set[str]] = {}
        self.view: View = "scan"
        self.sort_by = "spec"
        self.first_page_shown = False
        self.live_mode = ""  # "notifications" or "polling", once started
        self.has_prev = self.has_next = False
        self.total: int | None = None  # IR keys in all, from the stats walk
        self.paused = False  # a flush of ours is running: it knows what it deletes
        self._page: Page | None = None
        self._pending: dict[str, bool] = {}  # changed keys waiting for a refresh: key → gone
        self._reload_wanted = False
        self._refreshing = False
        self._poll_timer: Timer | None = None
        self._down_since: str = ""
        self._filter_timer: Timer | None = None

    def compose(self):
        yield Input(placeholder="filter: substring · =exact-name · glob (esc closes)", id="keys-filter")
        yield from super().compose()

    def empty_hint(self) -> str:
        return ("No IR keys in Redis yet. Open a spec dir (ircache-tui DIR), press w to warm from "
                "the filesystem, or run your pipeline.")

    # -- what the App asks -----------------------------------------------------------
    def start(self, live_mode: str) -> None:
        """The cache is open: show the first page and follow changes."""
        self.browser = self.cache.key_browser(self.services.page_size, time_budget=self.services.page_time_budget)
        self.live_mode = live_mode
        self.load("first")
        self._start_live()

    def selected_key(self) -> str | None:
        return self.selected_row_key()

    def picked(self) -> PickedEntry | None:
        key = self.selected_key()
        row = self.rows.get(key) if key else None
        return PickedEntry(row.spec_name, row.cache_key, "redis") if row else None

    def reload(self) -> None:
        """A background refresh of the current page; never cancels a page the user asked for."""
        if self.browser is not None and not any(w.group == "keys-scan" and w.is_running for w in self.workers):
            self.load("reload")

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
        self._render_footer()

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._render_footer()

    def pause(self, paused: bool) -> None:
        """Our own flush runs (True) or ended (False): no refresh meanwhile, one reload after.

        The listener stops for the flush: it knows what it deletes, and parsing one `del`
        event per key (50,000 of them) would cost this process more than the flush itself.
        It subscribes again after, and the reload then catches what others changed meanwhile.
        """
        self.paused = paused
        if paused:
            self.workers.cancel_group(self, "keys-live")
            return
        self._pending.clear()
        self._reload_wanted = False
        self.load("reload")
        if self.live_mode == "notifications":
            self.listen()

    def set_current(self, current: dict[str, set[str]]) -> None:
        """Mark keys of older spec versions as stale, now that the specs are known."""
        if current == self.current:
            return
        self.current = current
        with self.app.batch_update():
            for key, row in self.rows.items():
                self.table.update_cell(key, "state", self._state(row))

    def tick(self, now: float) -> None:
        """Count TTLs down without a round trip."""
        table = self.table
        with self.app.batch_update():
            for key, (ttl, at) in self.ttls.items():
                if ttl >= 0:
                    table.update_cell(key, "ttl", human_ttl(max(0, ttl - int(now - at))))

    def mark_generating(self, cache_key: str) -> None:
        if cache_key in self.rows:
            self.table.update_cell(cache_key, "generator", Text("generating…", style="bold yellow"))

    # -- loading pages ---------------------------------------------------------------
    @work(group="keys-scan", exclusive=True, exit_on_error=False)
    async def load(self, which: str) -> None:
        browser = self.browser
        if browser is None:
            return
        view = self.view
        try:
            if view == "scan":
                page = await getattr(browser, which)()
            else:
                page = await browser.top(view, self.services.page_size)
        except IRCacheError as exc:
            self.post_message(m.RedisDown(str(exc)))
            return
        self.post_message(self._PageLoaded(page, view))

    @on(_PageLoaded)
    def _page_loaded(self, message: _PageLoaded) -> None:
        if message.view != self.view:
            return  # the view changed while it loaded
        if self.view == "scan" and self.browser is not None and message.page is not self.browser.page:
            return  # a later load of the walk started meanwhile: its page is the one to show
        self.post_message(m.RedisAnswered())
        first = not self.first_page_shown
        self.first_page_shown = True
        page = message.page
        self._page = page
        browser = self.browser
        self.has_prev = self.view == "scan" and browser is not None and browser.has_prev
        self.has_next = self.view == "scan" and browser is not None and browser.has_next
        self._show_rows(page.rows)
        self.app.refresh_bindings()
        if first:
            self.post_message(m.FirstPageShown())

    def _show_rows(self, rows: list[KeyRow]) -> None:
        table = self.table
        keep = self.selected_key()
        wanted = {row.cache_key for row in rows}
        now = self.services.monotonic()
        with self.app.batch_update():
            for key in list(self.rows):
                if key not in wanted:
                    self._drop(key)
            for row in rows:
                self._upsert(row, now)
            self._sort()
        self.set_class(not rows, "-empty")
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._render_footer()
        self._announce_pick()

    def _announce_pick(self) -> None:
        """Whatever row the cursor is on now (rows came and went): tell the App, so the detail follows."""
        self.post_message(self.Picked(self.picked()))

    def _render_footer(self) -> None:
        if self._down_since:
            self.set_footer(f"Redis is down since {self._down_since} · the last page read is shown; "
                            "it reloads when Redis answers")
            return
        page = self._page
        if page is None:
            return
        total = f" of ~{self.total:,} IR keys" if self.total and self.view == "scan" else ""  # (not "of ~0")
        marked = f" · {len(self.marked)} marked (d deletes them)" if self.marked else ""
        sort = f" · sorted by {self.sort_by}" if self.sort_by != "spec" else ""
        if self.view != "scan":
            self.set_footer(f"{self.view} first over the whole prefix · {plural(len(self.rows), 'key')}"
                            f"{total} · o: next view{sort}{marked}")
            return
        flt = f" · filter {self.browser.filter_text!r}" if self.browser and self.browser.filter_text else ""
        state = "scan complete" if page.complete else ("partial page, more on n" if page.partial else "more on n")
        nav = " · p prev" if self.has_prev else ""
        nodes = (f" · {page.primaries_done} of {plural(page.primaries, 'primary', 'primaries')} scanned"
                 if page.primaries else "")
        self.set_footer(f"page {page.number}{total} · {plural(len(self.rows), 'key')} here · "
                        f"{page.scanned:,} scanned so far{nodes} · {state}{nav}{flt}{sort}{marked}")

    # -- rows ------------------------------------------------------------------------
    def _state(self, row: KeyRow) -> Text:
        if row.problem:
            return Text(row.problem, style="bold red")
        if is_stale(row.spec_name, row.hash8, self.current):
            return Text("stale", style="yellow")
        return Text("")

    def _cells(self, row: KeyRow) -> tuple:
        mark = Text("●", style="bold magenta") if row.cache_key in self.marked else ""
        return (mark, row.spec_name, row.hash8, self._state(row), human_ttl(row.ttl), human_bytes(row.memory),
                _cost(row.cost_usd), "?" if row.hits is None else human_count(row.hits), self._last_hit(row),
                _generated(row.generated_at), row.generator or "?")

    def _last_hit(self, row: KeyRow) -> str:
        """How long ago, from the injected clock (snapshot tests freeze it)."""
        if row.hits is None:
            return "?"  # the counts could not be read (an ACL without HMGET)
        if row.last_hit is None:
            return "never"
        return human_ttl(max(0, int(self.services.clock().timestamp() - row.last_hit)))

    def _upsert(self, row: KeyRow, now: float) -> None:
        self.put_row(row.cache_key, self._cells(row), row.cache_key in self.rows)
        self.rows[row.cache_key] = row
        self.ttls[row.cache_key] = (row.ttl, now)

    def _drop(self, key: str) -> None:
        if key in self.rows:
            self.table.remove_row(key)
            self.rows.pop(key, None)
            self.ttls.pop(key, None)
            self.marked.discard(key)

    def _sort(self) -> None:
        # DataTable sorts by cell values; spec and hash8 name the row, so look the KeyRow up from them
        # (from what the cells show: the spec name made printable, tui/text.py)
        order = _SORT_KEYS[self.sort_by]
        rows = {(printable(row.spec_name), row.hash8): row for row in self.rows.values()}
        self.table.sort("spec", "hash8", key=lambda cells: order(rows[str(cells[0]), str(cells[1])]))

    # -- live changes ------------------------------------------------------------------
    def _start_live(self) -> None:
        if self.live_mode == "notifications":
            self.listen()
        elif self._poll_timer is None:
            self._poll_timer = self.set_timer(self.services.poll_interval, self._poll_round)

    def _poll_round(self) -> None:
        # reschedule after each round so polls never overlap; stop once notifications took over
        self._poll_timer = None
        if self.live_mode != "polling":
            return
        if not self.paused:
            self.reload()
        self._poll_timer = self.set_timer(self.services.poll_interval, self._poll_round)

    @work(group="keys-live", exclusive=True, exit_on_error=False)
    async def listen(self) -> None:
        try:
            async for batch in self.cache.key_change_batches(on_subscribed=lambda: self.post_message(self._Subscribed())):
                self.post_message(self._Batch(batch))
        except (IRCacheError, OSError) as exc:
            self.post_message(m.RedisDown(str(exc).splitlines()[0] if str(exc) else "connection lost"))

    @on(_Subscribed)
    def _subscribed(self) -> None:
        self.reload()  # catch what changed between the first page and the subscription

    @on(_Batch)
    def _batch(self, message: _Batch) -> None:
        batch = message.batch
        specs = frozenset(c.key.spec_name for c in batch.changes.values())
        self.post_message(self.Changed(specs, everything=batch.overflow))
        if self.paused or self.browser is None:
            return
        if batch.overflow or self.view != "scan":
            self._reload_wanted = True
        else:
            for key, change in batch.changes.items():
                if self.browser.wants(change.key):
                    self._pending[key] = change.gone
            if len(self._pending) > REFRESH_LIMIT:
                self._pending.clear()
                self._reload_wanted = True
        self._next_refresh()

    def _next_refresh(self) -> None:
        """One refresh at a time; what changes meanwhile waits for the next round."""
        if self._refreshing:
            return
        if self._reload_wanted:
            self._reload_wanted = False
            self._pending.clear()
            self.reload()
            return
        if self._pending:
            pending, self._pending = self._pending, {}
            self._refreshing = True
            self.refresh_keys(pending)

    @work(group="keys-refresh", exit_on_error=False)
    async def refresh_keys(self, pending: dict[str, bool]) -> None:
        gone = [k for k, g in pending.items() if g]
        try:
            rows = await self.browser.rows_for([k for k, g in pending.items() if not g]) if self.browser else []
        except IRCacheError:
            rows = []
        present = {r.cache_key for r in rows}
        gone += [k for k, g in pending.items() if not g and k not in present]  # expired meanwhile
        self.post_message(self._Refreshed(rows, gone))

    @on(_Refreshed)
    def _refreshed(self, message: _Refreshed) -> None:
        self._refreshing = False
        now = self.services.monotonic()
        with self.app.batch_update():
            for key in message.gone:
                self._drop(key)
            for row in message.rows:
                self._upsert(row, now)
            self._sort()
        self.set_class(not self.rows, "-empty")
        self._render_footer()
        self._announce_pick()
        self._next_refresh()

    @work(group="keys-live-check", exclusive=True, exit_on_error=False)
    async def recheck_live(self) -> None:
        """A restarted server forgets notify-keyspace-events; one that was down at startup never had them."""
        if self.services.live != "auto":
            self.post_message(self._LiveChecked(False))
            return
        self.post_message(self._LiveChecked(await self.cache.enable_live_updates()))

    @on(_LiveChecked)
    def _live_checked(self, message: _LiveChecked) -> None:
        mode = "notifications" if message.notifications else "polling"
        if mode != self.live_mode:
            self.post_message(m.LiveModeChanged(mode, self.live_mode))
        self.live_mode = mode
        if mode == "notifications" and self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        elif mode == "polling":
            self.workers.cancel_group(self, "keys-live")  # a listener that outlived the switch
        self._start_live()  # (re)subscribe, or poll

    # -- the cursor --------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#keys-table")
    def _row_highlighted(self) -> None:
        self._announce_pick()

    @on(DataTable.HeaderSelected, "#keys-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column in _SORT_KEYS:
            self.sort_by = column
            self._resort()

    # -- actions -------------------------------------------------------------------------
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
        box.focus()

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
        self.load("first")

    def action_close_filter(self) -> None:
        self.remove_class("-filtering")
        self.table.focus()

    def action_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._resort()

    def _resort(self) -> None:
        with self.app.batch_update():
            self._sort()
        self._render_footer()
        self._announce_pick()

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.sort_by = {"scan": "spec", "largest": "memory", "expiring": "ttl"}[self.view]
        self.load("first" if self.view == "scan" else "reload")
        self.app.refresh_bindings()

    def action_mark(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.marked ^= {key}
        self.table.update_cell(key, "mark", Text("●", style="bold magenta") if key in self.marked else "")
        self._render_footer()
        self.table.action_cursor_down()

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
                self.delete_keys(keys)

        self.app.push_screen(ConfirmScreen(f"Delete {what} from Redis?\n{shown}", "Delete"), chosen)

    @work(group="keys-delete", exit_on_error=False)
    async def delete_keys(self, keys: list[str]) -> None:
        deleted = 0
        try:
            for key in keys:
                deleted += await self.cache.delete_entry(key, "redis")
        except IRCacheError as exc:
            self.post_message(m.OperationDone(f"Delete failed after {plural(deleted, 'key')}: {exc}", error=True))
            return
        self.post_message(self._Refreshed([], keys))
        self.post_message(m.OperationDone(f"Deleted {plural(deleted, 'key')} from Redis" if deleted
                                          else "Already gone", refresh=False))

    def action_reset_ttl(self) -> None:
        key = self.selected_key()
        if key is None:
            self.app.notify("Select a key to reset its TTL", severity="warning")
            return
        self.set_key_ttl(key, None)

    def action_set_ttl(self) -> None:
        key = self.selected_key()
        if key is None:
            self.app.notify("Select a key to set its TTL", severity="warning")
            return

        def chosen(seconds: int | None) -> None:
            if seconds is not None:
                self.set_key_ttl(key, seconds)

        self.app.push_screen(TtlScreen(key, self.cache.ttl), chosen)

    @work(group="keys-ttl", exit_on_error=False)
    async def set_key_ttl(self, key: str, seconds: int | None) -> None:
        try:
            ok = await self.cache.reset_ttl(key, seconds)
            rows = await self.browser.rows_for([key]) if self.browser and ok else []
        except IRCacheError as exc:
            self.post_message(m.OperationDone(f"TTL change failed: {exc}", error=True))
            return
        ttl = self.cache.ttl if seconds is None else seconds
        self.post_message(self._Refreshed(rows, []))
        self.post_message(m.OperationDone(
            f"TTL of {key} set to {human_ttl(ttl)}" if ok else f"{key} not changed (gone, or TTL 0)",
            error=not ok, refresh=False))

