"""SpecWatcher: keeps the cache in step with spec directories.

    watcher = SpecWatcher(cache, [Path("specs")], on_status=show)
    task = asyncio.create_task(watcher.run())
    ...
    watcher.stop()
    await task

`run()` starts watchfiles' `awatch` (recursive) on the spec directories and
the cache dir (`ChangeFeed`), walks the directories once and queues every
spec, then queues every path of every batch of changes until `stop()`. Two
stages, each a fixed pool of workers taking paths from a `PathQueue`:

- check (`CHECK_WORKERS` at once): read the spec in a thread and key it;
  Redis has the key → nothing to do; a valid file on disk → warm Redis;
  otherwise hand it to the generate stage (or, with generate=False, call
  it missing). Cache entries that appear on disk and directories that
  appear or vanish (`DirectoryChanges`) are handled here too.
- generate (`max_concurrent` at once): read the spec again, so that the
  latest text is the one generated, and `IRCache.lookup` it.

What each stage does with a spec is `SpecHandler`'s; this class wires the
parts together, runs the workers and knows when all is idle.

Two more background tasks while watching: `RedisKeeper` checks every
`redis_check_interval` seconds that Redis holds every current spec's key,
and re-warms it when Redis came back (empty or not) or lost keys; and after
the file watcher had to be restarted (a name watchfiles cannot decode fails
a batch), a resync walks everything again so that no change is lost. A
file whose name cannot become a key is skipped with one warning (`BadNames`).

So a save whose IR is on disk never waits behind a generation, and a burst
of events costs one read per distinct path. Statuses, and the count of
stale entries of each spec (`StaleRecounter`, with `find_stale`'s count, as
prune's), live in `statuses`; every change is reported to `on_status`. A
`refresh` asked for by a key change that was this process's own write (its
echo, `OwnWrites`) does not read the spec again. Nothing here imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

from ..cache.errors import IRCacheError
from ..cache.ircache import DeleteResult, IRCache
from ..fmt import plural
from ..specs.discovery import DEFAULT_MAX_BYTES, DEFAULT_PATTERN
from ..specs.stale import StaleReport, find_stale, prune
from .change_feed import AWATCH_STEP_MS, ChangeFeed
from .directories import DirectoryChanges
from .echoes import OwnWrites
from .bad_names import UNDECODABLE, BadNames
from .log import log, show
from .paths import PathKind, PathRules
from .pending import PathQueue
from .redis_keeper import DEFAULT_INTERVAL as REDIS_CHECK_INTERVAL
from .redis_keeper import RedisKeeper
from .spec_handler import SpecHandler
from .spec_reader import SpecReader, spec_name_of
from .stale import StaleRecounter, current_specs
from .status import SpecState, SpecStatus, StatusBoard, WatchStats
from .threads import FileThreads

# re-exported: callers (bench_watch, the TUI) import these from here
__all__ = ["AWATCH_STEP_MS", "CHECK_WORKERS", "REDIS_CHECK_INTERVAL", "SpecState", "SpecStatus", "SpecWatcher",
           "WatchStats"]

CHECK_WORKERS = 8  # reads, EXISTS, warms: cheap, so more of them than generations


def _absolute(path: Path) -> Path:
    """Absolute, with symlinks resolved in the directory but not in the last component."""
    path = Path(path)
    return path.parent.resolve() / path.name


class SpecWatcher:
    def __init__(
        self,
        cache: IRCache,
        dirs: list[Path],
        *,
        pattern: str = DEFAULT_PATTERN,
        generate: bool = True,
        max_concurrent: int = 4,
        max_bytes: int = DEFAULT_MAX_BYTES,
        debounce_ms: int = 200,
        on_status: Callable[[SpecStatus], object] | None = None,
        watch: bool = True,
        redis_check_interval: float | None = REDIS_CHECK_INTERVAL,
    ) -> None:
        """`redis_check_interval`: seconds between the Redis keeper's rounds while watching
        (see redis_keeper.py); None turns the keeper off."""
        if not dirs:
            raise ValueError("no spec directory given")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if debounce_ms < 1:
            raise ValueError(f"debounce_ms must be at least 1, got {debounce_ms}")
        if not pattern:
            raise ValueError("the spec file pattern is empty")
        if redis_check_interval is not None and not redis_check_interval > 0:
            raise ValueError(f"redis_check_interval must be positive (or None), got {redis_check_interval}")
        self.cache = cache
        self.dirs = [self._checked_dir(Path(d)) for d in dirs]
        self.pattern = pattern
        self.generate = generate
        self.max_concurrent = max_concurrent
        self.max_bytes = max_bytes
        self.debounce_ms = debounce_ms
        self.watch = watch
        self.cache_dir = Path(cache.cache_dir).resolve()
        self.rules = PathRules(self.dirs, pattern, self.cache_dir)
        self.stats = WatchStats()
        self._board = StatusBoard(on_status)
        #: current status of every spec seen (path → SpecStatus); read-only for callers
        self.statuses: dict[Path, SpecStatus] = self._board.statuses
        self._checks = PathQueue(self._update_idle)
        self._generations = PathQueue(self._update_idle)
        self._stop_event = asyncio.Event()
        self._idle = asyncio.Event()
        self._walking = True  # not idle before the initial walk is done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ran = False
        self._stopped = False
        self._threads = FileThreads()
        self._resync_wanted = False
        self._resyncing = False
        self._resync_task: asyncio.Task[None] | None = None
        #: keys this process just wrote to Redis: their key changes are echoes, not news (refresh)
        self._own_writes = OwnWrites()
        self._files_watched = False  # the file watcher runs: edits arrive as file events
        #: files whose name cannot become a key, each warned about once
        self.bad_names = BadNames()
        self._stale = StaleRecounter(cache, self._board, self._update_idle)
        self._reader = SpecReader(self._threads, max_bytes, lambda path: path in self.statuses)
        self._feed = ChangeFeed(self.rules, self._checks, self._threads, self.stats, debounce_ms=debounce_ms,
                                stop_event=self._stop_event, on_change=self._update_idle,
                                create_cache_dir=not cache.read_only, on_undecodable=self._undecodable,
                                on_restart=self._resync_soon)
        self._directories = DirectoryChanges(self.rules, self._board, self._checks, self._reader, self._threads,
                                             self.bad_names, on_undecodable=self._undecodable)
        self._specs = SpecHandler(cache, self._reader, self._board, self._generations, self._stale, self.stats,
                                  self._threads, generate=generate, walk_into=self._directories.walk_into)
        #: the Redis keeper (None with redis_check_interval=None); it runs only while watching
        self.keeper: RedisKeeper | None = None
        if redis_check_interval is not None:
            self.keeper = RedisKeeper(cache, self._board, self._specs, self._checks, self._generations, self.stats,
                                      interval=redis_check_interval, on_change=self._update_idle)

    @staticmethod
    def _checked_dir(d: Path) -> Path:
        if not d.is_dir():
            raise ValueError(f"spec directory {d} does not exist or is not a directory")
        return d.resolve()

    # -- public -----------------------------------------------------------------
    async def run(self) -> None:
        """The initial walk, then the watch loop until stop() or cancellation.

        With watch=False, returns once the initial walk is fully processed
        (generations included). Raises ValueError when a directory is missing.
        """
        if self._ran:
            raise RuntimeError("SpecWatcher.run() can only be called once")
        self._ran = True
        self._loop = asyncio.get_running_loop()
        consumer: asyncio.Task[None] | None = None
        tasks: list[asyncio.Task[object]] = []  # object: the workers' None, the stop event's True
        unsubscribe: Callable[[], None] = lambda: None
        try:
            for d in self.dirs:
                self._checked_dir(d)
            if self._stop_event.is_set():
                return  # stopped before it started
            unsubscribe = self.cache.events.subscribe(self._own_writes.on_event)
            if self.watch:
                consumer = asyncio.create_task(self._feed.run(), name="ircache-watch-awatch")
                self._files_watched = True
                # awatch sets up its inotify watches on its first step: let it take it,
                # so that nothing written from here on goes unseen
                for _ in range(3):
                    await asyncio.sleep(0)
            tasks += [asyncio.create_task(self._check_worker(), name=f"ircache-watch-check-{i}")
                      for i in range(CHECK_WORKERS)]
            tasks += [asyncio.create_task(self._generate_worker(), name=f"ircache-watch-generate-{i}")
                      for i in range(self.max_concurrent)]
            tasks.append(asyncio.create_task(self._stale.run(), name="ircache-watch-stale"))
            if consumer is not None and self.keeper is not None:
                tasks.append(asyncio.create_task(self.keeper.run(), name="ircache-watch-redis-keeper"))
            summary = asyncio.create_task(self._summary_when_idle(), name="ircache-watch-summary")
            tasks.append(summary)
            await self._initial_walk()
            stopping = asyncio.create_task(self._stop_event.wait())
            tasks.append(stopping)
            if consumer is None:  # watch=False: done when the walk is fully processed
                await asyncio.wait({summary, stopping}, return_when=asyncio.FIRST_COMPLETED)
                return
            log.info(
                "watching %s for %s%s; generation %s",
                ", ".join(str(show(d)) for d in self.dirs), self.pattern,
                f" (and the cache dir {show(self.cache_dir)})" if self._feed.cache_dir_is_extra() else "",
                "off (read-only)" if self.cache.read_only
                else f"on, {self.max_concurrent} at once" if self.generate else "off",
            )
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done() and not self._stop_event.is_set():
                consumer.result()  # awatch failed: raise its error
                log.warning("the file watcher ended on its own; stopping")
        finally:
            self._files_watched = False
            unsubscribe()
            self._stop_event.set()  # awatch's thread notices within one step
            if self._resync_task is not None:
                tasks.append(self._resync_task)
            await _cancel_all(tasks)
            if consumer is not None and not consumer.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(consumer), timeout=5)
                if not consumer.done():
                    consumer.cancel()
            if consumer is not None and consumer.done() and not consumer.cancelled():
                consumer.exception()  # retrieved: reported by consumer.result() above when it mattered
            self._threads.shutdown()
            self._walking = False
            self._stopped = True  # nothing more will be done: wait_idle() must not hang
            self._update_idle()

    def stop(self) -> None:
        """Make run() return promptly (safe from any thread)."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_event.set)
        else:
            self._stop_event.set()

    async def wait_idle(self) -> None:
        """Resolves when nothing is queued, being checked, generated or counted.

        Changes that watchfiles has seen but not yet handed over (within the
        debounce) are not known here: wait for them first.
        """
        await self._idle.wait()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    @property
    def stale_entries(self) -> int:
        """Stale entries in all at the last count, each `{spec}_{hash8}` once: what `prune` finds."""
        return self._stale.total

    async def refresh(self, path: Path | Iterable[Path] | None = None) -> None:
        """Look again at one spec, several, or all known ones: read, key, and ask both tiers.

        Never warms nor generates (after a flush, Redis stays flushed until a
        spec changes). Specs queued for a check or a generation are left to it.
        While the files are watched, a spec in Redis under a key this process
        just wrote, and that Redis still holds, is not read again: the key
        change that asked for the look was the echo of our own write (see
        echoes.py; `stats.echoes` counts them). The stale counts are counted
        again all the same.
        """
        if path is None:
            targets = list(self.statuses)
        else:
            targets = [_absolute(p) for p in ([path] if isinstance(path, Path) else path)]
        targets = [
            p for p in targets
            if self.rules.classify(p) is PathKind.SPEC and not self._checks.queued(p) and not self._generations.queued(p)
        ]
        targets = await self._without_echoes(targets)
        limit = asyncio.Semaphore(CHECK_WORKERS)

        async def one(p: Path) -> None:
            async with limit:
                await self._specs.observe(p)

        await asyncio.gather(*(one(p) for p in targets))
        await self._stale.recount()

    async def follow_flush(self, spec_name: str | None, *, redis: bool, filesystem: bool) -> None:
        """This process flushed `spec_name` (None: every spec) from these tiers: the statuses and
        the stale counts follow from what that means, asking no tier but the filesystem (whether
        a spec that was in Redis has its file; which stale entries the cache dir still holds). A
        flush of the filesystem alone leaves the count to a recount (Redis's stale entries)."""
        touched = [s for s in self.statuses.values() if (spec_name is None or s.spec_name == spec_name)
                   and s.state in (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY)]
        for status in touched:
            if redis and filesystem:
                state = SpecState.MISSING
            elif filesystem:
                state = status.state if status.state is SpecState.IN_REDIS else SpecState.MISSING
            elif status.state is SpecState.IN_REDIS:
                state = SpecState.FILESYSTEM_ONLY if await self._specs.on_disk(status.cache_key) else SpecState.MISSING
            else:
                continue
            self._board.set(status.path, state=state)
        if redis:
            await self._stale.after_flush(spec_name, filesystem=filesystem)
        else:  # the stale entries Redis holds are Redis's to say: counted again
            self._stale.mark_dirty()

    async def _without_echoes(self, targets: list[Path]) -> list[Path]:
        """`targets` less the specs whose key was this process's own recent write and is in Redis still
        (one round trip for all; if Redis cannot say, every target is looked at)."""
        if not self._files_watched:  # without file events, a refresh is the only way to see an edit
            return targets
        echoes: dict[Path, str] = {}
        for p in targets:
            status = self.statuses.get(p)
            if status is not None and status.state is SpecState.IN_REDIS and self._own_writes.recent(status.cache_key):
                echoes[p] = status.cache_key
        if not echoes:
            return targets
        keys = sorted(set(echoes.values()))
        try:
            present = await self.cache.in_redis_many(keys)
        except IRCacheError:
            return targets
        held = {k for k, there in zip(keys, present) if there}
        skipped = {p for p, k in echoes.items() if k in held}
        if skipped:
            self.stats.echoes += len(skipped)
            log.debug("refresh: %s not read again: their key changes were this process's own writes",
                      plural(len(skipped), "spec"))
        return [p for p in targets if p not in skipped]

    async def stale_report(self, *, orphans: bool = False) -> StaleReport:
        """What a prune would remove: older hashes of the watched specs (and, with
        orphans, entries of specs that are not among them), in both tiers."""
        return await find_stale(self.cache, current_specs(self.statuses.values()), orphans=orphans)

    async def prune(self, report: StaleReport) -> DeleteResult:
        """Delete what `report` lists (ask the user first), then recount."""
        removed = await prune(self.cache, report)
        await self._stale.recount()
        return removed

    # -- the initial walk -----------------------------------------------------------
    async def _initial_walk(self) -> None:
        try:
            for root in self.dirs:
                bad: list[Path] = []
                found = await self._threads.run(lambda: list(self.rules.walk(root, bad_names=bad)))
                for path in bad:
                    self._bad_name(path)
                for path in found:
                    if path not in self.statuses:
                        self._board.set(path, spec_name=spec_name_of(path), state=SpecState.PENDING)
                    self._checks.put(path)
                log.info("found %s under %s", plural(len(found), "spec"), show(root))
        finally:
            self._walking = False
            self._update_idle()

    async def _summary_when_idle(self) -> None:
        await self.wait_idle()
        self._specs.initial_walk = False
        counts = self._board.count()
        parts = [f"{n} {state.value}" for state, n in counts.items() if n]
        log.info("initial walk done: %s%s", plural(len(self.statuses), "spec"), f": {', '.join(parts)}" if parts else "")

    # -- workers ------------------------------------------------------------------
    async def _check_worker(self) -> None:
        while True:
            path = await self._checks.get()
            try:
                kind = self.rules.classify(path)
                if kind is PathKind.SPEC:
                    await self._specs.check(path)
                elif kind is PathKind.ENTRY:
                    await self._specs.entry_changed(path)
                elif kind is PathKind.OTHER:
                    await self._directories.changed(path)
                elif kind is PathKind.BAD_NAME:
                    self._bad_name(path)
            except Exception as exc:  # one bad path never stops the watcher
                self._unexpected(path, exc)
            finally:
                self._checks.done(path)

    async def _generate_worker(self) -> None:
        while True:
            path = await self._generations.get()
            try:
                await self._specs.generate(path)
            except Exception as exc:
                self._unexpected(path, exc)
            finally:
                self._generations.done(path)

    def _unexpected(self, path: Path, exc: Exception) -> None:
        self.stats.errors += 1
        log.error("watcher: cannot process %s: %s: %s", show(path), exc.__class__.__name__, exc)
        log.debug("watcher: traceback", exc_info=exc)

    # -- names that cannot become a key ------------------------------------------------------
    def _bad_name(self, path: Path, *, undecodable: bool = False) -> None:
        """Skip `path`, with one warning naming it."""
        if self.rules.entry_shaped(path):
            # the cache names these itself, once, when it lists its dir: have it list it (a recount)
            self._stale.mark_dirty()
        elif undecodable:
            self.bad_names.note(path, "path", UNDECODABLE)
        else:
            self._directories.bad_name(path)

    def _undecodable(self, path: Path) -> None:
        self._bad_name(path, undecodable=True)

    # -- after lost events -----------------------------------------------------------------
    def _resync_soon(self) -> None:
        """The file watcher was restarted and lost a batch: walk everything again (one walk at a time)."""
        self._resync_wanted = True
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.create_task(self._resync(), name="ircache-watch-resync")
        self._update_idle()

    async def _resync(self) -> None:
        self._resyncing = True
        try:
            while self._resync_wanted and not self._stop_event.is_set():
                self._resync_wanted = False
                try:
                    await self._directories.resync()
                except Exception as exc:  # the next event, or restart, tries again
                    log.warning("cannot look over the spec directories again: %s: %s", exc.__class__.__name__, exc)
        finally:
            self._resyncing = False
            self._update_idle()

    # -- idleness -----------------------------------------------------------------------
    def _update_idle(self) -> None:
        busy = (self._walking or self._feed.busy or self._checks.busy or self._generations.busy
                or self._stale.busy or self._resync_wanted or self._resyncing
                or (self.keeper is not None and self.keeper.busy))
        if busy and not self._stopped:
            self._idle.clear()
        else:
            self._idle.set()


async def _cancel_all(tasks: list[asyncio.Task[object]]) -> None:
    """Cancel the workers and wait for them, asking again if one swallowed the request.

    Python 3.11's asyncio.timeout / wait_for (redis-py reads and connects under them) can lose
    a cancellation that lands as the inner operation finishes: that worker then goes back to
    its queue and would hold the watcher's exit forever.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
