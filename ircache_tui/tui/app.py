"""The dashboard App: panes, bindings, and the handlers that own every state change.

Workers (Redis, files, generation) run in named groups and only post
messages; the @on handlers below are the only code that touches widgets.
The tiers are reached through IRCache's methods only: the app holds no Redis
client, and a read-only cache refuses writes whatever a binding asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Label, ProgressBar, TabbedContent, TabPane

from .. import redact
from ..cache.browse import KeyBrowser
from ..cache.errors import IRCacheError
from ..cache.events import CacheEvent
from ..ir.envelope import CorruptEntry
from ..ir.generators import GenerationError, generator_label
from ..specs import discover_specs, find_stale, prune, read_spec
from ..specs.stale import StaleReport, current_hashes
from ..watch.stale import current_specs
from . import messages as m
from .logbridge import AppLogHandler
from .picked import PickedEntry
from .screens.detail import DetailScreen
from .screens.filter import FilterScreen
from .screens.flush import FlushRequest, FlushScreen
from .screens.help import HelpScreen
from .screens.prune import PruneRequest, PruneScreen
from .services import Services
from .widgets.banner import RedisBanner
from .widgets.detail_pane import DetailPane
from .widgets.files_pane import FilesPane
from .widgets.keys_pane import KeysPane
from .widgets.log_pane import LogPane
from .widgets.specs_pane import SpecsPane
from .widgets.status_bar import StatusBar

log = logging.getLogger("ircache")

# Actions that write to or delete from the cache: off in --read-only.
DESTRUCTIVE = {"flush_spec", "flush_all", "regenerate", "warm", "delete_key", "reset_ttl", "prune"}
NARROW = 110  # below this width the detail pane folds away (enter still opens the full view)


class IRCacheApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "ircache-tui"
    BINDINGS = [
        Binding("f", "flush_spec", "Flush spec", tooltip="Flush the selected spec's keys (asks first)"),
        Binding("F", "flush_all", "Flush all", tooltip="Flush every IR key under the prefix (asks first)"),
        Binding("r", "regenerate", "Regenerate", tooltip="Regenerate the selected spec (force_refresh)"),
        Binding("w", "warm", "Warm", tooltip="Copy every filesystem entry Redis lacks into Redis"),
        Binding("d", "delete_key", "Delete", tooltip="Delete the selected key (or file, in the files tab)"),
        Binding("t", "reset_ttl", "Reset TTL", tooltip="Reset the selected key's TTL to the configured one"),
        Binding("P", "prune", "Prune", show=False, tooltip="Delete stale entries of the watched specs (asks first)"),
        Binding("n", "next_page", "Next", tooltip="Next SCAN page"),
        Binding("p", "prev_page", "Prev", tooltip="Previous SCAN page"),
        Binding("slash", "filter", "Filter", tooltip="Filter keys by spec name or glob"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, tooltip="Reload every pane"),
        Binding("enter", "detail", "Detail", show=False, tooltip="Open the selected entry: summary and the IR JSON"),
        Binding("escape", "cancel_flush", "Cancel flush", tooltip="Stop the running flush"),
        Binding("question_mark", "help", "Help", tooltip="Every key and what it does"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.cache = services.cache
        self.browser: KeyBrowser | None = None
        self.redis_up: bool | None = None
        self.live_mode = ""
        self._poll_timer: Timer | None = None
        self.flushing = False
        self.flush_total = 0
        self.has_prev = self.has_next = False
        self.watcher = None
        self._owns_cache = not services.cache.is_open  # the app opens (and closes) it
        self._detail: m.DetailLoaded | None = None
        self._open_detail_when_loaded = False
        self._pending_refresh = False
        self._first_page_shown = False
        self._pending_stale_marks = False
        self._log_handler: AppLogHandler | None = None
        self._unsubscribe = None

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield RedisBanner(id="banner")
        with Horizontal(id="main"):
            with TabbedContent(id="tabs", initial="tab-keys"):
                with TabPane("Redis keys", id="tab-keys"):
                    yield KeysPane(id="keys")
                with TabPane("Filesystem", id="tab-files"):
                    yield FilesPane(id="files")
                with TabPane("Specs", id="tab-specs"):
                    yield SpecsPane(self.services.spec_dirs, id="specs")
            yield DetailPane(id="detail")
        with Horizontal(id="flush-bar"):
            yield Label("flushing…", id="flush-label")
            yield ProgressBar(id="flush-progress", show_eta=False)
        yield LogPane(id="log")
        yield Footer()

    def on_mount(self) -> None:
        # Handlers use these references, not queries: a message that arrives while
        # the app shuts down then updates a detached widget instead of raising.
        self.status_bar = self.query_one(StatusBar)
        self.banner = self.query_one(RedisBanner)
        self.keys_pane = self.query_one(KeysPane)
        self.files_pane = self.query_one(FilesPane)
        self.specs_pane = self.query_one(SpecsPane)
        self.detail_pane = self.query_one(DetailPane)
        self.log_pane = self.query_one(LogPane)
        self.tabs = self.query_one(TabbedContent)
        self.flush_bar = self.query_one("#flush-bar")
        self.flush_label = self.query_one("#flush-label", Label)
        self.flush_progress = self.query_one("#flush-progress", ProgressBar)
        redact.install("ircache")  # also when the app is built without the command line
        self._log_handler = AppLogHandler(self, self.services.clock)
        logger = logging.getLogger("ircache")
        logger.addHandler(self._log_handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        self._unsubscribe = self.cache.events.subscribe(self._on_cache_event)
        self._status(
            ttl=self.cache.ttl, generator=generator_label(self.cache.generator), read_only=self.services.read_only,
            redis_url=self._redis_label(),
        )
        self.detail_pane.show_entry("", None)
        self._fit(self.size.width)
        self.set_interval(1.0, self._tick)
        self.startup()

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        if self.watcher is not None:
            self.watcher.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._log_handler is not None:
            logging.getLogger("ircache").removeHandler(self._log_handler)
        if self._owns_cache:
            await self.cache.close()

    def _redis_label(self) -> str:
        return self.cache.display_url

    def _status(self, **changes) -> None:
        self.status_bar.set(**changes)

    @on(Resize)
    def _resized(self, event: Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.screen.set_class(width < NARROW, "-narrow")

    # -- bindings: enabled, disabled (greyed), hidden ----------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in DESTRUCTIVE and self.cache.read_only:
            return None
        if action == "cancel_flush":
            return True if self.flushing else False
        if action == "next_page":
            return True if self.has_next else None
        if action == "prev_page":
            return True if self.has_prev else None
        if action == "prune" and not self.services.spec_dirs:
            return None
        return True

    def _refresh_bindings(self) -> None:
        if self.screen_stack:  # a late message during shutdown finds no screen
            self.refresh_bindings()

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action not in ("quit",):
                if self.check_action(binding.action, ()):
                    yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                        lambda a=binding.action: self.run_action(a))

    # -- startup and the periodic rounds -------------------------------------------
    @work(group="startup", exit_on_error=False)
    async def startup(self) -> None:
        try:
            if not self.cache.is_open:
                await self.cache.open()
        except Exception as exc:  # embedded redis-server missing, bad URL...
            self.post_message(m.StartupFailed(str(exc)))
            return
        self.post_message(m.CacheReady(await self._live_mode_available()))

    async def _live_mode_available(self) -> str:
        if self.services.live != "auto":
            return "polling"
        # the cache decides whether it may CONFIG SET (never on an external server when read-only)
        return "notifications" if await self.cache.enable_live_updates() else "polling"

    @on(m.StartupFailed)
    def _startup_failed(self, message: m.StartupFailed) -> None:
        self._status(connected=False, redis_url=self._redis_label())
        self.banner.show_down(redact.scrub(message.error))
        log.error("Cannot start: %s", message.error)

    @on(m.CacheReady)
    def _cache_ready(self, message: m.CacheReady) -> None:
        self.live_mode = message.live_mode
        self.browser = self.cache.key_browser(self.services.page_size)
        self._status(redis_url=self._redis_label(), live=self._live_label())
        self.query_one("#keys-table").focus()
        log.info("Dashboard ready: %s, live updates by %s", self._redis_label(), self._live_label())
        self.load_page("first")  # totals (a full scan) start after it: the first page must not queue behind them
        self._start_live()
        self._start_watcher()

    def _live_label(self) -> str:
        if self.live_mode == "notifications":
            return "notifications"
        return f"polling {self.services.poll_interval:g}s"

    def _start_live(self) -> None:
        if self.live_mode == "notifications":
            self.listen_keys()
        elif self._poll_timer is None:
            self._poll_timer = self.set_timer(self.services.poll_interval, self._poll_round)

    def _poll_round(self) -> None:
        # reschedule after each round so polls never overlap; stop once notifications took over
        self._poll_timer = None
        if self.live_mode != "polling":
            return
        if self.browser is not None and not self.flushing:
            self.reload_page()
        self._poll_timer = self.set_timer(self.services.poll_interval, self._poll_round)

    def _tick(self) -> None:
        self.keys_pane.tick(self.services.monotonic())

    # -- Redis keys ---------------------------------------------------------------
    def reload_page(self) -> None:
        """A background refresh of the current page; never cancels a page the user asked for."""
        if not any(w.group == "scan" and w.is_running for w in self.workers):
            self.load_page("reload")

    @work(group="scan", exclusive=True, exit_on_error=False)
    async def load_page(self, which: str) -> None:
        browser = self.browser
        if browser is None:
            return
        try:
            page = await getattr(browser, which)()
        except IRCacheError as exc:
            self.post_message(m.RedisDown(str(exc)))
            return
        self.post_message(m.PageLoaded(page, browser.has_prev, browser.has_next, browser.filter_text))

    @on(m.PageLoaded)
    def _page_loaded(self, message: m.PageLoaded) -> None:
        if not self._first_page_shown:
            self._first_page_shown = True
            self.load_files()
            self.load_stats()
        self._mark_up()
        self.has_prev, self.has_next = message.has_prev, message.has_next
        self.keys_pane.show_page(
            message.page, now=self.services.monotonic(), has_prev=message.has_prev,
            has_next=message.has_next, filter_text=message.filter_text,
        )
        self._refresh_bindings()

    @work(group="live", exclusive=True, exit_on_error=False)
    async def listen_keys(self) -> None:
        try:
            async for change in self.cache.key_changes(on_subscribed=lambda: self.post_message(m.Subscribed())):
                self.post_message(m.KeyChanged(change))
        except (IRCacheError, OSError) as exc:
            self.post_message(m.RedisDown(str(exc).splitlines()[0] if str(exc) else "connection lost"))

    @on(m.Subscribed)
    def _subscribed(self) -> None:
        self.reload_page()  # catch what changed between the first page and the subscription

    @on(m.KeyChanged)
    def _key_changed(self, message: m.KeyChanged) -> None:
        change = message.change
        browser = self.browser
        if browser is None:
            return
        wanted = browser.spec_name is None or browser.spec_name == change.key.spec_name
        if browser.match is not None:
            wanted = fnmatch.fnmatchcase(f"{self.cache.keys.prefix}:{change.key.cache_key}", browser.match)
        if wanted:
            self.refresh_key(change.key.cache_key, change.gone)
        self._schedule_totals()

    @work(group="keyrefresh", exit_on_error=False)
    async def refresh_key(self, cache_key: str, gone: bool) -> None:
        if gone:
            self.post_message(m.KeyRefreshed(cache_key, None))
            return
        try:
            row = await self.browser.row_for(cache_key)
        except IRCacheError:
            return
        self.post_message(m.KeyRefreshed(cache_key, row))

    @on(m.KeyRefreshed)
    def _key_refreshed(self, message: m.KeyRefreshed) -> None:
        pane = self.keys_pane
        if message.row is None:
            pane.remove(message.cache_key)
        else:
            pane.upsert(message.row, self.services.monotonic())

    def _schedule_totals(self) -> None:
        """Coalesce bursts of changes into one stats + files refresh a second later."""
        if not self._pending_refresh:
            self._pending_refresh = True
            self.set_timer(1.0, self._refresh_totals)

    def _refresh_totals(self) -> None:
        self._pending_refresh = False
        self.load_stats(reschedule=False)
        self.load_files()

    # -- filesystem, stats, health ------------------------------------------------
    @work(group="files", exclusive=True, exit_on_error=False)
    async def load_files(self) -> None:
        entries = await self.cache.list_files(include_quarantined=True)
        try:
            present = await self.cache.in_redis_many([e.cache_key for e in entries if not e.quarantined])
            it = iter(present)
            warm: list[bool | None] = [None if e.quarantined else next(it) for e in entries]
        except IRCacheError:
            warm = [None] * len(entries)
        self.post_message(m.FilesLoaded(entries, warm))

    @on(m.FilesLoaded)
    def _files_loaded(self, message: m.FilesLoaded) -> None:
        self.files_pane.show(message.entries, message.warm, str(self.cache.cache_dir))

    @work(group="stats", exclusive=True, exit_on_error=False)
    async def load_stats(self, reschedule: bool = True) -> None:
        info = await self.cache.get_cache_info()
        self.post_message(m.StatsLoaded(info))
        if reschedule:
            self.post_message(m.StatsRoundDone())

    @on(m.StatsLoaded)
    def _stats_loaded(self, message: m.StatsLoaded) -> None:
        redis_info = message.info["redis"]
        if redis_info.get("reachable"):
            self._mark_up()
            size = redis_info["total_size_bytes"]
            self._status(ir_keys=redis_info["total_keys"], ir_bytes=size, sizes_refused=size is None)
        else:
            self.post_message(m.RedisDown(redis_info.get("error", "unreachable")))

    @on(m.StatsRoundDone)
    def _stats_round_done(self) -> None:
        self.set_timer(self.services.stats_interval, lambda: self.load_stats())

    @on(m.RedisDown)
    def _redis_down(self, message: m.RedisDown) -> None:
        if self.redis_up is False:
            return
        self.redis_up = False
        log.warning("Redis is down (%s); retrying every %gs", message.reason, self.services.health_interval)
        self._status(connected=False)
        self.banner.show_down(redact.scrub(message.reason))
        self.set_timer(self.services.health_interval, self._probe)

    def _probe(self) -> None:
        self.probe_redis()

    @work(group="health", exclusive=True, exit_on_error=False)
    async def probe_redis(self) -> None:
        try:
            await self.cache.probe()  # asks even inside the tier's fast-fail window
        except (IRCacheError, OSError) as exc:
            self.post_message(m.ProbeFailed(str(exc).splitlines()[0]))
            return
        self.post_message(m.RedisUp())

    @on(m.ProbeFailed)
    def _probe_failed(self, message: m.ProbeFailed) -> None:
        self.banner.show_down(redact.scrub(message.reason))
        self.set_timer(self.services.health_interval, self._probe)

    @on(m.RedisUp)
    def _redis_up(self) -> None:
        was_down = self.redis_up is False
        self._mark_up()
        if was_down:
            log.info("Redis is back: refilling the panes")
            self.load_page("reload")
            self.load_files()
            self.load_stats(reschedule=False)
            self.recheck_live()

    @work(group="live-check", exclusive=True, exit_on_error=False)
    async def recheck_live(self) -> None:
        """A restarted server forgets notify-keyspace-events; one that was down at startup never had them."""
        self.post_message(m.LiveModeChecked(await self._live_mode_available()))

    @on(m.LiveModeChecked)
    def _live_mode_checked(self, message: m.LiveModeChecked) -> None:
        before = self._live_label()
        self.live_mode = message.live_mode
        if self._live_label() != before:
            log.info("Live updates now by %s (were by %s)", self._live_label(), before)
        self._status(live=self._live_label())
        if self.live_mode == "notifications" and self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        elif self.live_mode == "polling":
            self.workers.cancel_group(self, "live")  # a listener that outlived the switch
        self._start_live()  # (re)subscribe, or poll

    def _mark_up(self) -> None:
        if self.redis_up is not True:
            self.redis_up = True
            self._status(connected=True)
            self.banner.show_up()

    # -- specs (the watcher) --------------------------------------------------------
    def _start_watcher(self) -> None:
        if not self.services.spec_dirs:
            return
        from ..watch import SpecWatcher

        self.watcher = SpecWatcher(
            self.cache, self.services.spec_dirs, pattern=self.services.spec_pattern,
            generate=self.services.generate_on_watch, watch=self.services.watch,
            on_status=lambda status: self.post_message(m.SpecStatusChanged(status)),
        )
        self.run_watcher()

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def run_watcher(self) -> None:
        try:
            await self.watcher.run()
        except Exception as exc:
            log.error("Spec watcher stopped: %s", exc)

    @on(m.LogLine)
    def _log_line(self, message: m.LogLine) -> None:
        self.log_pane.add(message.level, message.text)

    @on(m.SpecStatusChanged)
    def _spec_status(self, message: m.SpecStatusChanged) -> None:
        self.specs_pane.update_status(message.status)
        if not self._pending_stale_marks:  # a burst of 1,000 statuses recomputes once, not 1,000 times
            self._pending_stale_marks = True
            self.set_timer(0.2, self._mark_stale_keys)

    def _mark_stale_keys(self) -> None:
        self._pending_stale_marks = False
        current = current_hashes(current_specs(self.specs_pane.statuses.values()))
        if current != self.keys_pane.current:
            self.keys_pane.set_current(current)

    # -- the cache's own events -----------------------------------------------------
    def _on_cache_event(self, event: CacheEvent) -> None:
        self.post_message(m.CacheEventPosted(event))

    @on(m.CacheEventPosted)
    def _cache_event(self, message: m.CacheEventPosted) -> None:
        counters = self.cache.events.counters
        self._status(hits=counters.hits, misses=counters.misses)
        if message.event.kind in ("generated", "warmed", "flushed", "corrupt"):
            self._schedule_totals()

    # -- selection and detail -------------------------------------------------------
    def _active_tab(self) -> str:
        return self.tabs.active

    def selection(self) -> PickedEntry | None:
        tab = self._active_tab()
        if tab == "tab-keys":
            key = self.keys_pane.selected_key()
            row = self.keys_pane.rows.get(key) if key else None
            return PickedEntry(row.spec_name, row.cache_key, "redis") if row else None
        if tab == "tab-files":
            entry = self.files_pane.selected()
            if entry is None or entry.quarantined:
                return None
            return PickedEntry(entry.spec_name, entry.cache_key, "filesystem")
        status = self.specs_pane.selected()
        if status is None or not status.spec_name:
            return None
        return PickedEntry(status.spec_name, status.cache_key, "spec", status.path)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        selection = self.selection()
        if selection is not None and selection.cache_key:
            self.load_detail(selection)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        selection = self.selection()
        if selection is not None and selection.cache_key:
            self.load_detail(selection)

    @work(group="detail", exclusive=True, exit_on_error=False)
    async def load_detail(self, selection: PickedEntry) -> None:
        tier = "filesystem" if selection.tier == "filesystem" else "redis"
        title = f"{selection.cache_key} ({'filesystem' if tier == 'filesystem' else 'Redis'})"
        try:
            entry = await self.cache.read_entry(selection.cache_key, tier)  # type: ignore[arg-type]
            self.post_message(m.DetailLoaded(title, entry))
        except KeyError:
            if selection.tier == "spec":
                try:
                    entry = await self.cache.read_entry(selection.cache_key, "filesystem")
                    self.post_message(m.DetailLoaded(f"{selection.cache_key} (filesystem)", entry))
                    return
                except (KeyError, CorruptEntry, OSError):
                    pass
            self.post_message(m.DetailLoaded(title, None, "not cached"))
        except CorruptEntry as exc:
            self.post_message(m.DetailLoaded(title, None, f"corrupt entry: {exc.reason}"))
        except (IRCacheError, OSError) as exc:
            self.post_message(m.DetailLoaded(title, None, redact.scrub(str(exc))))

    @on(m.DetailLoaded)
    def _detail_loaded(self, message: m.DetailLoaded) -> None:
        selection = self.selection()
        if selection is None or not message.title.startswith(selection.cache_key + " "):
            # A superseded load that finished anyway (a cancellation can land after the
            # reply did): showing it would put another row's entry beside the cursor.
            return
        self._detail = message
        self.detail_pane.show_entry(message.title, message.entry, message.error)
        if self._open_detail_when_loaded:
            self._open_detail_when_loaded = False
            self.push_screen(DetailScreen(message.title, message.entry, message.error))

    def action_detail(self) -> None:
        selection = self.selection()
        if selection is None:
            self.notify("Nothing selected", severity="warning")
            return
        if self._detail is not None and self._detail.title.startswith(selection.cache_key + " "):
            self.push_screen(DetailScreen(self._detail.title, self._detail.entry, self._detail.error))
        else:
            self._open_detail_when_loaded = True
            self.load_detail(selection)

    # -- actions ---------------------------------------------------------------------
    def action_next_page(self) -> None:
        self.load_page("next")

    def action_prev_page(self) -> None:
        self.load_page("prev")

    def action_refresh(self) -> None:
        if self.browser is None:
            return
        self.load_page("reload")
        self.load_files()
        self.load_stats(reschedule=False)
        if self.watcher is not None:
            self.refresh_specs()

    @work(group="specs", exclusive=True, exit_on_error=False)
    async def refresh_specs(self) -> None:
        await self.watcher.refresh()

    def action_filter(self) -> None:
        if self.browser is None:
            return

        def apply(text: str | None) -> None:
            if text is None or self.browser is None:
                return
            self.browser.set_filter(text or None)
            self.tabs.active = "tab-keys"
            self.load_page("first")

        self.push_screen(FilterScreen(self.browser.filter_text), apply)

    def action_help(self) -> None:
        rows = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                rows.append((binding.key.replace("question_mark", "?").replace("slash", "/"),
                             binding.tooltip or binding.description))
        self.push_screen(HelpScreen(rows))

    # flush -------------------------------------------------------------------------
    def action_flush_spec(self) -> None:
        selection = self.selection()
        if selection is None:
            self.notify("Select a key, file or spec to flush", severity="warning")
            return
        self.count_for_flush(selection.spec_name)

    def action_flush_all(self) -> None:
        self.count_for_flush(None)

    @work(group="flush-count", exclusive=True, exit_on_error=False)
    async def count_for_flush(self, spec_name: str | None) -> None:
        try:
            redis_keys = await self.cache.count_keys(spec_name)
        except IRCacheError:
            redis_keys = 0
        files = sum(1 for e in await self.cache.list_files() if spec_name is None or e.spec_name == spec_name)
        self.post_message(m.FlushCounted(spec_name, redis_keys, files))

    @on(m.FlushCounted)
    def _flush_counted(self, message: m.FlushCounted) -> None:
        def chosen(request: FlushRequest | None) -> None:
            if request is None:
                return
            self.flush_total = message.redis_keys if request.redis else message.files
            self._flush_started()
            self.run_flush(request)

        self.push_screen(FlushScreen(message.spec_name, message.redis_keys, message.files), chosen)

    def _flush_started(self) -> None:
        self.flushing = True
        bar = self.flush_bar
        bar.add_class("-active")
        self.flush_progress.update(total=max(1, self.flush_total), progress=0)
        self.flush_label.update(f"flushing 0/{self.flush_total} (esc cancels)")
        self._refresh_bindings()

    @work(group="flush", exclusive=True, exit_on_error=False)
    async def run_flush(self, request: FlushRequest) -> None:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done = n
            self.post_message(m.FlushProgress(n, self.flush_total))

        what = f"spec {request.spec_name}" if request.spec_name else "all IR entries"
        try:
            result = await self.cache.clear_cache(
                redis=request.redis, filesystem=request.filesystem, spec_name=request.spec_name, on_progress=progress
            )
        except asyncio.CancelledError:
            log.warning("Flush of %s cancelled after %d keys", what, done)
            self.post_message(m.FlushFinished(f"Flush cancelled after {done} keys", error=True))
            raise
        except (IRCacheError, OSError) as exc:
            self.post_message(m.FlushFinished(f"Flush failed: {exc}", error=True))
            return
        parts = ", ".join(f"{n} from {tier}" for tier, n in result.items())
        self.post_message(m.FlushFinished(f"Flushed {what}: {parts}"))

    @on(m.FlushFinished)
    def _flush_finished(self, message: m.FlushFinished) -> None:
        self.flushing = False
        self.flush_bar.remove_class("-active")
        self.post_message(m.OperationDone(message.text, message.error))

    @on(m.FlushProgress)
    def _flush_progress(self, message: m.FlushProgress) -> None:
        total = max(message.total, message.done, 1)
        self.flush_progress.update(total=total, progress=message.done)
        self.flush_label.update(f"flushing {message.done}/{total} (esc cancels)")

    def action_cancel_flush(self) -> None:
        if self.flushing:
            self.workers.cancel_group(self, "flush")

    # other operations ------------------------------------------------------------------
    def action_warm(self) -> None:
        self.run_warm()

    @work(group="warm", exclusive=True, exit_on_error=False)
    async def run_warm(self) -> None:
        try:
            result = await self.cache.warm_redis()
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Warm failed: {exc}", error=True))
            return
        self.post_message(m.OperationDone(
            f"Warmed {result['warmed']} entries into Redis ({result['already_in_redis']} already there)"))

    def action_delete_key(self) -> None:
        selection = self.selection()
        if selection is None or selection.tier == "spec":
            self.notify("Select a key (Redis tab) or a file (Filesystem tab) to delete", severity="warning")
            return
        self.run_delete(selection)

    @work(group="delete", exit_on_error=False)
    async def run_delete(self, selection: PickedEntry) -> None:
        tier = "redis" if selection.tier == "redis" else "filesystem"
        where = "Redis" if tier == "redis" else "the filesystem"
        try:
            gone = await self.cache.delete_entry(selection.cache_key, tier)
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Delete failed: {exc}", error=True))
            return
        self.post_message(m.OperationDone(f"Deleted {selection.cache_key} from {where}" if gone
                                          else f"{selection.cache_key} was already gone"))

    def action_reset_ttl(self) -> None:
        selection = self.selection()
        if selection is None or selection.tier != "redis":
            self.notify("Select a Redis key to reset its TTL", severity="warning")
            return
        self.run_reset_ttl(selection.cache_key)

    @work(group="ttl", exit_on_error=False)
    async def run_reset_ttl(self, cache_key: str) -> None:
        try:
            ok = await self.cache.reset_ttl(cache_key)
        except IRCacheError as exc:
            self.post_message(m.OperationDone(f"TTL reset failed: {exc}", error=True))
            return
        self.post_message(m.OperationDone(
            f"TTL of {cache_key} reset to {self.cache.ttl}s" if ok else f"{cache_key} not reset (gone, or TTL 0)",
            error=not ok))

    def action_regenerate(self) -> None:
        selection = self.selection()
        if selection is None:
            self.notify("Select a key, file or spec to regenerate", severity="warning")
            return
        self.keys_pane.mark(selection.cache_key, "generating…")
        self.notify(f"Regenerating {selection.spec_name}…")
        self.run_regenerate(selection)

    @work(group="generate", exit_on_error=False)
    async def run_regenerate(self, selection: PickedEntry) -> None:
        path = selection.spec_path or await self._spec_path_for(selection)
        if path is None:
            self.post_message(m.OperationDone(
                f"Cannot regenerate {selection.spec_name}: its spec file is not known here "
                "(open its directory: ircache-tui DIR)", error=True))
            return
        spec = await asyncio.to_thread(read_spec, path)
        if spec.error:
            self.post_message(m.OperationDone(f"Cannot regenerate {selection.spec_name}: {path}: {spec.error}", error=True))
            return
        try:
            result = await self.cache.lookup(spec.text, str(path), force_refresh=True)
        except (GenerationError, IRCacheError) as exc:
            self.post_message(m.OperationDone(f"Regeneration failed: {exc}", error=True))
            return
        if self.watcher is not None:
            await self.watcher.refresh(path)
        self.post_message(m.OperationDone(f"Regenerated {result.cache_key}"))

    async def _spec_path_for(self, selection: PickedEntry) -> Path | None:
        if self.watcher is not None:
            for status in self.watcher.statuses.values():
                if status.spec_name == selection.spec_name and status.state.value != "deleted":
                    return status.path
        with contextlib.suppress(Exception):
            entry = await self.cache.read_entry(selection.cache_key, "redis" if selection.tier == "redis" else "filesystem")
            candidate = Path(entry.spec_path)
            if await asyncio.to_thread(candidate.is_file):
                return candidate
        return None

    def action_prune(self) -> None:
        self.find_prunable()

    @work(group="prune", exclusive=True, exit_on_error=False)
    async def find_prunable(self) -> None:
        specs = await asyncio.to_thread(
            discover_specs, self.services.spec_dirs, self.services.spec_pattern, ignored=[self.cache.cache_dir])
        report = await find_stale(self.cache, specs)  # orphans are listed, not included
        self.post_message(m.PruneFound(report))

    @on(m.PruneFound)
    def _prune_found(self, message: m.PruneFound) -> None:
        report = message.report
        if not (report.total or report.kept):
            self.notify("Nothing stale to prune" + (f" (Redis not checked: {report.redis_error})"
                                                      if report.redis_error else ""))
            return

        def chosen(request: PruneRequest | None) -> None:
            if request is not None:
                self.run_prune(report.with_orphans(request.include_orphans))

        dirs = ", ".join(map(str, self.services.spec_dirs))
        self.push_screen(PruneScreen(report, dirs), chosen)

    @work(group="prune", exclusive=True, exit_on_error=False)
    async def run_prune(self, report: StaleReport) -> None:
        try:
            removed = await prune(self.cache, report)
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Prune failed: {exc}", error=True))
            return
        if self.watcher is not None:
            await self.watcher.refresh()
        self.post_message(m.OperationDone(f"Pruned {removed['redis']} Redis key(s), {removed['filesystem']} file(s)"))

    @on(m.OperationDone)
    def _operation_done(self, message: m.OperationDone) -> None:
        self.notify(redact.scrub(message.text), severity="error" if message.error else "information")
        if message.refresh and self.browser is not None:
            self.reload_page()
            self.load_files()
            self.load_stats(reschedule=False)
        self._refresh_bindings()
