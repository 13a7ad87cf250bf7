"""Paths waiting for work: each path queued at most once, never worked on twice at once.

A burst of events for one path (create, modify, close, the rename of an
atomic save) queues it once. An event for a path that a worker is busy with
queues it again, to be taken after that worker is done: no change is lost,
and no two workers race on one file. The queue holds at most one entry per
distinct path, so it is bounded by the files there are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path


class PathQueue:
    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._pending: dict[Path, None] = {}  # insertion-ordered set
        self._active: set[Path] = set()
        self._wakeup = asyncio.Event()
        self._on_change = on_change or (lambda: None)

    def put(self, path: Path) -> None:
        self._pending[path] = None
        self._wakeup.set()
        self._on_change()

    def discard(self, path: Path) -> None:
        """Forget a queued (not yet taken) path."""
        if path in self._pending:
            del self._pending[path]
            self._on_change()

    async def get(self) -> Path:
        """The oldest queued path no worker is busy with; the caller must call `done` after."""
        while True:
            for path in self._pending:
                if path not in self._active:
                    del self._pending[path]
                    self._active.add(path)
                    return path
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, path: Path) -> None:
        self._active.discard(path)
        if path in self._pending:
            self._wakeup.set()
        self._on_change()

    def queued(self, path: Path) -> bool:
        return path in self._pending or path in self._active

    def is_active(self, path: Path) -> bool:
        return path in self._active

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._active)

    def __len__(self) -> int:
        return len(self._pending)
