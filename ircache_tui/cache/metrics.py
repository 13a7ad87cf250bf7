"""Prometheus metrics for an IRCache: what it answered from where, what generating cost, what it holds.

    metrics = CacheMetrics()                # its own CollectorRegistry (pass prometheus_client.REGISTRY
    detach = metrics.attach(cache)          #  to add them to a process's global one)
    refresher = asyncio.create_task(metrics.run_refresh(cache, interval=30))
    server = metrics.serve(9464)            # http://127.0.0.1:9464/metrics; server.close() stops it

Counters follow the cache's events (events.py): the subscriber only
increments in-memory counters, no I/O, so a cache call never waits on it.

- `ircache_lookups_total{tier}`: which tier answered a lookup; a miss counts
  as `generator` (a generation shared by concurrent callers counts once).
- `ircache_generations_total{generator, outcome}`: `ok` or `error`.
- `ircache_generation_duration_seconds{generator}`: histogram of the
  generations that succeeded (retries included).
- `ircache_tokens_total{kind}`: input, output, cache_read, cache_creation.
- `ircache_generation_cost_usd_total`: the estimated dollars of generations
  (an unknown model's cost is unknown, and not added).
- `ircache_saved_usd_total{lever}`: dollars not spent. `hits`: over hits,
  what the entry had cost to generate, when it is known (entries written
  before usage was recorded add nothing); `batch`: over generations, the
  batch discount; `prompt_cache`: what cache reads saved less the write
  premium (a generation whose writes cost more than its reads saved adds
  nothing: a counter cannot go down); `incremental`: over regenerations
  from a patch, the estimated full generation's cost less theirs.
- `ircache_saved_seconds_total`: over hits, the generation's seconds.

Gauges come from the server-side stats walk (`get_cache_info`), run by
`refresh()` / `run_refresh()` every `interval` seconds, never per scrape
(a scrape reads the last snapshot): `ircache_redis_up` (1/0) and
`ircache_entries{tier}` (`redis` only while Redis answers; `filesystem`).
Neither is exported before the first refresh: a value nobody measured is
not a value.

One CacheMetrics may count for several caches (the counters add up); the
gauges describe the cache refreshed last, so give each cache of a process
that serves gauges its own registry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..settings import DEFAULT_METRICS_HOST, DEFAULT_METRICS_REFRESH
from . import metrics_server
from .events import CacheEvent

if TYPE_CHECKING:  # (IRCache imports the world; the metrics only need its events and stats)
    from wsgiref.simple_server import WSGIServer

    from .ircache import IRCache

log = logging.getLogger("ircache.metrics")

#: a generation takes 30-120 s with an LLM, milliseconds offline (first bucket), at most
#: IR_GENERATE_TIMEOUT (300 s by default)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0)
DEFAULT_REFRESH_INTERVAL = DEFAULT_METRICS_REFRESH  # IR_METRICS_REFRESH's default
DEFAULT_HOST = DEFAULT_METRICS_HOST  # loopback unless asked
LOOKUP_TIERS = ("redis", "filesystem", "generator")
TOKEN_KINDS = ("input", "output", "cache_read", "cache_creation")
LEVERS = ("hits", "batch", "prompt_cache", "incremental")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What the last refresh saw; replaced whole, so a scrape (another thread) reads one snapshot."""

    redis_up: bool
    #: tier → entries; "redis" is absent while Redis does not answer
    entries: dict[str, int]


class _StatsCollector(Collector):
    """The gauges, read from the last snapshot at scrape time (no I/O)."""

    def __init__(self, owner: "CacheMetrics") -> None:
        self._owner = owner

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._owner.stats
        if stats is not None:
            yield from self._families(stats)

    @staticmethod
    def _families(stats: CacheStats | None) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ircache_redis_up", "1 when Redis answered the last stats walk, 0 when not")
        entries = GaugeMetricFamily("ircache_entries", "IR entries per tier at the last stats walk "
                                    "(redis: only while Redis answers)", labels=["tier"])
        if stats is not None:
            up.add_metric([], 1.0 if stats.redis_up else 0.0)
            for tier, count in sorted(stats.entries.items()):
                entries.add_metric([tier], float(count))
        yield up
        yield entries


class MetricsServer:
    """The `/metrics` HTTP server that `CacheMetrics.serve` started (a daemon thread)."""

    def __init__(self, httpd: "WSGIServer", thread: threading.Thread,
                 failures: metrics_server.FailureReport | None = None) -> None:
        self.httpd = httpd
        self.thread = thread
        #: the requests that failed (reset, cut short, not HTTP): counted, said at most once a minute
        self.failures = failures or metrics_server.FailureReport()
        address = httpd.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])  # the real one when asked for port 0
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent; blocks up to half a second)."""
        if self._closed:
            return
        self._closed = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        self.failures.close()

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CacheMetrics:
    """The cache's Prometheus collectors, in `registry` (default: a new one, not the global)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.lookups = Counter("ircache_lookups", "IR lookups by the tier that answered (a miss: generator)",
                               ["tier"], registry=r)
        self.generations = Counter("ircache_generations", "IR generations by generator and outcome (ok, error)",
                                   ["generator", "outcome"], registry=r)
        self.generation_duration = Histogram(
            "ircache_generation_duration_seconds", "Wall-clock seconds of the IR generations that succeeded",
            ["generator"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.tokens = Counter("ircache_tokens", "Tokens the generations used, by kind", ["kind"], registry=r)
        self.generation_cost = Counter("ircache_generation_cost_usd",
                                       "Estimated US dollars the generations cost (when the model's price is known)",
                                       registry=r)
        self.saved_usd = Counter("ircache_saved_usd",
                                 "Estimated US dollars not spent, by lever: hits (the entries' generation cost), "
                                 "batch (the batch discount), prompt_cache (cache reads less the write premium), "
                                 "incremental (a full generation's estimated cost less a patch's)", ["lever"], registry=r)
        self.saved_seconds = Counter("ircache_saved_seconds",
                                     "Seconds of generation that cache hits did not wait for", registry=r)
        for tier in LOOKUP_TIERS:  # every series from 0, so rate() and ratios work from the first scrape
            self.lookups.labels(tier)
        for kind in TOKEN_KINDS:
            self.tokens.labels(kind)
        for lever in LEVERS:
            self.saved_usd.labels(lever)
        #: the last stats walk (None before the first refresh)
        self.stats: CacheStats | None = None
        self._stats_collector = _StatsCollector(self)
        r.register(self._stats_collector)
        self._refreshing: asyncio.Task[None] | None = None

    # -- counters, from the cache's events -------------------------------------------
    def attach(self, cache: "IRCache") -> Callable[[], None]:
        """Count `cache`'s events from now on; returns a function that stops counting."""
        name = _generator_name(cache)
        self.generations.labels(name, "ok")
        self.generations.labels(name, "error")
        self.generation_duration.labels(name)

        def on_event(event: CacheEvent) -> None:
            self.record(event, _generator_name(cache))

        return cache.events.subscribe(on_event)

    def record(self, event: CacheEvent, generator: str = "unknown") -> None:
        """Count one cache event (what `attach` subscribes); in-memory only."""
        kind = event.kind
        usage = event.usage
        if kind == "hit":
            self.lookups.labels(event.tier or "unknown").inc()
            if usage is not None:
                _add(self.saved_usd.labels("hits"), usage.cost_usd)
                _add(self.saved_seconds, usage.duration_s)
        elif kind == "miss":
            self.lookups.labels("generator").inc()
        elif kind == "generated":
            self.generations.labels(generator, "ok").inc()
            if usage is not None:
                if usage.duration_s is not None and usage.duration_s >= 0:
                    self.generation_duration.labels(generator).observe(usage.duration_s)
                for token_kind, count in zip(TOKEN_KINDS, (usage.input_tokens, usage.output_tokens,
                                                           usage.cache_read_input_tokens,
                                                           usage.cache_creation_input_tokens)):
                    _add(self.tokens.labels(token_kind), count)
                _add(self.generation_cost, usage.cost_usd)
                _add(self.saved_usd.labels("batch"), usage.batch_saved_usd)
                if usage.prompt_cache_saved_usd:  # (a counter only grows: a write never repaid is not counted)
                    _add(self.saved_usd.labels("prompt_cache"), max(usage.prompt_cache_saved_usd, 0.0))
                _add(self.saved_usd.labels("incremental"), usage.incremental_saved_usd)  # (_add skips a loss)
        elif kind == "error" and event.tier == "generator":
            self.generations.labels(generator, "error").inc()

    # -- gauges, from the stats walk ----------------------------------------------------
    async def refresh(self, cache: "IRCache") -> CacheStats:
        """Walk the cache's stats now (server-side in Redis, a listing of the cache dir) and keep them.

        A call while a refresh is running waits for that one instead of starting another.
        Raises what `get_cache_info` raises (an unreadable cache dir); Redis down is not an error.
        """
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(self._refresh(cache))
        await asyncio.shield(task)
        assert self.stats is not None
        return self.stats

    async def _refresh(self, cache: "IRCache") -> None:
        info = await cache.get_cache_info()
        redis = info.redis
        up = bool(redis.get("reachable"))
        entries = {"filesystem": int(info.filesystem.get("file_count", 0))}
        if up:
            entries["redis"] = int(redis.get("total_keys", 0))
        self.stats = CacheStats(redis_up=up, entries=entries)

    async def run_refresh(self, cache: "IRCache", interval: float = DEFAULT_REFRESH_INTERVAL) -> None:
        """Refresh now, then `interval` seconds after each refresh ends (never two at once), until cancelled.

        A failed refresh is logged (once until it changes or recovers) and tried again next time.
        """
        if not interval > 0:
            raise ValueError(f"the refresh interval must be more than 0 seconds, got {interval!r}")
        failing = ""
        while True:
            try:
                await self.refresh(cache)
            except asyncio.CancelledError:
                if self._refreshing is not None:
                    self._refreshing.cancel()
                raise
            except Exception as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
                if reason != failing:
                    log.warning("metrics: cannot refresh the cache stats: %s", reason)
                failing = reason
            else:
                if failing:
                    log.info("metrics: cache stats refreshed again")
                failing = ""
            await asyncio.sleep(interval)

    # -- serving -------------------------------------------------------------------------
    def serve(self, port: int, host: str = DEFAULT_HOST) -> MetricsServer:
        """Serve this registry at http://host:port/metrics from a daemon thread; port 0 picks a free one.

        Raises OSError when the address cannot be bound (in use, no such host). A request that
        fails (a reset, a request cut short, bytes that are not HTTP) is counted in `.failures`
        and logged at most once a minute, never as a traceback (see metrics_server.py).
        """
        return MetricsServer(*metrics_server.start(make_wsgi_app(self.registry), host, port))


def _add(counter: Counter, value: float | None) -> None:
    if value is not None and value > 0:
        counter.inc(value)


def _generator_name(cache: "IRCache") -> str:
    return str(getattr(cache.generator, "name", "") or "unknown")


__all__ = ["DEFAULT_HOST", "DEFAULT_REFRESH_INTERVAL", "DURATION_BUCKETS", "CacheMetrics", "CacheStats",
           "MetricsServer"]
