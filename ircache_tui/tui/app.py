"""The dashboard App: it composes the panes, holds the services and routes the few messages that cross panes.

    status bar · Redis banner
    [ Redis keys | Filesystem | Specs ]   detail
    flush bar
    log · footer

Each pane owns its work (keys: paging, live updates and its keys; files:
listing; specs: the watcher; flush bar: count, confirm, run, cancel; detail:
loading the picked entry). Workers only post messages; handlers in the pane
that owns the work change its state. What the App itself does: open the
cache, track whether Redis answers (and probe it while it does not), refresh
the totals in the status bar, the operations that span tiers (warm, prune,
regenerate), and hand one pane's news to another. The tiers are reached
through IRCache's methods only, and a read-only cache refuses writes whatever
a binding asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from datetime import datetime
from pathlib import Path

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from .. import redact
from ..cache.errors import IRCacheError
from ..cache.events import CacheEvent
from ..fmt import plural
from ..ir.generators import GenerationError, generator_label
from ..specs import discover_specs, find_stale, prune, read_spec
from ..specs.stale import StaleReport
from . import messages as m
from .logbridge import AppLogHandler
from .picked import PickedEntry
from .screens.help import HelpScreen
from .screens.prune import PruneRequest, PruneScreen
from .services import Services
from .text import printable
from .widgets.banner import RedisBanner
from .widgets.detail_pane import DetailPane
from .widgets.files_pane import FilesPane
from .widgets.flush_bar import FlushBar
from .widgets.keys_pane import KeysPane
from .widgets.log_pane import LogPane
from .widgets.specs_pane import SpecsPane
from .widgets.status_bar import StatusBar

log = logging.getLogger("ircache")

# App actions that write to or delete from the cache: disabled in read-only (the panes have their own).
DESTRUCTIVE = {"flush_spec", "flush_all", "regenerate", "warm", "prune"}
TABS = ("tab-keys", "tab-files", "tab-specs")
# App keys that act on the dashboard's panes: off while another screen is on top of it
ON_THE_DASHBOARD = DESTRUCTIVE | {"show_tab", "cycle_tab", "refresh", "detail", "cancel_flush", "diff"}
NARROW = 110  # below this width the detail pane folds away (enter still opens the full view)
TOTALS_DELAY = 1.0  # a burst of changes refreshes the totals once, this long after


async def _finished(worker) -> None:
    with contextlib.suppress(Exception):  # cancelled or failed: either way it is done
        await worker.wait()


class IRCacheApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "ircache-tui"
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Every key and what it does"),
        Binding("q", "quit", "Quit"),
        # ctrl+c quits too, as in k9s and lazygit (Textual binds it to a hint that q quits): a
        # priority binding like its ctrl+q, so that no screen, dialog or input takes it for copy
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, tooltip="Quit, as q does (ctrl+q too)"),
        Binding("f", "flush_spec", "Flush spec", tooltip="Flush the selected spec's keys (asks first)"),
        Binding("F", "flush_all", "Flush all", tooltip="Flush every IR key under the prefix (asks first)"),
        Binding("r", "regenerate", "Regenerate", tooltip="Regenerate the selected spec (force_refresh)"),
        Binding("w", "warm", "Warm", tooltip="Copy every filesystem entry Redis lacks into Redis"),
        Binding("P", "prune", "Prune", show=False, tooltip="Delete stale entries of the watched specs (asks first)"),
        Binding("D", "diff", "Diff", tooltip="What the selected spec, key or file changed from its previous version"),
        Binding("1", "show_tab('tab-keys')", "Keys", show=False, tooltip="The Redis keys tab"),
        Binding("2", "show_tab('tab-files')", "Files", show=False, tooltip="The filesystem tab"),
        Binding("3", "show_tab('tab-specs')", "Specs", show=False, tooltip="The specs tab"),
        Binding("left_square_bracket", "cycle_tab(-1)", "Previous tab", show=False, tooltip="The tab to the left"),
        Binding("right_square_bracket", "cycle_tab(1)", "Next tab", show=False, tooltip="The tab to the right"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, tooltip="Reload every pane"),
        Binding("enter", "detail", "Detail", show=False, tooltip="Open the selected entry: summary and the IR JSON"),
        Binding("escape", "cancel_flush", "Cancel flush", tooltip="Stop the running flush"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.cache = services.cache
        self.redis_up: bool | None = None
        self.last_answered: datetime | None = None
        self._owns_cache = not services.cache.is_open  # the app opens (and closes) it
        self._totals_pending = False
        self._log_handler: AppLogHandler | None = None
        self._unsubscribe = None

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        s = self.services
        yield StatusBar(id="status")
        yield RedisBanner(id="banner")
        with Horizontal(id="main"):
            with TabbedContent(id="tabs", initial="tab-keys"):
                with TabPane("1 Redis keys", id="tab-keys"):
                    yield KeysPane(s, id="keys")
                with TabPane("2 Filesystem", id="tab-files"):
                    yield FilesPane(self.cache, id="files")
                with TabPane("3 Specs", id="tab-specs"):
                    yield SpecsPane(self.cache, s.spec_dirs, pattern=s.spec_pattern, watch=s.watch,
                                    generate=s.generate_on_watch, id="specs")
            yield DetailPane(self.cache, id="detail")
        yield FlushBar(self.cache, id="flush-bar")
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
        self.flush_bar = self.query_one(FlushBar)
        self.log_pane = self.query_one(LogPane)
        self.tabs = self.query_one(TabbedContent)
        redact.install("ircache")  # also when the app is built without the command line
        self._log_handler = AppLogHandler(self, self.services.clock, prefix=self.cache.settings.prefix)
        logger = logging.getLogger("ircache")
        logger.addHandler(self._log_handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        self._unsubscribe = self.cache.events.subscribe(lambda event: self.post_message(m.CacheEventPosted(event)))
        self._status(ttl=self.cache.ttl, generator=generator_label(self.cache.generator),
                     read_only=self.cache.read_only, redis_url=self.cache.display_url)
        self.detail_pane.show(None)
        self._fit(self.size.width)
        self.set_interval(1.0, lambda: self.keys_pane.tick(self.services.monotonic()))
        self.startup()

    async def on_unmount(self) -> None:
        workers = list(self.workers)
        self.workers.cancel_all()
        # let cancelled work finish before the cache closes under it (it would log a closed connection)
        if workers:
            await asyncio.wait([asyncio.ensure_future(_finished(w)) for w in workers], timeout=2)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._log_handler is not None:
            logging.getLogger("ircache").removeHandler(self._log_handler)
        if self._owns_cache:
            await self.cache.close()

    def _status(self, **changes) -> None:
        self.status_bar.set(**changes)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, but text by default: the messages here name specs and keys and quote
        errors, so they are made printable and never parsed as markup (markup=True is for constants)."""
        if not markup:
            message = printable(message)
        super().notify(message, title=printable(title), severity=severity, timeout=timeout, markup=markup)

    @on(events.Resize)
    def _resized(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.screen.set_class(width < NARROW, "-narrow")

    # -- bindings: enabled, disabled (greyed), hidden; a disabled key says why ----------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1 and action in ON_THE_DASHBOARD:
            return False  # a screen on top (the full detail view) shows its own keys, not the dashboard's
        if action in DESTRUCTIVE and self.cache.read_only:
            return None
        if action == "cancel_flush":
            return True if self.flush_bar.running else False
        if action == "prune" and not self.services.spec_dirs:
            return None
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose binding is greyed out by --read-only: say why instead of doing nothing."""
        if not self.cache.read_only:
            return
        actions = {b.key: b.action for b in self.BINDINGS if isinstance(b, Binding) and b.action in DESTRUCTIVE}
        focused = self.focused
        for pane in (self.keys_pane, self.files_pane):
            if focused is not None and pane in focused.ancestors_with_self:
                actions.update({b.key: b.action for b in pane.BINDINGS if b.action in pane.WRITES})
        if event.key in actions:
            self.notify(f"Read-only session: {actions[event.key].replace('_', ' ')} is disabled "
                        "(started with --read-only or IR_READ_ONLY=1)", severity="warning")

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.action not in ("quit",) and self.check_action(binding.action, ()):
                yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                    lambda a=binding.action: self.run_action(a))

    # -- startup ----------------------------------------------------------------------
    @work(group="startup", exit_on_error=False)
    async def startup(self) -> None:
        try:
            if not self.cache.is_open:
                await self.cache.open()
        except Exception as exc:  # embedded redis-server missing, a refused socket dir...
            self.post_message(m.StartupFailed(str(exc)))
            return
        live = "polling"
        if self.services.live == "auto":
            live = "notifications" if await self.cache.enable_live_updates() else "polling"
        self.post_message(m.CacheReady(live))

    @on(m.StartupFailed)
    def _startup_failed(self, message: m.StartupFailed) -> None:
        self._status(connected=False, redis_url=self.cache.display_url)
        self.banner.show_down(redact.scrub(message.error))
        log.error("Cannot start: %s", message.error)
        self.files_pane.reload()  # the filesystem works without Redis

    @on(m.CacheReady)
    def _cache_ready(self, message: m.CacheReady) -> None:
        self._status(redis_url=self.cache.display_url, live=self._live_label(message.live_mode))
        self.keys_pane.table.focus()
        log.info("Dashboard ready: %s, live updates by %s", self.cache.display_url, self._live_label(message.live_mode))
        self.keys_pane.start(message.live_mode)  # totals (a full scan) start after its first page
        self.specs_pane.start()
        # What exists now (Textual, the cache) lives as long as the app: keep it out of the
        # collector's full passes, which otherwise stall the screen for ~70 ms at a time.
        gc.freeze()

    def _live_label(self, mode: str) -> str:
        return "notifications" if mode == "notifications" else f"polling {self.services.poll_interval:g}s"

    @on(m.FirstPageShown)
    def _first_page_shown(self) -> None:
        self.files_pane.reload()
        self.load_stats()

    @property
    def first_page_shown(self) -> bool:
        return self.keys_pane.first_page_shown

    @on(m.LiveModeChanged)
    def _live_mode_changed(self, message: m.LiveModeChanged) -> None:
        if message.before:
            log.info("Live updates now by %s (were by %s)", self._live_label(message.mode), self._live_label(message.before))
        self._status(live=self._live_label(message.mode))

    # -- totals --------------------------------------------------------------------------
    @work(group="stats", exclusive=True, exit_on_error=False)
    async def load_stats(self, reschedule: bool = True) -> None:
        info = await self.cache.get_cache_info()
        try:
            hits = await self.cache.hit_totals()
        except IRCacheError:
            hits = None  # Redis down (said by the stats), or the counts refused by an ACL
        self.post_message(m.StatsLoaded(info, hits))
        if reschedule:
            self.post_message(m.StatsRoundDone())

    @on(m.StatsLoaded)
    def _stats_loaded(self, message: m.StatsLoaded) -> None:
        redis_info = message.info["redis"]
        if redis_info.get("reachable"):
            self._mark_up()
            size = redis_info["total_size_bytes"]
            self._status(ir_keys=redis_info["total_keys"], ir_bytes=size, sizes_refused=size is None,
                         foreign_keys=redis_info.get("foreign_keys", 0))
            if message.hits is not None:
                self._status(saved_usd=message.hits["saved_usd"],
                             shared_hits=message.hits["redis"] + message.hits["filesystem"])
            self.keys_pane.set_total(redis_info["total_keys"])
        else:
            self.post_message(m.RedisDown(redis_info.get("error", "unreachable")))

    @on(m.StatsRoundDone)
    def _stats_round_done(self) -> None:
        self.set_timer(self.services.stats_interval, lambda: self.load_stats())

    def _schedule_totals(self) -> None:
        """Coalesce bursts of changes into one stats + files refresh a second later."""
        if not self._totals_pending:
            self._totals_pending = True
            self.set_timer(TOTALS_DELAY, self._refresh_totals)

    def _refresh_totals(self) -> None:
        self._totals_pending = False
        self.load_stats(reschedule=False)
        self.files_pane.reload()

    # -- Redis up and down ---------------------------------------------------------------
    @on(m.RedisDown)
    def _redis_down(self, message: m.RedisDown) -> None:
        if self.redis_up is False:
            return
        self.redis_up = False
        log.warning("Redis is down (%s); retrying every %gs", message.reason, self.services.health_interval)
        self._status(connected=False)
        last = f"last answered {self.last_answered:%H:%M:%S}" if self.last_answered else "not answered yet"
        self.banner.show_down(redact.scrub(f"{message.reason} ({last})"))
        self.keys_pane.redis_down(f"{self.services.clock():%H:%M:%S} ({last})")
        if not self.keys_pane.first_page_shown:
            self.files_pane.reload()  # down from the start: the filesystem still answers
        self.set_timer(self.services.health_interval, self.probe_redis)

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
        self.set_timer(self.services.health_interval, self.probe_redis)

    @on(m.RedisUp)
    def _redis_up(self) -> None:
        was_down = self.redis_up is False
        self._mark_up()
        if was_down:
            log.info("Redis is back: rescanning from page 1 and refilling the panes")
            self.keys_pane.redis_back()
            self.files_pane.reload()
            self.load_stats(reschedule=False)
            self.specs_pane.follow(None)

    @on(m.RedisAnswered)
    def _redis_answered(self) -> None:
        self._mark_up()

    def _mark_up(self) -> None:
        self.last_answered = self.services.clock()
        if self.redis_up is not True:
            self.redis_up = True
            self._status(connected=True)
            self.banner.show_up()

    # -- what crosses panes ----------------------------------------------------------------
    @on(KeysPane.Picked)
    @on(FilesPane.Picked)
    @on(SpecsPane.Picked)
    def _picked(self, message: KeysPane.Picked | FilesPane.Picked | SpecsPane.Picked) -> None:
        # a pane in another tab does not steer the detail; and a pane re-announcing the same pick
        # after a refresh (every poll, every batch of changes) must not read the entry again
        if message.picked == self._active_pane().picked() and message.picked != self.detail_pane.picked:
            self.detail_pane.show(message.picked)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_detail()  # enter on a row: the table takes the key, so its selection opens the detail

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.detail_pane.show(self._active_pane().picked())

    def _active_pane(self) -> KeysPane | FilesPane | SpecsPane:
        return {"tab-keys": self.keys_pane, "tab-files": self.files_pane}.get(self.tabs.active, self.specs_pane)

    def picked(self) -> PickedEntry | None:
        return self._active_pane().picked()

    @on(KeysPane.Changed)
    def _keys_changed(self, message: KeysPane.Changed) -> None:
        self.specs_pane.follow(None if message.everything else message.spec_names)
        self._schedule_totals()

    @on(SpecsPane.CurrentChanged)
    def _current_changed(self, message: SpecsPane.CurrentChanged) -> None:
        self.keys_pane.set_current(message.current)

    @on(m.FlushStarted)
    def _flush_started(self) -> None:
        self.keys_pane.pause(True)

    @on(m.CacheEventPosted)
    def _cache_event(self, message: m.CacheEventPosted) -> None:
        event: CacheEvent = message.event
        counters = self.cache.events.counters
        self._status(hits=counters.hits, misses=counters.misses)
        if event.kind in ("generated", "warmed", "flushed", "corrupt", "deleted", "ttl"):
            self._schedule_totals()
        if event.kind in ("flushed", "deleted"):  # the specs tab follows what went, without ctrl+r
            self.specs_pane.follow([event.spec_name] if event.spec_name else None)
        if event.kind == "topology":  # a failover or a resharding: every node's cursor is stale
            self.notify(f"{event.detail}: rescanning", title="Redis Cluster", severity="warning")
            self.keys_pane.rescan()
            self._schedule_totals()
        picked = self.detail_pane.picked
        if picked is not None and event.kind in ("generated", "warmed", "deleted", "flushed", "corrupt") and (
            event.cache_key in ("", picked.cache_key)
        ):
            self.detail_pane.show(picked)  # the entry shown was rewritten or removed: read it again

    @on(m.LogLine)
    def _log_line(self, message: m.LogLine) -> None:
        self.log_pane.add(message.level, message.text)

    @on(m.OperationDone)
    def _operation_done(self, message: m.OperationDone) -> None:
        self.notify(redact.scrub(message.text), severity="error" if message.error else "information")
        if self.keys_pane.paused and not self.flush_bar.running:
            self.keys_pane.pause(False)  # our flush ended: one reload instead of a refresh per key
        elif message.refresh:
            self.keys_pane.reload()
        if message.refresh:
            self.files_pane.reload()
            self.load_stats(reschedule=False)
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab
        self._active_pane().table.focus()

    def action_cycle_tab(self, step: int) -> None:
        self.action_show_tab(TABS[(TABS.index(self.tabs.active) + step) % len(TABS)])

    def action_refresh(self) -> None:
        if not self.cache.is_open:
            return
        self.keys_pane.reload()
        self.files_pane.reload()
        self.load_stats(reschedule=False)
        self.specs_pane.follow(None)

    def action_detail(self) -> None:
        if self.picked() is None:
            self.notify("Nothing selected", severity="warning")
            return
        self.detail_pane.open_full()

    def action_help(self) -> None:
        rows = []
        for owner in (self, self.keys_pane, self.files_pane):
            for binding in owner.BINDINGS:
                if isinstance(binding, Binding):
                    key = (binding.key.replace("question_mark", "?").replace("slash", "/")
                           .replace("left_square_bracket", "[").replace("right_square_bracket", "]"))
                    where = "" if owner is self else f" ({owner.NAME} tab)"
                    rows.append((key, (binding.tooltip or binding.description) + where))
        self.push_screen(HelpScreen(rows))

    def action_cancel_flush(self) -> None:
        self.flush_bar.cancel()

    def action_flush_spec(self) -> None:
        picked = self.picked()
        if picked is None:
            self.notify("Select a key, file or spec to flush", severity="warning")
            return
        self.flush_bar.request(picked.spec_name)

    def action_flush_all(self) -> None:
        self.flush_bar.request(None)

    def action_warm(self) -> None:
        self.run_warm()

    @work(group="warm", exclusive=True, exit_on_error=False)
    async def run_warm(self) -> None:
        try:
            result = await self.cache.warm_redis()
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Warm failed: {exc}", error=True))
            return
        done = (f"Warmed {plural(result['warmed'], 'entry', 'entries')} into Redis "
                f"({result['already_in_redis']:,} already there)")
        if result["failures"] or result["error"]:  # say what was not done, with the first reason
            not_done = result["failed"] + result["left"]
            why = result["error"] or result["failures"][0]
            self.post_message(m.OperationDone(
                f"{done}; {plural(not_done, 'entry', 'entries')} not warmed: {why}", error=True))
        else:
            self.post_message(m.OperationDone(done))

    def action_regenerate(self) -> None:
        picked = self.picked()
        if picked is None:
            self.notify("Select a key, file or spec to regenerate", severity="warning")
            return
        self.keys_pane.mark_generating(picked.cache_key)
        self.notify(f"Regenerating {picked.spec_name}…")
        self.run_regenerate(picked)

    @work(group="generate", exit_on_error=False)
    async def run_regenerate(self, picked: PickedEntry) -> None:
        path = picked.spec_path or await self._spec_path_for(picked)
        if path is None:
            self.post_message(m.OperationDone(
                f"Cannot regenerate {picked.spec_name}: its spec file is not known here "
                "(open its directory: ircache-tui DIR)", error=True))
            return
        spec = await asyncio.to_thread(read_spec, path)
        if spec.error:
            self.post_message(m.OperationDone(f"Cannot regenerate {picked.spec_name}: {path}: {spec.error}", error=True))
            return
        try:
            result = await self.cache.lookup(spec.text, str(path), force_refresh=True)
        except (GenerationError, IRCacheError) as exc:
            self.post_message(m.OperationDone(f"Regeneration failed: {exc}", error=True))
            return
        self.post_message(m.OperationDone(f"Regenerated {result.cache_key}"))

    async def _spec_path_for(self, picked: PickedEntry) -> Path | None:
        known = self.specs_pane.spec_path_for(picked.spec_name)
        if known is not None:
            return known
        with contextlib.suppress(Exception):
            entry = await self.cache.read_entry(picked.cache_key, "redis" if picked.tier == "redis" else "filesystem")
            candidate = Path(entry.spec_path)
            if await asyncio.to_thread(candidate.is_file):
                return candidate
        return None

    # -- D: the structural diff of a picked entry or spec and its other version (screens/diff.py) --
    def action_diff(self) -> None:
        if len(self.screen_stack) > 1:
            return  # another screen is on top of the dashboard
        picked = self.picked()
        if picked is None:
            self.notify("Select a key, file or spec to diff", severity="warning")
            return
        current = next((s.cache_key for s in self.specs_pane.statuses.values()
                        if s.spec_name == picked.spec_name and s.cache_key and s.state != "deleted"), None)
        self.find_diff(picked, current)

    @work(group="diff", exit_on_error=False)
    async def find_diff(self, picked: PickedEntry, current: str | None) -> None:
        """A picked older entry against the spec's current key; else the picked key (or spec)
        against the most recent other entry of its spec (in time order when neither is current)."""
        from ..ir.diff import diff_ir
        from ..specs.history import older_entry, read_any_tier
        from .screens.diff import DiffFound

        name = picked.spec_name
        if picked.tier != "spec" and current and current != picked.cache_key:
            from_key, to_key = picked.cache_key, current
        else:
            to_key = picked.cache_key
            try:
                older = await older_entry(self.cache, name, to_key) if to_key else None
            except (IRCacheError, OSError) as exc:  # the cache dir cannot be listed
                self.post_message(DiffFound(name, note=f"Cannot diff {name}: {exc}"))
                return
            if older is None:
                self.post_message(DiffFound(name, note=f"Nothing to compare {to_key or name} with: "
                                                       f"no other entry of {name} in Redis or the filesystem"))
                return
            from_key = older[0]
        before, after = await read_any_tier(self.cache, from_key), await read_any_tier(self.cache, to_key)
        if before is None or after is None:
            gone = from_key if before is None else to_key
            self.post_message(DiffFound(name, note=f"Cannot diff {name}: {gone} is not in Redis or the filesystem"))
            return
        if (picked.tier != "spec" and current is None
                and before[0].generated_at.timestamp() > after[0].generated_at.timestamp()):
            (from_key, before), (to_key, after) = (to_key, after), (from_key, before)
        diff = diff_ir(before[0].application_ir, after[0].application_ir)
        self.post_message(DiffFound(name, from_key, to_key, diff))

    def on_diff_found(self, message) -> None:
        from .screens.diff import DiffScreen

        if message.diff is None:
            self.notify(message.note, severity="warning")
        elif len(self.screen_stack) == 1:
            self.push_screen(DiffScreen(message.spec_name, message.from_key, message.to_key, message.diff))

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

        self.push_screen(PruneScreen(report, ", ".join(map(str, self.services.spec_dirs))), chosen)

    @work(group="prune", exclusive=True, exit_on_error=False)
    async def run_prune(self, report: StaleReport) -> None:
        try:
            removed = await prune(self.cache, report)
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Prune failed: {exc}", error=True))
            return
        self.post_message(m.OperationDone(
            f"Pruned {plural(removed['redis'], 'Redis key')}, {plural(removed['filesystem'], 'file')}"))
