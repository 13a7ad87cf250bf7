"""IR_AUDIT_REDIS=1: every audit line also goes to the Redis stream, in the background, in order.

AuditTrail.write (audit.py) appends to the file first, synchronously, as always, then hands the
line here: a bounded queue (MAX_PENDING) drained by one sender task, so the stream gets the lines
in the order they were written and an action is never delayed nor failed by Redis. A full queue
(Redis stalled under a burst of actions) or a refused XADD (an ACL without `+xadd`, another
tool's key of another type at `{prefix}:audit`) is said once; the file still has every record.
Close waits a few seconds for what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .errors import IRCacheError
from .redis.audit_stream import AuditStream

log = logging.getLogger("ircache")

MAX_PENDING = 1_000
#: what close() waits for the queue to drain
CLOSE_WAIT = 5.0


class AuditMirror:
    def __init__(self, stream: AuditStream) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING)
        self._sender: asyncio.Task[None] | None = None
        self._said: set[str] = set()

    def __call__(self, line: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # written outside the event loop (nothing does today): the file has it
            return
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            self._say("full", f"more than {MAX_PENDING} audit records wait for Redis: the stream "
                              f"{self._stream.key} misses some (this machine's file has them)")
            return
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send())

    async def _send(self) -> None:
        while True:
            line = await self._queue.get()
            try:
                await self._stream.add(line)
            except IRCacheError as exc:  # down, refused, another tool's key there
                self._say("failed", f"Cannot add to the audit stream {self._stream.key} ({exc}): this machine's "
                                    "audit file still has every record")
            finally:
                self._queue.task_done()

    def _say(self, what: str, message: str) -> None:
        if what not in self._said:
            self._said.add(what)
            log.warning("%s", message)

    async def close(self) -> None:
        """Send what is queued (at most CLOSE_WAIT seconds), then stop."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), CLOSE_WAIT)
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)
