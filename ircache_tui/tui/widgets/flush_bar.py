"""The flush: counting, the confirmation, the run with its progress bar, and `esc` to cancel.

`request(spec_name)` counts what a flush would take (Redis by the server-side
walk, the filesystem by listing), asks with FlushScreen (Redis only by
default; the filesystem alone when Redis is down), runs the flush in a worker
and shows its progress here. It posts FlushStarted / OperationDone so the
panes stop refreshing key by key while it runs and reload once after; the
OperationDone says what went (`removed`: the spec, the keys and files
deleted, also when the flush stopped partway), so the totals follow by
arithmetic instead of another walk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, ProgressBar

from ...cache.errors import FlushIncomplete, IRCacheError
from ...cache.ircache import IRCache
from ...fmt import kept_sentence, plural
from .. import messages as m
from ..screens.flush import FlushRequest, FlushScreen

log = logging.getLogger("ircache")
PROGRESS_EVERY = 0.1  # seconds between progress repaints


class FlushBar(Horizontal):
    DEFAULT_CSS = """
    FlushBar { display: none; height: 1; padding: 0 1; background: $warning 20%; }
    FlushBar.-active { display: block; }
    FlushBar > ProgressBar { width: 1fr; }
    FlushBar > Label { width: auto; margin-right: 2; }
    """

    @dataclass
    class _Counted(Message):
        spec_name: str | None
        redis_keys: int | None  # None: Redis could not be counted
        files: int
        redis_error: str = ""
        foreign: int = 0  # keys named like entries that hold another tool's values: kept

    @dataclass
    class _Progress(Message):
        done: int

    @dataclass
    class _Finished(Message):
        text: str
        error: bool = False
        removed: m.Removed | None = None

    def __init__(self, cache: IRCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.running = False
        self.total = 0

    def compose(self) -> ComposeResult:
        self._label = Label("flushing…", id="flush-label")
        self._bar = ProgressBar(id="flush-progress", show_eta=False)
        yield self._label
        yield self._bar

    def request(self, spec_name: str | None) -> None:
        """Count, then ask; the flush runs if the user confirms."""
        self.count(spec_name)

    def cancel(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "flush")

    @work(group="flush-count", exclusive=True, exit_on_error=False)
    async def count(self, spec_name: str | None) -> None:
        redis_keys: int | None
        error, foreign = "", 0
        try:
            redis_keys, foreign = await self.cache.count_entries(spec_name)
        except IRCacheError as exc:
            redis_keys, error = None, str(exc)
        try:
            files = sum(1 for e in await self.cache.list_files() if spec_name is None or e.spec_name == spec_name)
        except OSError:
            files = 0
        self.post_message(self._Counted(spec_name, redis_keys, files, error, foreign))

    @on(_Counted)
    def _counted(self, message: _Counted) -> None:
        def chosen(request: FlushRequest | None) -> None:
            if request is None:
                return
            self.total = (message.redis_keys or 0) if request.redis else message.files
            self._started()
            self.run_flush(request)

        self.app.push_screen(FlushScreen(message.spec_name, message.redis_keys, message.files, message.redis_error,
                                         foreign=message.foreign), chosen)

    def _started(self) -> None:
        self.running = True
        self.add_class("-active")
        self._bar.update(total=max(1, self.total), progress=0)
        self._label.update(f"flushing 0/{self.total:,} (esc cancels)")
        self.post_message(m.FlushStarted())
        self.app.refresh_bindings()

    @work(group="flush", exclusive=True, exit_on_error=False)
    async def run_flush(self, request: FlushRequest) -> None:
        done = 0
        shown_at = 0.0
        loop = asyncio.get_running_loop()

        def progress(n: int) -> None:
            nonlocal done, shown_at
            done = n
            if loop.time() - shown_at >= PROGRESS_EVERY:  # a repaint per batch would slow the flush
                shown_at = loop.time()
                self.post_message(self._Progress(n))

        what = f"spec {request.spec_name}" if request.spec_name else "all IR entries"
        started = loop.time()

        def removed(counts: dict[str, int]) -> m.Removed:
            return m.Removed(request.spec_name, counts.get("redis", 0), counts.get("filesystem", 0))

        tiers = frozenset(t for t, chosen in (("redis", request.redis), ("filesystem", request.filesystem)) if chosen)

        try:
            result = await self.cache.clear_cache(
                redis=request.redis, filesystem=request.filesystem, spec_name=request.spec_name, on_progress=progress
            )
        except asyncio.CancelledError:
            log.warning("Flush of %s cancelled after %s", what, plural(done, "key"))
            self.post_message(self._Finished(f"Flush cancelled after {plural(done, 'key')}", error=True,
                                             removed=removed({"redis": done})))
            raise
        except (IRCacheError, OSError) as exc:
            gone = exc.done if isinstance(exc, FlushIncomplete) else {"redis": done}
            self.post_message(self._Finished(f"Flush failed after {plural(done, 'key')}: {exc}", error=True,
                                             removed=removed(gone)))
            return
        parts = ([plural(result.redis, "key") + " from Redis"] if result.redis is not None else []) + \
                ([plural(result.filesystem, "file") + " from the filesystem"] if result.filesystem is not None else [])
        kept = f"; kept {kept_sentence(result.foreign_kept)}" if result.foreign_kept else ""
        log.debug("flush of %s took %.3fs", what, loop.time() - started)
        self.post_message(self._Finished(f"Flushed {what}: " + ", ".join(parts) + kept,
                                         removed=replace(removed(result.to_json()), tiers=tiers)))

    @on(_Progress)
    def _progress(self, message: _Progress) -> None:
        total = max(self.total, message.done, 1)
        self._bar.update(total=total, progress=message.done)
        self._label.update(f"flushing {message.done:,}/{total:,} (esc cancels)")

    @on(_Finished)
    def _finished(self, message: _Finished) -> None:
        self.running = False
        self.remove_class("-active")
        self.post_message(m.OperationDone(message.text, message.error, by="flush", removed=message.removed))
        self.app.refresh_bindings()
