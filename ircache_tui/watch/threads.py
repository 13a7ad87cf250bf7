"""The watcher's own threads, for blocking file work: reads, walks, classifying a batch, counting.

A burst of events queues a lot of that work at once; on the default
executor (which is the app's) it would hold up everything else the app
runs in threads. The pool is started on first use and can be shut down
and started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

READ_THREADS = 4  # the watcher's own threads for file reads and walks (the default pool is the app's)

T = TypeVar("T")


class FileThreads:
    def __init__(self, size: int = READ_THREADS, name: str = "ircache-watch") -> None:
        self._size = size
        self._name = name
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in one of the threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._size, thread_name_prefix=self._name)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        """Drop the queued work without waiting for what runs (it only reads)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
