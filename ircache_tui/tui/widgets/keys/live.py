"""The key table kept live: keyspace notifications (coalesced batches) or polling, and the rows
they change refreshed in one round trip, one refresh at a time.

Its workers only post messages; the handlers change the rows. A burst bigger than REFRESH_LIMIT,
a batch that overflowed, or a change while another view is shown reloads the page instead
(`load`, which the pane above provides).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.message import Message
from textual.timer import Timer

from ....cache.browse import KeyRow
from ....cache.errors import IRCacheError
from ....cache.live import ChangeBatch
from ... import messages as m
from ...services import Services
from .rows import KeyTable

#: refresh at most this many changed keys row by row; a bigger burst reloads the page
REFRESH_LIMIT = 200
#: the worker group of page loads (one at a time: a new one cancels the one on its way)
PAGE_LOADS = "keys-scan"
#: a change to a key this pane changed itself (a delete, a TTL) within this long is its echo
OWN_ECHO_S = 10.0
OWN_MAX = 4096  # keys remembered as changed by this pane (the oldest forgotten first)


class LiveKeyTable(KeyTable):
    """A KeyTable that follows what other processes do to the keys."""

    @dataclass
    class Changed(Message):
        """Keys changed in Redis (set, deleted, expired): the spec names, or all of them on overflow."""

        spec_names: frozenset[str]
        everything: bool = False

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

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self.live_mode = ""  # "notifications" or "polling", once started
        self.paused = False  # a flush of ours is running: it knows what it deletes
        self._pending: dict[str, bool] = {}  # changed keys waiting for a refresh: key → gone
        self._reload_wanted = False
        self._refreshing = False
        self._poll_timer: Timer | None = None
        #: cache key → (until when, the event) of the change this pane's own command makes to it
        self._own: dict[str, tuple[float, str]] = {}

    def expect_own(self, keys: Iterable[str], event: str) -> None:
        """Keys this pane is about to change itself with `event` ("del", "expire"), before it sends
        the commands (the notification may come before the worker's answer). The next change of
        each that is that event is its echo: the rows follow from what the worker says, and nobody
        is told of a change it already knows. Any other change (another client's) is news."""
        until = time.monotonic() + OWN_ECHO_S
        for key in keys:
            self._own.pop(key, None)
            self._own[key] = (until, event)
        while len(self._own) > OWN_MAX:
            del self._own[next(iter(self._own))]

    def unchanged(self, keys: Iterable[str]) -> None:
        """Keys whose command changed nothing (gone already, refused, failed): no echo will come."""
        for key in keys:
            self._own.pop(key, None)

    def _echo(self, key: str, event: str, now: float) -> bool:
        """Whether this change of `key` is the echo of our own command (taken once)."""
        own = self._own.get(key)
        if own is None or own[1] != event:
            return False
        del self._own[key]
        return own[0] > now

    def load(self, which: str) -> None:
        """Load a page of the walk: "first", "next", "prev" or "reload" (the pane's, in PAGE_LOADS)."""
        raise NotImplementedError

    def reload(self) -> None:
        """A background refresh of the page shown; never cancels a page the user asked for."""
        if self.browser is not None and not any(w.group == PAGE_LOADS and not w.is_finished for w in self.workers):
            self.load("reload")

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

    # -- notifications or polling ------------------------------------------------------
    def start_live(self) -> None:
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
        def subscribed() -> None:
            self.post_message(self._Subscribed())

        try:
            async for batch in self.cache.key_change_batches(on_subscribed=subscribed):
                self.post_message(self._Batch(batch))
        except (IRCacheError, OSError) as exc:
            self.post_message(m.RedisDown(str(exc).splitlines()[0] if str(exc) else "connection lost"))

    @on(_Subscribed)
    def _subscribed(self) -> None:
        self.reload()  # catch what changed between the first page and the subscription

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
        self.start_live()  # (re)subscribe, or poll

    # -- changes to rows -----------------------------------------------------------------
    @on(_Batch)
    def _batch(self, message: _Batch) -> None:
        batch = message.batch
        now = time.monotonic()
        changes = {k: c for k, c in batch.changes.items() if not self._echo(k, c.event, now)}
        if not changes and not batch.overflow:
            return
        specs = frozenset(c.key.spec_name for c in changes.values())
        self.post_message(self.Changed(specs, everything=batch.overflow))
        if self.paused or self.browser is None:
            return
        if batch.overflow or self.view != "scan":
            self._reload_wanted = True
        else:
            for key, change in changes.items():
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
        self.apply(message.rows, message.gone)
        self._next_refresh()

    def apply(self, rows: list[KeyRow], gone: list[str]) -> None:
        """These rows updated (or added), those keys gone: in place, the rest of the page untouched."""
        now = self.services.monotonic()
        with self.app.batch_update():
            for key in gone:
                self.drop(key)
            for row in rows:
                self.upsert(row, now)
            self.sort()
        self.mark_empty()
        self.render_footer()
        self.announce_pick()
