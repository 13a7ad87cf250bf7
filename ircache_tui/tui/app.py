"""The dashboard App: it composes the panes, holds the services and routes the messages that cross panes.

    status bar · Redis banner
    [ Redis keys | Filesystem | Specs ]   detail
    flush bar
    log · footer

Each pane owns its work (keys: paging, live updates and its keys; files:
listing; specs: the watcher; flush bar: count, confirm, run, cancel; detail:
loading the picked entry), and so do the controllers, widgets without display
(controllers/): opening the cache, whether Redis answers, the totals in the
status bar, the operations that span tiers (warm, prune, regenerate, diff).
Workers only post messages; handlers in their owner change its state. The App
runs no worker: it binds the keys and hands one part's news to another. The
tiers are reached through IRCache's methods only, and a read-only cache
refuses writes whatever a binding asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Unpack

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.screen import SystemModalScreen
from textual.widgets import DataTable, TabbedContent, TabPane
from textual.worker import Worker

from .. import redact
from ..cache.errors import IRCacheError
from ..cache.events import CacheEvent
from ..ir.generators import generator_label
from . import messages as m
from .commands import BindingCommands
from .controllers.health import Health
from .controllers.operations import Operations
from .controllers.startup import Startup
from .controllers.totals import Totals
from .logbridge import AppLogHandler
from .picked import PickedEntry
from .screens.help import HelpScreen
from .screens.jump import JumpScreen
from .screens.server import ServerScreen
from .services import Services
from .text import printable
from .widgets.banner import RedisBanner
from .widgets.dashboard_footer import DashboardFooter
from .widgets.detail_pane import DetailPane
from .widgets.files_pane import FilesPane
from .widgets.flush_bar import FlushBar
from .widgets.keys_pane import KeysPane
from .widgets.log_pane import LogPane
from .widgets.specs_pane import SpecsPane
from .widgets.status_bar import StatusBar, StatusChanges
from .widgets.work_bar import WorkBar

log = logging.getLogger("ircache")

# App actions that write to or delete from the cache: disabled in read-only (the panes have their own).
DESTRUCTIVE = {"flush_spec", "flush_all", "regenerate", "warm", "prune"}
TABS = ("tab-keys", "tab-files", "tab-specs")
# App keys that act on the dashboard's panes: off while another screen is on top of it
ON_THE_DASHBOARD = DESTRUCTIVE | {"show_tab", "cycle_tab", "refresh", "detail", "cancel_flush", "diff", "server",
                                   "toggle_log", "jump"}
NARROW = 110  # below this width the detail pane folds away (enter still opens the full view)
SHORT = 30  # below this height the log pane shrinks to 3 lines, so that a dozen key rows fit at 80x24
REFRESH_DELAY = 1.0  # a burst of changes refreshes the totals and the files pane once, this long after


async def _finished(worker: Worker[Any]) -> None:
    with contextlib.suppress(Exception):  # cancelled or failed: either way it is done
        await worker.wait()


class IRCacheApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "ircache-tui"
    # ctrl+p lists every key's action (commands.py) beside Textual's own (theme, screenshot, quit)
    COMMANDS = App.COMMANDS | {BindingCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Every key and what it does"),
        Binding("q", "quit", "Quit"),
        # ctrl+c quits too, as in k9s and lazygit (Textual binds it to a hint that q quits): a
        # priority binding like its ctrl+q, so that no screen, dialog or input takes it for copy
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, tooltip="Quit, as q does (ctrl+q too)"),
        Binding("f", "flush_spec", "Flush spec", tooltip="Flush the selected spec's keys (asks first)"),
        Binding("F", "flush_all", "Flush all", tooltip="Flush every IR key under the prefix (asks first)"),
        Binding("r", "regenerate", "Regenerate", tooltip="Regenerate the selected spec (force_refresh)"),
        Binding("w", "warm", "Warm", tooltip="Copy every filesystem entry Redis lacks into Redis; with spec dirs, "
                "also generate the missing specs, now or in a Message Batch at half price (asks first)"),
        Binding("P", "prune", "Prune", show=False, tooltip="Delete stale entries of the watched specs (asks first)"),
        Binding("D", "diff", "Diff", tooltip="What the selected spec, key or file changed from its previous version"),
        Binding("i", "server", "Server", show=False, tooltip="What the Redis server says of itself: version, mode, "
                "memory, eviction policy (and whether it may evict IR entries), clients, notifications, persistence"),
        Binding("1", "show_tab('tab-keys')", "Keys", show=False, tooltip="The Redis keys tab"),
        Binding("2", "show_tab('tab-files')", "Files", show=False, tooltip="The filesystem tab"),
        Binding("3", "show_tab('tab-specs')", "Specs", show=False, tooltip="The specs tab"),
        Binding("left_square_bracket", "cycle_tab(-1)", "Previous tab", show=False, tooltip="The tab to the left"),
        Binding("right_square_bracket", "cycle_tab(1)", "Next tab", show=False, tooltip="The tab to the right"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, tooltip="Reload every pane"),
        Binding("enter", "detail", "Detail", show=False, tooltip="Open the selected entry: summary and the IR JSON"),
        Binding("escape", "cancel_flush", "Cancel flush", tooltip="Stop the running flush"),
        Binding("g", "jump", "Go to", tooltip="Go to a key (ir_cache:spec_0a1b2c3d, spec_0a1b2c3d) or a spec's newest "
                "entry, whatever page it is on, and open its detail"),
        Binding("L", "toggle_log", "Log", tooltip="Enlarge the log to most of the screen (it scrolls, / searches it), or back"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.cache = services.cache
        self._owns_cache = not services.cache.is_open  # the app opens (and closes) it
        self._log_handler: AppLogHandler | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: said on the terminal once the dashboard has closed (the command prints it): keyspace
        #: notifications set back as they were found, or left on, and why
        self.exit_note: str | None = None
        #: live updates fell back from notifications to polling (a stall): ask again once Redis answers
        self._live_fell_back = False
        self._refresh_pending = False

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
            yield DetailPane(self.cache, clock=s.clock, monotonic=s.monotonic, id="detail")
        yield FlushBar(self.cache, id="flush-bar")
        yield WorkBar(id="work-bar")
        yield LogPane(id="log")
        yield DashboardFooter()
        yield Startup(self.cache, live=s.live)
        yield Health(self.cache, clock=s.clock, up_interval=s.check_interval, down_interval=s.health_interval)
        yield Totals(self.cache, interval=s.stats_interval)
        yield Operations(self.cache, spec_dirs=s.spec_dirs, spec_pattern=s.spec_pattern)

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
        self.work_bar = self.query_one(WorkBar)
        self.log_pane = self.query_one(LogPane)
        self.tabs = self.query_one(TabbedContent)
        self.health = self.query_one(Health)
        self.totals = self.query_one(Totals)
        self.operations = self.query_one(Operations)
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
        self._fit(self.size.width, self.size.height)
        self.set_interval(1.0, self._tick)
        self.query_one(Startup).open_cache()

    def _tick(self) -> None:
        now = self.services.monotonic()
        self.keys_pane.tick(now)
        self.detail_pane.tick(now)

    async def on_unmount(self) -> None:
        batch = self.operations.batch_polling  # quit while a warm polls it: the next warm resumes it
        workers = list(self.workers)
        self.workers.cancel_all()
        # let cancelled work finish before the cache closes under it (it would log a closed connection)
        if workers:
            await asyncio.wait([asyncio.ensure_future(_finished(w)) for w in workers], timeout=2)
        if self.cache.is_open:  # (the key listener is closed by now) what live updates turned on, back off
            with contextlib.suppress(IRCacheError, OSError):
                restored = await self.cache.restore_notifications()
                self.exit_note = restored.sentence if restored is not None else None
        if batch:
            self.exit_note = " ".join(filter(None, [self.exit_note, f"Batch {batch} is still running: its record stays "
                                                    "in the cache dir and the next warm collects it."]))
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._log_handler is not None:
            logging.getLogger("ircache").removeHandler(self._log_handler)
        if self._owns_cache:
            await self.cache.close()

    def _status(self, **changes: Unpack[StatusChanges]) -> None:
        self.status_bar.set(**changes)

    @property
    def redis_up(self) -> bool | None:
        """Whether the dashboard shows Redis up: the health controller's last verdict, once every
        pane has been told (None: none yet)."""
        return self.status_bar.status.connected

    @property
    def last_answered(self) -> datetime | None:
        return self.health.last_answered

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, but text by default: the messages here name specs and keys and quote
        errors, so they are made printable and never parsed as markup (markup=True is for constants)."""
        if not markup:
            message = printable(message)
        super().notify(message, title=printable(title), severity=severity, timeout=timeout, markup=markup)

    @on(events.Resize)
    def _resized(self, event: events.Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.screen.set_class(width < NARROW, "-narrow")
        self.screen.set_class(height < SHORT, "-short")

    # -- bindings: enabled, disabled (greyed), hidden; a disabled key says why ----------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self._covered() and action in ON_THE_DASHBOARD:
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
                actions.update({b.key: b.action for b in pane.BINDINGS
                                if isinstance(b, Binding) and b.action in pane.WRITES})
        if event.key in actions:
            self.notify(self.disabled_reason(actions[event.key]), severity="warning")

    def _covered(self) -> bool:
        """Another screen of ours is over the dashboard. The command palette (a system screen) is not:
        it lists the dashboard's keys, and runs the chosen one once it has closed."""
        return any(not isinstance(screen, SystemModalScreen) for screen in self.screen_stack[1:])

    def disabled_reason(self, action: str) -> str:
        """Why a greyed-out key does nothing: said when it is pressed or chosen in the palette."""
        if self.cache.read_only:
            return (f"Read-only session: {action.replace('_', ' ')} is disabled "
                    "(started with --read-only or IR_READ_ONLY=1)")
        if action == "prune":
            return "Prune needs the specs' directories: start the dashboard with them (ircache-tui DIR)"
        return f"{action.replace('_', ' ')} is not available now"

    # -- startup (controllers/startup.py) ---------------------------------------------------
    @on(m.StartupFailed)
    def _startup_failed(self, message: m.StartupFailed) -> None:
        self._status(connected=False, redis_url=self.cache.display_url)
        self.banner.show_down(redact.scrub(message.error))
        log.error("Cannot start: %s", message.error)
        self.files_pane.redis_down()
        self.files_pane.reload()  # the filesystem works without Redis

    @on(m.CacheReady)
    def _cache_ready(self, message: m.CacheReady) -> None:
        self._status(redis_url=self.cache.display_url, live=self._live_label(message.live_mode))
        self.keys_pane.table.focus()
        log.info("Dashboard ready: %s, live updates by %s", self.cache.display_url, self._live_label(message.live_mode))
        self.keys_pane.start(message.live_mode)  # totals (a full scan) start after its first page
        self.specs_pane.start()
        self.health.start()
        # What exists now (Textual, the cache) lives as long as the app: keep it out of the
        # collector's full passes, which otherwise stall the screen for ~70 ms at a time.
        gc.freeze()

    def _live_label(self, mode: str) -> str:
        return "notifications" if mode == "notifications" else f"polling {self.services.poll_interval:g}s"

    @on(m.FirstPageShown)
    def _first_page_shown(self) -> None:
        self.files_pane.reload()
        self.totals.refresh_now()  # and periodically from then on

    @property
    def first_page_shown(self) -> bool:
        return self.keys_pane.first_page_shown

    @on(m.LiveModeChanged)
    def _live_mode_changed(self, message: m.LiveModeChanged) -> None:
        if message.before:
            log.info("Live updates now by %s (were by %s)", self._live_label(message.mode), self._live_label(message.before))
        self._status(live=self._live_label(message.mode))
        self._live_fell_back = message.mode == "polling" and message.before == "notifications"

    # -- totals (controllers/totals.py) -------------------------------------------------
    @on(Totals.Changed)
    def _totals_changed(self, message: Totals.Changed) -> None:
        # the URL too: what the cache learned since it opened (a cluster node, its primaries)
        self._status(**asdict(message.totals), redis_url=self.cache.display_url)
        self.keys_pane.set_total(message.totals.ir_keys)

    # -- Redis up and down (controllers/health.py: only a failed probe says down) -------------
    @on(m.RedisDown)
    def _redis_suspect(self) -> None:
        self.health.suspect()

    @on(m.RedisAnswered)
    def _redis_answered(self) -> None:
        self.health.answered()

    @on(m.RedisProbed)
    def _redis_probed(self, message: m.RedisProbed) -> None:
        if message.up:
            if message.was is not True:
                self._status(connected=True)
                self.banner.show_up()
            if message.was is False:
                log.info("Redis is back: rescanning from page 1 and refilling the panes")
                self.keys_pane.redis_back()  # which turns live updates on again where it may
                self.files_pane.redis_back()
                self.totals.refresh_now()
                self.specs_pane.follow(None)
            elif self._live_fell_back:
                self.keys_pane.recheck_live()  # polling since a stall: notifications, if they may be again
            return
        if message.was is False:
            self.banner.show_down(redact.scrub(message.reason))  # still down: the latest reason
            return
        log.warning("Redis is down (%s); retrying every %gs", message.reason, self.services.health_interval)
        self._status(connected=False)
        last = f"last answered {message.last_answered:%H:%M:%S}" if message.last_answered else "not answered yet"
        self.banner.show_down(redact.scrub(f"{message.reason} ({last})"))
        self.keys_pane.redis_down(f"{self.services.clock():%H:%M:%S} ({last})")
        self.files_pane.redis_down()  # warm or cold: unknown until Redis is back
        if not self.keys_pane.first_page_shown:
            self.files_pane.reload()  # down from the start: the filesystem still answers

    # -- what crosses panes ----------------------------------------------------------------
    @on(KeysPane.Picked)
    @on(FilesPane.Picked)
    @on(SpecsPane.Picked)
    def _picked(self, message: KeysPane.Picked | FilesPane.Picked | SpecsPane.Picked) -> None:
        # a pane in another tab does not steer the detail; and a pane re-announcing the same pick
        # after a refresh (every poll, every batch of changes) must not read the entry again
        if message.picked != self._active_pane().picked():
            return
        if message.picked != self.detail_pane.picked:
            self.detail_pane.show(message.picked)
        elif message.picked is not None:
            self.detail_pane.refigure(message.picked)  # its TTL, memory or hits may be newer

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_detail()  # enter on a row: the table takes the key, so its selection opens the detail

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.detail_pane.show(self._active_pane().picked())

    def _active_pane(self) -> KeysPane | FilesPane | SpecsPane:
        panes: dict[str, KeysPane | FilesPane | SpecsPane] = {"tab-keys": self.keys_pane, "tab-files": self.files_pane}
        return panes.get(self.tabs.active, self.specs_pane)

    def picked(self) -> PickedEntry | None:
        return self._active_pane().picked()

    @on(KeysPane.Changed)
    def _keys_changed(self, message: KeysPane.Changed) -> None:
        self.specs_pane.follow(None if message.everything else message.spec_names)
        self._changed()

    def _changed(self) -> None:
        """Keys changed in a way nobody counted: the totals and the files pane look again, once a
        burst is over."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(REFRESH_DELAY, self._refresh_after_changes)

    def _refresh_after_changes(self) -> None:
        self._refresh_pending = False
        self.totals.refresh_now()
        self.files_pane.reload()

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
        # our flush, delete and prune are not among these: their OperationDone says what went (the
        # totals follow by arithmetic); a TTL changes no total; the watcher follows its own
        # process's flushes (its Redis keeper, file events)
        if event.kind in ("generated", "warmed", "corrupt"):
            self._changed()
        if event.kind == "deleted":  # the specs tab follows what went, without ctrl+r
            self.specs_pane.follow([event.spec_name] if event.spec_name else None)
        if event.kind == "topology":  # a failover or a resharding: every node's cursor is stale
            self.notify(f"{event.detail}: rescanning", title="Redis Cluster", severity="warning")
            self.keys_pane.rescan()
            self._changed()
        picked = self.detail_pane.picked
        if picked is not None and event.kind in ("generated", "warmed", "deleted", "flushed", "corrupt") and (
            event.cache_key in ("", picked.cache_key)
        ):
            self.detail_pane.show(picked)  # the entry shown was rewritten or removed: read it again

    @on(m.LogLine)
    def _log_line(self, message: m.LogLine) -> None:
        self.log_pane.add(message.level, message.text, shape=message.shape, head=message.head,
                          summary=message.summary)

    @on(Operations.Progress)
    def _work_progress(self, message: Operations.Progress) -> None:
        self.work_bar.show(message.what, message.done, message.total)

    @on(m.OperationDone)
    def _operation_done(self, message: m.OperationDone) -> None:
        if message.by == "warm":
            self.work_bar.hide()
        self.notify(redact.scrub(message.text), severity="error" if message.error else "information")
        if self.keys_pane.paused and not self.flush_bar.running:
            self.keys_pane.pause(False)  # our flush ended: one reload instead of a refresh per key
        elif message.refresh:
            self.keys_pane.reload()
        if message.refresh:
            self.files_pane.reload()
            if message.removed is None:
                self.totals.refresh_now()
        if message.removed is not None:
            self.totals.removed(message.removed)  # what the flush says went: no walk to count it again
            if message.removed.tiers:  # a flush that finished: the Specs tab follows it too
                self.specs_pane.flushed(message.removed.spec_name, redis="redis" in message.removed.tiers,
                                        filesystem="filesystem" in message.removed.tiers)
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    def action_jump(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                self.keys_pane.jump(text)  # the pane finds it; Jumped says it landed

        self.push_screen(JumpScreen(self.cache.keys.prefix), chosen)

    @on(KeysPane.Jumped)
    def _jumped(self, message: KeysPane.Jumped) -> None:
        self.screen.remove_class("-log-big")
        self.tabs.active = "tab-keys"
        self.keys_pane.table.focus()
        self.detail_pane.show(message.picked)
        if self.screen.has_class("-narrow"):
            self.detail_pane.open_full()  # no room for the detail beside the pane: the full view

    def action_toggle_log(self) -> None:
        """The log enlarged (the panes hide, the status and footer stay) and focused, or back."""
        big = not self.screen.has_class("-log-big")
        self.screen.set_class(big, "-log-big")
        if big:
            self.screen.set_focus(self.log_pane.view)  # now: the keys typed right after L are the log's
            self.log_pane.view.scroll_end(animate=False)
        else:
            self._active_pane().table.focus()

    def action_show_tab(self, tab: str) -> None:
        self.screen.remove_class("-log-big")  # a tab asked for: the panes again
        self.tabs.active = tab
        self._active_pane().table.focus()

    def action_cycle_tab(self, step: int) -> None:
        self.action_show_tab(TABS[(TABS.index(self.tabs.active) + step) % len(TABS)])

    def action_refresh(self) -> None:
        if not self.cache.is_open:
            return
        self.keys_pane.reload()
        self.files_pane.reload()
        self.totals.refresh_now()
        self.specs_pane.follow(None)

    def action_detail(self) -> None:
        if self.picked() is None:
            self.notify("Nothing selected", severity="warning")
            return
        self.detail_pane.open_full()

    def action_help(self) -> None:
        rows = []
        for where, bindings in (("", self.BINDINGS), (f" ({self.keys_pane.NAME} tab)", self.keys_pane.BINDINGS),
                                (f" ({self.files_pane.NAME} tab)", self.files_pane.BINDINGS),
                                (" (log)", [*self.log_pane.BINDINGS, *self.log_pane.view.BINDINGS])):
            for binding in bindings:
                if isinstance(binding, Binding):
                    key = (binding.key.replace("question_mark", "?").replace("slash", "/")
                           .replace("left_square_bracket", "[").replace("right_square_bracket", "]"))
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
        self.operations.request_warm()  # counts, asks (screens/warm.py), then warms

    def action_regenerate(self) -> None:
        picked = self.picked()
        if picked is None:
            self.notify("Select a key, file or spec to regenerate", severity="warning")
            return
        spec_path = picked.spec_path or self.specs_pane.spec_path_for(picked.spec_name)

        def start() -> None:
            self.keys_pane.mark_generating(picked.cache_key)
            self.notify(f"Regenerating {picked.spec_name}…")
            self.operations.regenerate(picked, spec_path)

        if getattr(self.cache.generator, "uses_llm", True):  # a paid generation: asks first, with its cost
            self.operations.ask_regenerate(picked, start)
        else:
            start()

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
        self.operations.find_diff(picked, current)

    def action_server(self) -> None:
        if not self.cache.is_open:
            self.notify("Redis is not connected yet", severity="warning")
            return
        self.push_screen(ServerScreen(self.cache))

    def action_prune(self) -> None:
        self.operations.find_prunable()
