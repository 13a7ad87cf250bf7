"""`ircache_watch_events_total{kind}`: the watcher's counters (WatchStats), read at scrape time.

    unregister = WatchCollector(watcher.stats).register(metrics.registry)

A custom collector, so the watcher counts as it always has (plain ints in
WatchStats) and nothing on its path changes: a scrape, on the HTTP server's
thread, reads the numbers and does no I/O. Kinds:

- `file_event`: file-system changes seen (of specs, cache entries, directories);
- `batch`: batches of them, after debouncing;
- `check`: times a spec was read and keyed;
- `warmed`: entries copied from the filesystem into Redis (`rewarmed`: of
  those, keys the Redis keeper put back after Redis restarted or lost them);
- `generated`: IRs the watcher had generated;
- `error`: specs it could not check or generate;
- `restart`: times the file watcher was started again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .status import WatchStats

NAME = "ircache_watch_events"
HELP = "Spec watcher events by kind (file_event, batch, check, warmed, rewarmed, generated, error, restart)"
KINDS = ("file_event", "batch", "check", "warmed", "rewarmed", "generated", "error", "restart")


class WatchCollector(Collector):
    def __init__(self, stats: WatchStats) -> None:
        self.stats = stats

    def register(self, registry: CollectorRegistry) -> Callable[[], None]:
        """Add this collector to `registry`; returns a function that takes it out again."""
        registry.register(self)
        return lambda: registry.unregister(self)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(NAME, HELP, labels=["kind"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        s = self.stats
        family = CounterMetricFamily(NAME, HELP, labels=["kind"])
        values = (s.events, s.batches, self._checks(), s.warmed, s.rewarmed, s.generated, s.errors, s.restarts)
        for kind, value in zip(KINDS, values):
            family.add_metric([kind], value)
        yield family

    def _checks(self) -> int:
        # The event loop's thread adds paths to this Counter while a scrape (another thread)
        # reads it: list() copies the values in one C call, under the GIL.
        return sum(list(self.stats.checked.values()))
