"""Remembers that Redis is down, so callers skip it fast and the log says so once.

While down, calls are refused without touching the network until the next
probe time; the first call after it probes. Backoff doubles up to a cap, so a
Redis that comes back is used again within `max_backoff` seconds.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("ircache")

#: Set (True) on the one WARNING record that says Redis went down: a front end that
#: reports an unavailable Redis in its own words can leave that record out (the CLI does).
REDIS_DOWN = "ircache_redis_down"


class RedisHealth:
    def __init__(self, label: str, *, min_backoff: float = 0.5, max_backoff: float = 2.0) -> None:
        self.label = label
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.down = False
        self.reason = ""
        self._backoff = min_backoff
        self._retry_at = 0.0
        self._unannounced = False  # down, and not said yet (see mark_down's `announce`)

    def should_skip(self) -> bool:
        return self.down and time.monotonic() < self._retry_at

    def mark_down(self, exc: BaseException, reason: str | None = None, *, announce: bool = True) -> None:
        """`reason`: why, in words (the Redis tier's down_reason); by default the error's first line.
        `announce=False`: say it (once) only when a caller is next refused (`announce`), not now:
        a failure while opening is news for the operation that needs Redis, in its context."""
        if reason is None:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if not self.down:
            self._unannounced = True
            self._backoff = self.min_backoff
        else:
            self._backoff = min(self._backoff * 2, self.max_backoff)
        self.down, self.reason = True, reason
        self._retry_at = time.monotonic() + self._backoff
        if announce:
            self.announce()

    def announce(self) -> None:
        """Log that Redis is down, once per outage."""
        if self.down and self._unannounced:
            self._unannounced = False
            log.warning("Redis unavailable at %s: %s; using the filesystem tier until it is back", self.label,
                        self.reason, extra={REDIS_DOWN: True})

    def mark_up(self) -> None:
        if self.down and not self._unannounced:
            log.info("Redis reachable again at %s", self.label)
        self.down, self.reason, self._unannounced = False, "", False
