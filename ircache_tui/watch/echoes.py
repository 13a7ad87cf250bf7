"""The keys this process just put in Redis, so that the key changes they raise are known as echoes.

The dashboard follows keyspace notifications: a SET of ours (the watcher
warming Redis, a generation, a filesystem hit warming Redis, a TTL reset)
comes back as one, and the Specs tab asks the watcher to look at that spec
again, which would read and hash its file for nothing. `OwnWrites` learns
these writes from the cache's own events and remembers each key for
`ECHO_WINDOW` seconds, at most `MAX_KEYS` keys (the oldest forgotten
first), so that it stays small under any burst. A key this process deleted
or flushed is forgotten at once: a change to it is news.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..cache.events import CacheEvent
from ..cache.keys import spec_of

ECHO_WINDOW = 30.0  # seconds: a notification later than this is not taken for our echo
MAX_KEYS = 4096


class OwnWrites:
    def __init__(self, window: float = ECHO_WINDOW, limit: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._limit = limit
        self._clock = clock
        self._written: OrderedDict[str, float] = OrderedDict()  # key → when, oldest first

    def __len__(self) -> int:
        return len(self._written)

    def on_event(self, event: CacheEvent) -> None:
        """A cache event subscriber: note what this process wrote to Redis, forget what it removed."""
        key = event.cache_key
        if event.kind in ("warmed", "generated", "ttl") or (event.kind == "hit" and event.tier == "filesystem"):
            if key:  # (a filesystem hit warms Redis unless read-only; `recent` is checked against Redis anyway)
                self.note(key)
        elif event.kind == "deleted":
            if key:
                self._written.pop(key, None)
            else:  # a batch (a prune): which keys is not said
                self._written.clear()
        elif event.kind == "flushed":
            if not event.spec_name:
                self._written.clear()
            else:
                for gone in [k for k in self._written if spec_of(k) == event.spec_name]:
                    del self._written[gone]

    def note(self, key: str) -> None:
        self._written.pop(key, None)
        self._written[key] = self._clock()
        while len(self._written) > self._limit:
            self._written.popitem(last=False)

    def recent(self, key: str) -> bool:
        """This process wrote `key` to Redis within the window."""
        when = self._written.get(key)
        if when is None:
            return False
        if self._clock() - when > self._window:
            del self._written[key]
            return False
        return True
