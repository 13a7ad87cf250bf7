"""`ircache-tui watch DIR ...`: keep the cache in step with spec directories, headless."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ...cache.ircache import IRCache
from ...fmt import describe_os_error, human_count, plural
from ...settings import (DEFAULT_METRICS_REFRESH, Settings, SettingsError, parse_metrics_port, parse_seconds,
                          validate_metrics_host)
from ...specs.discovery import DEFAULT_MAX_BYTES, DEFAULT_PATTERN
from ...watch import SpecWatcher
from ..common import EXIT_OK, EXIT_USAGE, CommandError
from ._shared import spec_dirs

if TYPE_CHECKING:  # prometheus_client is imported only by a watch that serves metrics
    from ...cache.metrics import CacheMetrics, MetricsServer

T = TypeVar("T")  # what a settings parser makes of an argument

#: the same as cache.metrics.DEFAULT_REFRESH_INTERVAL (not imported from there, see above)
DEFAULT_REFRESH_INTERVAL = DEFAULT_METRICS_REFRESH

HELP = "watch spec directories and keep the cache warm (headless)"
DESCRIPTION = """Watch spec directories (recursive) and keep the IR cache in step, for a
server or a CI job. At start, and whenever a spec is created or saved: its IR
in Redis → nothing to do; on disk only → Redis is warmed; nowhere → it is
generated (at most --jobs at once), unless --no-generate. Entries that another
process writes to the cache dir warm Redis too. Deleted specs and entries of
older versions (stale) are reported; `ircache-tui prune DIR` removes them.
Editor temp and swap files, .git and the cache dir are ignored; a file whose
name cannot be a key (not UTF-8, control or bidi characters, a leading dot,
over 200 bytes) is skipped with one warning naming it. Every 2 s it checks
Redis: when Redis comes back (empty or not), or another client flushed keys
or they expired, every current spec is re-warmed from the filesystem.

With --metrics-port (IR_METRICS_PORT) it serves Prometheus metrics at
http://127.0.0.1:PORT/metrics while it watches (--metrics-host, IR_METRICS_HOST,
to listen elsewhere; port 0 picks a free one, logged): lookups by tier,
generations, their duration, tokens and cost, dollars and seconds saved by
hits, watcher events, and Redis up/down and entries per tier from a stats walk
every --metrics-refresh seconds (IR_METRICS_REFRESH, default 30), never per
scrape. A port that cannot be bound is one line and exit status 1.

One line per event goes to stderr (-v adds the cache's own lines). SIGINT
(Ctrl+C), SIGTERM or SIGHUP stops it cleanly with exit status 0: a signal is
how a watch ends (it leaves the embedded redis-server, which stops if it was
the last user).

examples:
  ircache-tui watch examples/specs
  ircache-tui watch specs/ more-specs/ --no-generate --pattern '*.spec.md'
  ircache-tui watch examples/specs --metrics-port 9464"""

log = logging.getLogger("ircache.watch")


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="spec directories to watch (recursive)")
    p.add_argument("--pattern", default=DEFAULT_PATTERN, help=f"spec file name glob (default {DEFAULT_PATTERN})")
    p.add_argument("--no-generate", dest="generate", action="store_false",
                   help="never generate: a spec whose IR is cached nowhere shows as missing")
    p.add_argument("--jobs", type=_positive, default=4, metavar="N", help="generations at once (default 4)")
    p.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES, metavar="N",
                   help=f"skip spec files larger than this (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--debounce-ms", type=_positive, default=200, metavar="MS",
                   help="group the changes of a burst over at most this long (default 200)")
    m = p.add_argument_group("Prometheus metrics (default: environment variables)")
    m.add_argument("--metrics-port", type=_arg(parse_metrics_port, "--metrics-port"), metavar="PORT",
                   help="serve /metrics on this port while watching (IR_METRICS_PORT; 0: any free port)")
    m.add_argument("--metrics-host", type=_arg(validate_metrics_host, "--metrics-host"), metavar="HOST",
                   help="address to listen on (IR_METRICS_HOST, default 127.0.0.1)")
    m.add_argument("--metrics-refresh", type=_arg(parse_seconds, "--metrics-refresh"), metavar="SECONDS",
                   help="seconds between the stats walks behind the Redis up and entries gauges "
                        f"(IR_METRICS_REFRESH, default {DEFAULT_REFRESH_INTERVAL:g})")


def _arg(parse: Callable[[str, str], T], source: str) -> Callable[[str], T]:
    """An argparse type from a settings parser: its SettingsError becomes argparse's usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text, source)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _metrics_options(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with the metrics flags applied (flags win over IR_METRICS_*)."""
    flags = (("metrics_port", args.metrics_port), ("metrics_host", args.metrics_host),
             ("metrics_refresh", args.metrics_refresh))
    settings = dataclasses.replace(settings, **{k: v for k, v in flags if v is not None})
    if settings.metrics_port is None:
        given = [flag for flag, value in (("--metrics-host", args.metrics_host),
                                          ("--metrics-refresh", args.metrics_refresh)) if value is not None]
        if given:
            raise CommandError(f"{' and '.join(given)} need --metrics-port (or IR_METRICS_PORT)", EXIT_USAGE)
    return settings


def _serve(metrics: "CacheMetrics", settings: Settings) -> "MetricsServer":
    assert settings.metrics_port is not None
    host, port = settings.metrics_host, settings.metrics_port
    try:
        server = metrics.serve(port, host)
    except OSError as exc:  # in use, a host that is not this machine's: the command line was fine
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise CommandError(f"cannot serve metrics on {where}: {describe_os_error(exc)}") from None
    log.info("serving Prometheus metrics at %s", server.url)
    return server


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)
    verbosity = getattr(args, "verbose", 0) or 0
    if verbosity <= 0:
        log.setLevel(logging.INFO)  # the watcher's own lines; the cache's INFO lines need -v
    for handler in logging.getLogger("ircache").handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    settings = _metrics_options(args, settings)
    if settings.metrics_port is None:
        return asyncio.run(_run(args, settings, dirs))
    import prometheus_client

    from ...cache.metrics import CacheMetrics

    # bound before anything starts: a port in use fails the command before a cache is opened
    metrics = CacheMetrics()
    # the usual process_* and python_* metrics, which the global registry would have had
    prometheus_client.ProcessCollector(registry=metrics.registry)
    prometheus_client.PlatformCollector(registry=metrics.registry)
    prometheus_client.GCCollector(registry=metrics.registry)
    server = _serve(metrics, settings)
    try:
        return asyncio.run(_run(args, settings, dirs, metrics, settings.metrics_refresh))
    finally:
        server.close()  # the port is free once the command returns


# SIGHUP too: a watch started from a terminal that is then closed stops like one told to
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _run(args: argparse.Namespace, settings: Settings, dirs: list[Path], metrics: "CacheMetrics | None" = None,
               refresh_interval: float = DEFAULT_REFRESH_INTERVAL) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    watcher: SpecWatcher | None = None
    before = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}

    def restore() -> None:
        """The handlers from before the watch (the command line's), not the defaults."""
        for s in _STOP_SIGNALS:
            loop.remove_signal_handler(s)
            if callable(before[s]):
                signal.signal(s, before[s])

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        stopping.set()
        if watcher is not None:
            watcher.stop()
        restore()  # a second one acts as usual

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with IRCache(settings=settings, origin="cli watch") as cache:
            if stopping.is_set():
                return EXIT_OK
            try:
                watcher = SpecWatcher(
                    cache, dirs, pattern=args.pattern, generate=args.generate, max_concurrent=args.jobs,
                    max_bytes=args.max_bytes, debounce_ms=args.debounce_ms,
                )
            except ValueError as exc:
                raise CommandError(str(exc), EXIT_USAGE) from None
            if stopping.is_set():
                return EXIT_OK
            async with contextlib.AsyncExitStack() as metering:
                if metrics is not None:
                    from ...watch.metrics import WatchCollector

                    metering.callback(metrics.attach(cache))
                    metering.callback(WatchCollector(watcher.stats).register(metrics.registry))
                    refresher = asyncio.create_task(metrics.run_refresh(cache, refresh_interval),
                                                    name="ircache-metrics-refresh")
                    metering.push_async_callback(_cancel, refresher)
                try:
                    await watcher.run()
                except ValueError as exc:  # a directory vanished before the start
                    raise CommandError(str(exc), EXIT_USAGE) from None
                except OSError as exc:  # the file watcher itself failed
                    raise CommandError(f"cannot watch: {exc}") from None
            stats = watcher.stats
            log.info("stopped: %s known; %s warmed, %s generated, %s since the start",
                     plural(len(watcher.statuses), "spec"), human_count(stats.warmed), human_count(stats.generated),
                     plural(stats.errors, "error"))
    finally:
        restore()
    return EXIT_OK


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
