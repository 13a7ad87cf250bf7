"""SpecWatcher: keeps the cache in step with spec directories.

    watcher = SpecWatcher(cache, [Path("specs")], on_status=show)
    task = asyncio.create_task(watcher.run())
    ...
    watcher.stop()
    await task

`run()` starts watchfiles' `awatch` (recursive) on the spec directories and
the cache dir, walks the directories once and queues every spec, then queues
every path of every batch of changes until `stop()`. Two stages, each a
fixed pool of workers taking paths from a `PathQueue`:

- check (`CHECK_WORKERS` at once): read the spec in a thread and key it;
  Redis has the key → nothing to do; a valid file on disk → warm Redis;
  otherwise hand it to the generate stage (or, with generate=False, call
  it missing). Cache entries that appear on disk and directories that
  appear or vanish are handled here too.
- generate (`max_concurrent` at once): read the spec again, so that the
  latest text is the one generated, and `IRCache.lookup` it.

So a save whose IR is on disk never waits behind a generation, and a burst
of events costs one read per distinct path. Statuses, and the count of
stale entries of each spec, live in `statuses`; every change is reported to
`on_status`. Nothing here imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import stat
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from redis.exceptions import RedisError
from watchfiles import awatch

from ..cache.errors import RedisUnavailable
from ..cache.ircache import IRCache
from ..cache.keys import InvalidSpecName, spec_name_from_path
from ..ir.generators import GenerationError
from ..specs.discovery import DEFAULT_MAX_BYTES, DEFAULT_PATTERN, SpecFile, read_spec
from ..specs.stale import StaleReport, find_stale, prune
from .paths import PathKind, PathRules
from .pending import PathQueue
from .stale import current_specs, hashes_in_tiers, stale_counts
from .status import SpecState, SpecStatus, StatusBoard, log

CHECK_WORKERS = 8  # reads, EXISTS, warms: cheap, so more of them than generations
READ_THREADS = 4  # the watcher's own threads for file reads and walks (the default pool is the app's)
AWATCH_STEP_MS = 50  # quiet time after which awatch yields a batch (at most debounce_ms after its first change)
RECOUNT_DELAY = 0.05  # let a burst settle before counting stale entries...
RECOUNT_INTERVAL = 0.25  # ...and count at most this often

T = TypeVar("T")
_GONE = "gone"
_DIR = "directory"


@dataclass(slots=True)
class WatchStats:
    """Counters, for the dashboard, the headless log and the tests."""

    batches: int = 0
    events: int = 0
    #: how many times each spec file was read and keyed by the check stage
    checked: Counter[Path] = field(default_factory=Counter)
    warmed: int = 0
    generated: int = 0
    errors: int = 0


class show:
    """A path for a log line, relative to the working directory when under it.

    Lazy: the path is only worked out when the line is emitted.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        with contextlib.suppress(ValueError, OSError):
            return str(self.path.relative_to(Path.cwd()))
        return str(self.path)


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _spec_name(path: Path) -> str:
    try:
        return spec_name_from_path(str(path))
    except InvalidSpecName:
        return ""


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
        on_status: Callable[[SpecStatus], None] | None = None,
        watch: bool = True,
    ) -> None:
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
        self.cache = cache
        self.dirs = [self._checked_dir(Path(d)) for d in dirs]
        self.pattern = pattern
        self.generate = generate
        self.max_concurrent = max_concurrent
        self.max_bytes = max_bytes
        self.debounce_ms = debounce_ms
        self.watch = watch
        self.cache_dir = Path(cache.fs.directory).resolve()
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
        self._enqueuing = 0  # batches of events being classified
        self._recount_wanted = False
        self._recounting = 0  # recounts running (the loop's, refresh's)
        self._recount_wakeup = asyncio.Event()
        self._seq = itertools.count(1)
        self._read_seq: dict[Path, int] = {}
        self._keys: dict[Path, str] = {}  # the key of each spec's latest read ("" unreadable or gone)
        self._signatures: dict[Path, tuple[int, int, int]] = {}  # (inode, size, mtime) at each spec's latest read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ran = False
        self._stopped = False
        self._said_caching_off = False
        self._pool: ThreadPoolExecutor | None = None
        self._initial = True  # until the initial walk is processed: "already in Redis" is not news

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
        tasks: list[asyncio.Task[None]] = []
        try:
            for d in self.dirs:
                self._checked_dir(d)
            if self._stop_event.is_set():
                return  # stopped before it started
            if self.watch:
                consumer = asyncio.create_task(self._consume(), name="ircache-watch-awatch")
                # awatch sets up its inotify watches on its first step: let it take it,
                # so that nothing written from here on goes unseen
                for _ in range(3):
                    await asyncio.sleep(0)
            tasks += [asyncio.create_task(self._check_worker(), name=f"ircache-watch-check-{i}")
                      for i in range(CHECK_WORKERS)]
            tasks += [asyncio.create_task(self._generate_worker(), name=f"ircache-watch-generate-{i}")
                      for i in range(self.max_concurrent)]
            tasks.append(asyncio.create_task(self._recount_loop(), name="ircache-watch-stale"))
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
                f" (and the cache dir {show(self.cache_dir)})" if self._cache_dir_is_extra() else "",
                f"on, {self.max_concurrent} at once" if self.generate else "off",
            )
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done() and not self._stop_event.is_set():
                consumer.result()  # awatch failed: raise its error
                log.warning("the file watcher ended on its own; stopping")
        finally:
            self._stop_event.set()  # awatch's thread notices within one step
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if consumer is not None and not consumer.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(consumer), timeout=5)
                if not consumer.done():
                    consumer.cancel()
            if consumer is not None and consumer.done() and not consumer.cancelled():
                consumer.exception()  # retrieved: reported by consumer.result() above when it mattered
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
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

    async def refresh(self, path: Path | None = None) -> None:
        """Look again at one spec (or all known ones): read, key, and ask both tiers.

        Never warms nor generates (after a flush, Redis stays flushed until a
        spec changes). Specs queued for a check or a generation are left to it.
        """
        targets = [_absolute(path)] if path is not None else list(self.statuses)
        targets = [
            p for p in targets
            if self.rules.classify(p) is PathKind.SPEC and not self._checks.queued(p) and not self._generations.queued(p)
        ]
        limit = asyncio.Semaphore(CHECK_WORKERS)

        async def one(p: Path) -> None:
            async with limit:
                await self._process_spec(p, mode="observe")

        await asyncio.gather(*(one(p) for p in targets))
        await self._recount()

    async def stale_report(self, *, orphans: bool = True) -> StaleReport:
        """What a prune would remove: older hashes of the watched specs (and, with
        orphans, entries of specs that are not among them), in both tiers."""
        return await find_stale(self.cache, current_specs(self.statuses.values()), orphans=orphans)

    async def prune(self, report: StaleReport) -> dict[str, int]:
        """Delete what `report` lists (ask the user first), then recount."""
        removed = await prune(self.cache, report)
        await self._recount()
        return removed

    # -- the watch loop -------------------------------------------------------
    def _cache_dir_is_extra(self) -> bool:
        return self.rules.root_of(self.cache_dir) is None

    def _watch_paths(self) -> list[Path]:
        paths = list(self.dirs)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot watch the cache dir %s: %s", show(self.cache_dir), exc.strerror or exc)
            return paths
        if self._cache_dir_is_extra():
            paths.append(self.cache_dir)
        return paths

    async def _consume(self) -> None:
        paths = self._watch_paths()
        options = dict(
            watch_filter=None,  # classified in a thread by _enqueue: a burst costs the loop nothing
            debounce=self.debounce_ms,
            step=min(AWATCH_STEP_MS, self.debounce_ms),
            stop_event=self._stop_event,
            recursive=True,
            ignore_permission_denied=True,
        )
        try:
            async for changes in awatch(*paths, **options):
                await self._enqueue(changes)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or self._stop_event.is_set():
                raise
            # typically the inotify watch limit (fs.inotify.max_user_watches)
            log.warning("cannot use file notifications (%s); polling for changes instead", exc)
            async for changes in awatch(*paths, force_polling=True, **options):
                await self._enqueue(changes)

    async def _enqueue(self, changes: set[tuple[object, str]]) -> None:
        self.stats.batches += 1
        self.stats.events += len(changes)
        raw = {p for _, p in changes}
        self._enqueuing += 1
        self._update_idle()
        try:
            keep = await self._in_thread(lambda: sorted(p for p in raw if self.rules.classify(p) is not None))
            for path in keep:
                self._checks.put(Path(path))
        finally:
            self._enqueuing -= 1
            self._update_idle()

    async def _initial_walk(self) -> None:
        try:
            for root in self.dirs:
                found = await self._in_thread(lambda: list(self.rules.walk(root)))
                for path in found:
                    if path not in self.statuses:
                        self._board.set(path, spec_name=_spec_name(path), state=SpecState.PENDING)
                    self._checks.put(path)
                log.info("found %d spec(s) under %s", len(found), show(root))
        finally:
            self._walking = False
            self._update_idle()

    async def _summary_when_idle(self) -> None:
        await self.wait_idle()
        self._initial = False
        counts = self._board.count()
        parts = [f"{n} {state.value}" for state, n in counts.items() if n]
        log.info("initial walk done: %d spec(s)%s", len(self.statuses), f": {', '.join(parts)}" if parts else "")

    # -- workers ------------------------------------------------------------------
    async def _check_worker(self) -> None:
        while True:
            path = await self._checks.get()
            try:
                kind = self.rules.classify(path)
                if kind is PathKind.SPEC:
                    await self._process_spec(path, mode="check")
                elif kind is PathKind.ENTRY:
                    await self._process_entry(path)
                elif kind is PathKind.OTHER:
                    await self._process_other(path)
            except Exception as exc:  # one bad path never stops the watcher
                self._unexpected(path, exc)
            finally:
                self._checks.done(path)

    async def _generate_worker(self) -> None:
        while True:
            path = await self._generations.get()
            try:
                await self._process_spec(path, mode="generate")
            except Exception as exc:
                self._unexpected(path, exc)
            finally:
                self._generations.done(path)

    def _unexpected(self, path: Path, exc: Exception) -> None:
        self.stats.errors += 1
        log.error("watcher: cannot process %s: %s: %s", show(path), exc.__class__.__name__, exc)
        log.debug("watcher: traceback", exc_info=exc)

    # -- reading ------------------------------------------------------------------
    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Blocking file work, on the watcher's own threads: a burst never starves the app's."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="ircache-watch")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _read_blocking(self, path: Path) -> tuple[SpecFile | str, tuple[int, int, int] | None]:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return _GONE, None
        except OSError as exc:
            return SpecFile(path, _spec_name(path), error=exc.strerror or str(exc)), None
        if stat.S_ISDIR(st.st_mode):
            return _DIR, None
        if not stat.S_ISREG(st.st_mode):
            return SpecFile(path, _spec_name(path), error="not a regular file"), None
        spec = read_spec(path, self.max_bytes)
        if spec.error and not os.path.lexists(path):
            return _GONE, None
        return spec, _signature(st)

    async def _read(self, path: Path) -> SpecFile | str | None:
        """Read and key `path` in a thread; None when a newer read of it has already landed."""
        seq = next(self._seq)
        result, signature = await self._in_thread(self._read_blocking, path)
        if seq < self._read_seq.get(path, 0):
            return None
        if result == _GONE and path not in self.statuses:
            self._forget(path)  # a temp file that came and went
            return result
        self._read_seq[path] = seq
        self._keys[path] = result.cache_key if isinstance(result, SpecFile) else ""
        if signature is None:
            self._signatures.pop(path, None)
        else:
            self._signatures[path] = signature
        return result

    def _forget(self, path: Path) -> None:
        self._read_seq.pop(path, None)
        self._keys.pop(path, None)
        self._signatures.pop(path, None)

    def _apply(self, path: Path, key: str, **changes: object) -> bool:
        """Set the status of `path` if `key` is still that of its latest read."""
        if self._keys.get(path, "") != key:
            return False
        before = self.statuses.get(path)
        after = self._board.set(path, cache_key=key, **changes)
        if after is not before:
            self._stale_dirty()
        return True

    # -- specs --------------------------------------------------------------------
    async def _process_spec(self, path: Path, *, mode: str) -> None:
        """mode: "check" (warm, or queue a generation), "generate" (lookup), or "observe" (look only)."""
        if mode == "check":
            self.stats.checked[path] += 1
        result = await self._read(path)
        if result is None:
            return
        if result == _GONE:
            self._spec_gone(path)
            return
        if result == _DIR:
            if mode != "observe":
                await self._walk_into(path)
            return
        assert isinstance(result, SpecFile)
        spec = result
        quiet = mode == "observe"
        if not spec.ok:
            self._bad_file(path, spec, quiet=quiet)
            return
        key = spec.cache_key
        base = {"spec_name": spec.spec_name}
        if not spec.text.strip():
            if self._apply(path, key, **base, state=SpecState.MISSING, error="empty file: nothing to generate"):
                self._generations.discard(path)
                self._say(quiet, "spec %s is empty: nothing to generate", show(path))
            return
        if mode == "generate":
            await self._generate(path, spec)  # lookup reads both tiers before it generates
            return
        if await self._in_redis(key):
            self._generations.discard(path)
            if self._apply(path, key, **base, state=SpecState.IN_REDIS, error=""):
                self._say(quiet or self._initial, "spec %s: in Redis (%s)", show(path), key)
            return
        if mode != "observe" and self.cache.enabled and await self.cache.warm_key(key):
            self.stats.warmed += 1
            self._generations.discard(path)
            if self._apply(path, key, **base, state=SpecState.IN_REDIS, error=""):
                log.info("spec %s: warmed Redis from the filesystem (%s)", show(path), key)
            return
        if await self._on_disk(key):
            if self._apply(path, key, **base, state=SpecState.FILESYSTEM_ONLY, error="") and not quiet:
                why = "caching is off (IR_CACHE_TTL=0)" if not self.cache.enabled else "Redis did not take it"
                log.warning("spec %s: IR on disk (%s) but not in Redis: %s", show(path), key, why)
            return
        if mode == "observe" or not self.cache.enabled or not self.generate:
            if self._apply(path, key, **base, state=SpecState.MISSING, error="") and not quiet:
                if not self.cache.enabled:
                    self._caching_off()
                else:
                    log.info("spec %s: IR not cached (%s) and generation is off: missing", show(path), key)
            return
        if self._apply(path, key, **base, state=SpecState.PENDING, error=""):
            self._generations.put(path)
            log.debug("spec %s: IR not cached (%s): queued for generation", show(path), key)

    async def _generate(self, path: Path, spec: SpecFile) -> None:
        key = spec.cache_key
        if not self._apply(path, key, spec_name=spec.spec_name, state=SpecState.GENERATING, error=""):
            return
        log.info("spec %s: generating its IR (%s)", show(path), key)
        try:
            found = await self.cache.lookup(spec.text, str(path))
        except GenerationError as exc:  # the cache has logged it
            self.stats.errors += 1
            self._apply(path, key, state=SpecState.ERROR, error=str(exc))
            return
        except Exception as exc:
            self.stats.errors += 1
            message = f"{exc.__class__.__name__}: {exc}"
            self._apply(path, key, state=SpecState.ERROR, error=message)
            log.warning("spec %s: cannot generate its IR: %s", show(path), message)
            return
        if found.tier == "generator":
            self.stats.generated += 1
        self._stale_dirty()
        if await self._in_redis(key):
            state = SpecState.IN_REDIS
        elif await self._on_disk(key):
            state = SpecState.FILESYSTEM_ONLY
        else:
            state = SpecState.MISSING
        self._apply(path, key, state=state, error="")
        how = "generated and cached" if found.tier == "generator" else f"found in {found.tier}"
        log.info("spec %s: IR %s (%s, %s)", show(path), how, key, state.value)

    def _spec_gone(self, path: Path) -> None:
        self._generations.discard(path)
        status = self.statuses.get(path)
        if status is None or status.state is SpecState.DELETED:
            return
        self._board.set(path, state=SpecState.DELETED, error="")
        self._stale_dirty()
        log.info("spec %s deleted: its cache entries stay until their TTL runs out or a prune", show(path))

    def _bad_file(self, path: Path, spec: SpecFile, *, quiet: bool = False) -> None:
        self._generations.discard(path)
        self._apply(path, "", spec_name=spec.spec_name, state=SpecState.ERROR, error=spec.error)
        if not quiet:
            log.warning("spec %s skipped: %s", show(path), spec.error)

    def _caching_off(self) -> None:
        if not self._said_caching_off:
            self._said_caching_off = True
            log.warning("caching is off (IR_CACHE_TTL=0): specs are not warmed nor generated")

    @staticmethod
    def _say(quiet: bool, message: str, *args: object) -> None:
        if quiet:
            log.debug(message, *args)
        else:
            log.info(message, *args)

    # -- directories and cache entries ------------------------------------------
    async def _walk_into(self, directory: Path) -> None:
        """Queue the specs of a directory that appeared (or was moved in) and that no event covers.

        Specs already queued, or read since they last changed, are left alone:
        in a `git checkout` the files of a new directory raise events of their own.
        """

        def walk() -> list[tuple[Path, tuple[int, int, int] | None]]:
            out = []
            for path in self.rules.walk(directory):
                try:
                    out.append((path, _signature(os.stat(path))))
                except OSError:
                    out.append((path, None))
            return out

        for path, signature in await self._in_thread(walk):
            status = self.statuses.get(path)
            if self._checks.queued(path):
                continue
            if status is not None and status.state is not SpecState.DELETED and signature is not None \
                    and self._signatures.get(path) == signature:
                continue
            self._checks.put(path)

    async def _process_other(self, path: Path) -> None:
        if await self._in_thread(path.is_dir):
            await self._walk_into(path)  # created, or moved in: its files raise no events of their own
            return
        if await self._in_thread(os.path.lexists, path):
            return  # some other file
        known = [p for p in self._board.paths_under(path) if self.statuses[p].state is not SpecState.DELETED]
        if path in self.dirs:
            log.warning("spec directory %s disappeared: %d spec(s) in it marked deleted; it is no longer watched",
                        show(path), len(known))
        elif known:
            log.warning("directory %s disappeared: %d spec(s) in it marked deleted", show(path), len(known))
        for p in known:
            self._checks.put(p)

    async def _process_entry(self, path: Path) -> None:
        """An entry file appeared, changed or went: written or flushed by someone else?"""
        key = path.stem
        present = await self._in_thread(path.is_file)
        in_redis = await self._in_redis(key)
        if present and not in_redis and self.cache.enabled:
            if await self.cache.warm_key(key):
                self.stats.warmed += 1
                in_redis = True
                log.info("cache entry %s appeared on disk: warmed Redis", key)
            else:
                present = await self._on_disk(key)  # a corrupt one was quarantined
        for p in self._board.paths_with_key(key):
            status = self.statuses[p]
            if status.state in (SpecState.DELETED, SpecState.GENERATING):
                continue
            if in_redis:
                state = SpecState.IN_REDIS
            elif present:
                state = SpecState.FILESYSTEM_ONLY
            elif status.state in (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY):
                state = SpecState.MISSING
            else:
                continue
            self._apply(p, key, state=state, error="" if state is not SpecState.MISSING else status.error)
        self._stale_dirty()

    # -- tiers ----------------------------------------------------------------------
    async def _in_redis(self, key: str) -> bool:
        try:
            return await self.cache.redis.exists(key)
        except (RedisUnavailable, RedisError):
            return False

    async def _on_disk(self, key: str) -> bool:
        try:
            return await self.cache.fs.exists(key)
        except OSError:
            return False

    # -- stale counts -----------------------------------------------------------------
    def _stale_dirty(self) -> None:
        self._recount_wanted = True
        self._recount_wakeup.set()
        self._update_idle()

    async def _recount_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._recount_wakeup.wait()
            await asyncio.sleep(RECOUNT_DELAY)
            self._recount_wakeup.clear()
            started = loop.time()
            try:
                await self._recount()
            except Exception as exc:  # never let the counting task die
                log.warning("cannot count stale entries: %s: %s", exc.__class__.__name__, exc)
            # a count over a big cache costs more: keep it to a small share of the time
            await asyncio.sleep(max(RECOUNT_INTERVAL, 10 * (loop.time() - started)))

    async def _recount(self) -> None:
        self._recount_wanted = False
        self._recounting += 1
        self._update_idle()
        try:
            try:
                found = await hashes_in_tiers(self.cache)
            except OSError as exc:  # the cache dir cannot be listed: counts stay as they are
                log.warning("cannot count stale entries: %s", exc.strerror or exc)
                return
            before = {p: s.stale for p, s in self.statuses.items()}
            counts = await self._in_thread(stale_counts, list(self.statuses.values()), found)
            self._board.set_stale(counts)
            for path, count in counts:
                if count > before.get(path, 0):
                    log.info("spec %s: %d stale entr%s of other versions (prune removes them)",
                             show(path), count, "y" if count == 1 else "ies")
        finally:
            self._recounting -= 1
            self._update_idle()

    # -- idleness -----------------------------------------------------------------------
    def _update_idle(self) -> None:
        busy = (self._walking or self._enqueuing or self._checks.busy or self._generations.busy
                or self._recount_wanted or self._recounting)
        if busy and not self._stopped:
            self._idle.clear()
        else:
            self._idle.set()
