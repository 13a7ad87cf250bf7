"""While a generation runs (30–120 s with an LLM), one line on a terminal says so and counts.

    ⠹ generating petstore-spec with anthropic (claude-sonnet-4-5) · 12 s

On stderr, and only when stderr is a terminal: a pipe, a log file and `--json` (whose stdout
is the document) get nothing extra. The line is redrawn in place and erased when the
generation ends, however it ends. It starts on the cache's own "miss, generating" event, so
a hit (or a miss answered by the filesystem) never shows it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from types import TracebackType
from collections.abc import Callable
from typing import TextIO

from .. import redact
from ..cache.events import CacheEvent, EventBus

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STEP = 0.25  # seconds between redraws: the spinner moves, the count says whole seconds
ERASE = "\r\x1b[2K"  # back to the line's start, then clear it


class GenerationTicker:
    """`async with GenerationTicker(cache.events): await cache.lookup(...)`."""

    def __init__(self, events: EventBus, stream: TextIO | None = None) -> None:
        self.events = events
        self.stream = stream if stream is not None else sys.stderr
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> GenerationTicker:
        if self.stream.isatty():
            self._unsubscribe = self.events.subscribe(self._event)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self._stop()

    def _event(self, event: CacheEvent) -> None:
        if event.kind == "miss" and event.tier == "generator" and self._task is None:
            # the spec's name and the model come from outside: printable, never escapes
            what = redact.printable(f"generating {event.spec_name} with {event.detail}")
            self._task = asyncio.get_running_loop().create_task(self._tick(what))
        elif event.kind in ("generated", "error") and event.tier == "generator" and self._task is not None:
            self._task.cancel()  # erased by _stop, or by __aexit__

    async def _tick(self, what: str) -> None:
        started = time.monotonic()
        turn = 0
        try:
            while True:
                seconds = int(time.monotonic() - started)
                self.stream.write(f"{ERASE}{SPINNER[turn % len(SPINNER)]} {what} · {seconds} s")
                self.stream.flush()
                turn += 1
                await asyncio.sleep(STEP)
        finally:
            self.stream.write(ERASE)
            self.stream.flush()

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
