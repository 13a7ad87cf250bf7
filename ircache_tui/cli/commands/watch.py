"""`ircache-tui watch DIR ...`: keep the cache in step with spec directories, headless."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from ...cache.ircache import IRCache
from ...fmt import human_count, plural
from ...settings import Settings
from ...specs.discovery import DEFAULT_MAX_BYTES, DEFAULT_PATTERN
from ...watch import SpecWatcher
from ..common import EXIT_OK, EXIT_USAGE, CommandError
from ._shared import spec_dirs

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

One line per event goes to stderr (-v adds the cache's own lines). SIGINT
(Ctrl+C), SIGTERM or SIGHUP stops it cleanly with exit status 0: a signal is
how a watch ends (it leaves the embedded redis-server, which stops if it was
the last user).

examples:
  ircache-tui watch examples/specs
  ircache-tui watch specs/ more-specs/ --no-generate --pattern '*.spec.md'"""

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


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)
    verbosity = getattr(args, "verbose", 0) or 0
    if verbosity <= 0:
        log.setLevel(logging.INFO)  # the watcher's own lines; the cache's INFO lines need -v
    for handler in logging.getLogger("ircache").handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    return asyncio.run(_run(args, settings, dirs))


# SIGHUP too: a watch started from a terminal that is then closed stops like one told to
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _run(args: argparse.Namespace, settings: Settings, dirs) -> int:
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
        async with IRCache(settings=settings) as cache:
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
